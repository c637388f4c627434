"""Sessions, nested under an agent and flat under /v1/sessions."""

from __future__ import annotations

import uuid

import pytest

pytestmark = pytest.mark.both_modes  # in process and on Temporal (tests/conftest.py)


@pytest.fixture
async def agent(client):
    response = await client.post("/v1/agents", json={"name": "A", "system_prompt": "p"})
    return await response.get_json()


@pytest.fixture
async def other_agent(client):
    response = await client.post("/v1/agents", json={"name": "B", "system_prompt": "p"})
    return await response.get_json()


async def test_create_nested_and_flat(client, agent):
    response = await client.post(f"/v1/agents/{agent['id']}/sessions", json={"title": "Chat #1"})
    assert response.status_code == 201
    nested = await response.get_json()
    assert nested["status"] == "pending" and nested["agent_id"] == agent["id"]
    assert nested["title"] == "Chat #1" and uuid.UUID(nested["id"])
    assert nested["usage"] == {"input_tokens": 0, "output_tokens": 0}

    response = await client.post("/v1/sessions", json={"agent_id": agent["id"], "tags": ["x"]})
    flat = await response.get_json()
    assert response.status_code == 201 and flat["agent_id"] == agent["id"] and flat["tags"] == ["x"]


async def test_create_without_body_fields_and_errors(client, agent):
    assert (await client.post(f"/v1/agents/{agent['id']}/sessions", json={})).status_code == 201
    assert (await client.post(f"/v1/agents/{uuid.uuid4()}/sessions", json={})).status_code == 404
    response = await client.post("/v1/sessions", json={"title": "no agent"})
    assert response.status_code == 400 and "agent_id" in (await response.get_json())["error"]["message"]
    response = await client.post("/v1/sessions", json={"agent_id": "nope"})
    assert response.status_code == 400
    response = await client.post(f"/v1/agents/{agent['id']}/sessions", json={"model_id": str(uuid.uuid4())})
    assert response.status_code == 400 and "model_id" in (await response.get_json())["error"]["message"]


async def test_get_nested_requires_owner(client, agent, other_agent):
    session = await (await client.post(f"/v1/agents/{agent['id']}/sessions", json={})).get_json()
    sid = session["id"]
    assert (await client.get(f"/v1/sessions/{sid}")).status_code == 200
    assert (await client.get(f"/v1/agents/{agent['id']}/sessions/{sid}")).status_code == 200
    for method in ("get", "patch", "delete"):
        kwargs = {"json": {"title": "t"}} if method == "patch" else {}
        response = await getattr(client, method)(f"/v1/agents/{other_agent['id']}/sessions/{sid}", **kwargs)
        assert response.status_code == 404, method
    assert (await client.get(f"/v1/sessions/{sid}")).status_code == 200  # untouched
    assert (await client.get("/v1/sessions/does-not-exist")).status_code == 404


async def test_list_by_agent_and_all(client, agent, other_agent):
    for owner in (agent, agent, other_agent):
        await client.post(f"/v1/agents/{owner['id']}/sessions", json={})
    mine = await (await client.get(f"/v1/agents/{agent['id']}/sessions")).get_json()
    assert mine["total"] == 2 and all(s["agent_id"] == agent["id"] for s in mine["data"])
    assert (await (await client.get("/v1/sessions")).get_json())["total"] == 3
    filtered = await (await client.get(f"/v1/sessions?agent_id={other_agent['id']}")).get_json()
    assert filtered["total"] == 1
    assert (await (await client.get("/v1/sessions?status=pending")).get_json())["total"] == 3
    assert (await client.get("/v1/sessions?status=bogus")).status_code == 400
    assert (await client.get(f"/v1/agents/{uuid.uuid4()}/sessions")).status_code == 404


async def test_patch_title_tags_model_and_null(client, agent):
    session = await (await client.post("/v1/sessions", json={"agent_id": agent["id"], "title": "t"})).get_json()
    response = await client.patch(f"/v1/sessions/{session['id']}", json={"tags": ["q"], "title": None})
    body = await response.get_json()
    assert response.status_code == 200 and body["tags"] == ["q"] and body["title"] is None
    response = await client.patch(f"/v1/sessions/{session['id']}", json={"status": "running"})
    assert response.status_code == 400  # status is the runtime's, not the client's
    response = await client.patch(f"/v1/sessions/{session['id']}", json={"tags": None})
    assert response.status_code == 400


async def test_an_external_session_takes_no_model(client, agent):
    """Reported: PATCH stored a model_id on an external session (docs/api.md 5.9: null)."""
    provider = await (await client.post("/v1/llm-providers", json={"name": "p", "provider_type": "openai"})).get_json()
    model = await (await client.post(f"/v1/llm-providers/{provider['id']}/models", json={"model_id": "m"})).get_json()
    await client.post("/sessions", json={"session_id": "ext-m", "session_name": "x"})
    response = await client.patch("/v1/sessions/ext-m", json={"model_id": model["id"], "title": "t"})
    assert response.status_code == 400 and "external session" in (await response.get_json())["message"]
    session = await (await client.get("/v1/sessions/ext-m")).get_json()
    assert session["model_id"] is None and session["title"] != "t"  # nothing half-written
    assert (await client.patch("/v1/sessions/ext-m", json={"model_id": None})).status_code == 200


async def test_delete_removes_session_and_messages(client, agent):
    session = await (await client.post(f"/v1/agents/{agent['id']}/sessions", json={})).get_json()
    await client.post(f"/v1/sessions/{session['id']}/messages", json={"content": "hi"})
    response = await client.delete(f"/v1/agents/{agent['id']}/sessions/{session['id']}")
    assert response.status_code == 204
    assert (await client.get(f"/v1/sessions/{session['id']}")).status_code == 404
    assert (await client.get(f"/v1/sessions/{session['id']}/messages")).status_code == 404
    assert (await client.delete(f"/v1/sessions/{session['id']}")).status_code == 404


async def test_long_titles_are_400_not_500(client, agent):
    response = await client.post(f"/v1/agents/{agent['id']}/sessions", json={"title": "t" * 501})
    assert response.status_code == 400 and "title" in (await response.get_json())["error"]["message"]


async def test_nested_path_accepts_the_agent_id_in_any_uuid_spelling(client, agent):
    session = await (await client.post(f"/v1/agents/{agent['id']}/sessions", json={})).get_json()
    compact = agent["id"].replace("-", "").upper()
    assert (await client.get(f"/v1/agents/{compact}/sessions/{session['id']}")).status_code == 200
    assert (await client.get(f"/v1/agents/not-a-uuid/sessions/{session['id']}")).status_code == 404
