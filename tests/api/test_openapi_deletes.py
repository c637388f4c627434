"""Every DELETE in the OpenAPI document documents the one success status the server really
answers (seed 002: "204 No Content (successful delete)"), with no body for a 204 and the
body's fields for a 200. Each is checked by deleting a resource made for it."""

from __future__ import annotations

import uuid

import pytest

ADMIN = ("admin@example.com", "admin-password-1")


@pytest.fixture
def settings(settings):
    # Admin mode: API keys exist only with authentication on.
    return settings.replace(auth_mode="admin", auth_admin_email=ADMIN[0], auth_admin_password=ADMIN[1],
                            rate_limit_enabled=False, jwt_secret="test-jwt-secret-0123456789abcdef")


async def created(client, headers, path: str, body: dict) -> dict:
    response = await client.post(path, json=body, headers=headers)
    assert response.status_code in (200, 201), (path, await response.get_json())
    return await response.get_json()


async def agent_and_session(client, h) -> tuple[dict, dict]:
    agent = await created(client, h, "/v1/agents", {"name": f"deletable-{uuid.uuid4().hex[:8]}", "system_prompt": "p"})
    return agent, await created(client, h, f"/v1/agents/{agent['id']}/sessions", {})


async def agent_url(client, h):
    agent, _ = await agent_and_session(client, h)
    return f"/v1/agents/{agent['id']}"


async def nested_session_url(client, h):
    agent, session = await agent_and_session(client, h)
    return f"/v1/agents/{agent['id']}/sessions/{session['id']}"


async def flat_session_url(client, h):
    _, session = await agent_and_session(client, h)
    return f"/v1/sessions/{session['id']}"


async def provider(client, h) -> dict:
    return await created(client, h, "/v1/llm-providers", {"name": "p", "provider_type": "openai", "api_key": "sk-x"})


async def provider_url(client, h):
    return f"/v1/llm-providers/{(await provider(client, h))['id']}"


async def model_url(client, h):
    model = await created(client, h, f"/v1/llm-providers/{(await provider(client, h))['id']}/models", {"model_id": "m"})
    return f"/v1/llm-models/{model['id']}"


async def pipeline_url(client, h):
    agent, _ = await agent_and_session(client, h)
    steps = [{"name": "A", "agent": agent["id"]}]
    pipeline = await created(client, h, "/v1/pipelines", {"name": "flow", "steps": steps})
    return f"/v1/pipelines/{pipeline['name']}"


async def api_key_url(client, h):
    key = await created(client, h, "/v1/auth/api-keys", {"name": "ci", "scopes": ["agents:read"]})
    return f"/v1/auth/api-keys/{key['id']}"


async def mcp_server_url(client, h):
    server = await created(client, h, "/v1/mcp-servers", {"name": "m", "transport": "http", "url": "http://127.0.0.1:1/mcp"})
    return f"/v1/mcp-servers/{server['id']}"


async def agent_runtime_session_url(client, h):
    await created(client, h, "/sessions", {"session_id": "ext-delete", "session_name": "x"})
    return "/sessions/ext-delete"


# One way to make something deletable per DELETE path of the document. A new DELETE route
# fails the test below until it is added here.
DELETABLE = {
    "/v1/agents/{agent_id}": agent_url,
    "/v1/agents/{agent_id}/sessions/{session_id}": nested_session_url,
    "/v1/sessions/{session_id}": flat_session_url,
    "/v1/llm-providers/{provider_id}": provider_url,
    "/v1/llm-models/{model_id}": model_url,
    "/v1/pipelines/{name}": pipeline_url,
    "/v1/auth/api-keys/{key_id}": api_key_url,
    "/v1/mcp-servers/{server_id}": mcp_server_url,
    "/sessions/{session_id}": agent_runtime_session_url,
}


@pytest.fixture
async def admin_headers(client) -> dict[str, str]:
    response = await client.post("/v1/auth/login", json={"email": ADMIN[0], "password": ADMIN[1]})
    assert response.status_code == 200, await response.get_json()
    return {"Authorization": f"Bearer {(await response.get_json())['access_token']}"}


@pytest.fixture
async def document(client) -> dict:
    response = await client.get("/api-doc/openapi.json")
    assert response.status_code == 200
    return await response.get_json()


def delete_operations(document: dict) -> dict[str, dict]:
    return {path: operations["delete"] for path, operations in document["paths"].items() if "delete" in operations}


def documented_fields(document: dict, response: dict) -> set[str]:
    schema = response["content"]["application/json"]["schema"]
    if "$ref" in schema:
        schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return set(schema["properties"])


async def test_every_delete_documents_the_status_the_server_answers(client, admin_headers, document):
    operations = delete_operations(document)
    assert set(operations) == set(DELETABLE)  # a new DELETE route needs a maker above
    wrong = []
    for path, operation in sorted(operations.items()):
        successes = [int(status) for status in operation["responses"] if str(status).startswith("2")]
        response = await client.delete(await DELETABLE[path](client, admin_headers), headers=admin_headers)
        if successes != [response.status_code]:
            wrong.append(f"DELETE {path}: documents {successes}, answers {response.status_code}")
        elif response.status_code == 204:
            if await response.get_data() != b"" or "content" in operation["responses"]["204"]:
                wrong.append(f"DELETE {path}: a 204 with a body (documented or sent)")
        elif set(await response.get_json()) != documented_fields(document, operation["responses"][str(successes[0])]):
            wrong.append(f"DELETE {path}: the body's fields are not the documented ones")
    assert wrong == []
