"""/v1/agents: create, list, get, patch (null clears), archive, capabilities."""

from __future__ import annotations

import uuid

import pytest

AGENT = {"name": "Support", "system_prompt": "Be helpful.", "description": "d", "tags": ["a", "b"]}


async def create(client, **overrides):
    response = await client.post("/v1/agents", json={**AGENT, **overrides})
    assert response.status_code == 201, await response.get_json()
    return await response.get_json()


async def test_create_returns_the_agent(client):
    body = await create(client)
    assert uuid.UUID(body["id"])
    assert body["name"] == "Support" and body["system_prompt"] == "Be helpful."
    assert body["tags"] == ["a", "b"] and body["status"] == "active"
    assert body["created_at"].endswith("Z") and body["default_model_id"] is None


async def test_create_requires_name_and_system_prompt(client):
    response = await client.post("/v1/agents", json={"name": "x"})
    assert response.status_code == 400
    body = await response.get_json()
    assert body["error"]["code"] == "invalid_request" and "system_prompt" in body["error"]["message"]
    response = await client.post("/v1/agents", json={"name": "  ", "system_prompt": "p"})
    assert response.status_code == 400 and "name" in (await response.get_json())["error"]["message"]


async def test_create_rejects_unknown_fields_and_bad_model(client):
    response = await client.post("/v1/agents", json={**AGENT, "nmae": "typo"})
    assert response.status_code == 400 and "nmae" in (await response.get_json())["error"]["message"]
    response = await client.post("/v1/agents", json={**AGENT, "default_model_id": str(uuid.uuid4())})
    body = await response.get_json()
    assert response.status_code == 400 and "default_model_id" in body["error"]["message"]
    assert (await (await client.get("/v1/agents")).get_json())["total"] == 0  # nothing half written


async def test_get_and_unknown_ids(client):
    agent = await create(client)
    assert (await (await client.get(f"/v1/agents/{agent['id']}")).get_json()) == agent
    for bad in (str(uuid.uuid4()), "not-a-uuid"):
        response = await client.get(f"/v1/agents/{bad}")
        assert response.status_code == 404
        assert (await response.get_json())["error"]["code"] == "not_found"


async def test_patch_updates_and_null_clears(client):
    agent = await create(client)
    response = await client.patch(f"/v1/agents/{agent['id']}", json={"name": "Renamed", "description": None})
    body = await response.get_json()
    assert response.status_code == 200
    assert body["name"] == "Renamed" and body["description"] is None
    assert body["system_prompt"] == "Be helpful." and body["tags"] == ["a", "b"]  # untouched


async def test_patch_refuses_null_on_required_fields(client):
    agent = await create(client)
    response = await client.patch(f"/v1/agents/{agent['id']}", json={"name": None})
    assert response.status_code == 400
    assert "name cannot be null" in (await response.get_json())["error"]["message"]


async def test_list_envelope_paging_and_archive_filter(client):
    ids = [(await create(client, name=f"a{i}"))["id"] for i in range(3)]
    page = await (await client.get("/v1/agents?limit=2&offset=1")).get_json()
    assert page["total"] == 3 and page["limit"] == 2 and page["offset"] == 1 and len(page["data"]) == 2

    response = await client.delete(f"/v1/agents/{ids[0]}")
    assert response.status_code == 200 and (await response.get_json())["status"] == "archived"
    active = await (await client.get("/v1/agents")).get_json()
    assert ids[0] not in [a["id"] for a in active["data"]] and active["total"] == 2
    archived = await (await client.get("/v1/agents?status=archived")).get_json()
    assert [a["id"] for a in archived["data"]] == [ids[0]]
    assert (await (await client.get("/v1/agents?status=all")).get_json())["total"] == 3
    still = await client.get(f"/v1/agents/{ids[0]}")
    assert still.status_code == 200 and (await still.get_json())["status"] == "archived"


async def test_list_rejects_bad_paging(client):
    for query in ("limit=501", "limit=0", "offset=-1", "limit=abc", "status=gone"):
        response = await client.get(f"/v1/agents?{query}")
        assert response.status_code == 400, query
        assert (await response.get_json())["error"]["code"] == "invalid_request"


async def test_archived_agent_takes_no_new_sessions(client):
    agent = await create(client)
    await client.delete(f"/v1/agents/{agent['id']}")
    response = await client.post(f"/v1/agents/{agent['id']}/sessions", json={})
    assert response.status_code == 409
    assert (await response.get_json())["error"]["code"] == "agent_archived"
    response = await client.post("/v1/sessions", json={"agent_id": agent["id"]})
    assert response.status_code == 409


async def test_capabilities_get_put_keeps_order(client):
    agent = await create(client)
    url = f"/v1/agents/{agent['id']}/capabilities"
    assert (await (await client.get(url)).get_json())["capability_ids"] == []
    response = await client.put(url, json={"capability_ids": ["current_time", "noop"]})
    assert response.status_code == 200
    assert (await response.get_json())["capability_ids"] == ["current_time", "noop"]
    assert (await (await client.get(url)).get_json())["capability_ids"] == ["current_time", "noop"]
    response = await client.put(url, json={"capability_ids": ["noop", "web_search"]})
    assert response.status_code == 400 and "web_search" in (await response.get_json())["error"]["message"]
    assert (await (await client.get(url)).get_json())["capability_ids"] == ["current_time", "noop"]
    assert (await client.get(f"/v1/agents/{uuid.uuid4()}/capabilities")).status_code == 404


async def test_a_repeated_capability_keeps_its_first_entrys_settings(client):
    """Reported: the last copy's settings won, silently lifting an approval (§3.4: repeats are dropped)."""
    agent = await create(client)
    url = f"/v1/agents/{agent['id']}/capabilities"
    response = await client.put(url, json={"capabilities": [{"id": "current_time", "requires_approval": True},
                                                            {"id": "noop"}, {"id": "current_time"}]})
    assert (await response.get_json())["capabilities"] == [{"id": "current_time", "requires_approval": True},
                                                           {"id": "noop", "requires_approval": False}]
    assert (await (await client.get(url)).get_json())["capabilities"][0]["requires_approval"] is True


async def test_capability_repeats_are_dropped_everywhere(client):
    agent = await create(client, capability_ids=["noop", "current_time", "noop"])
    assert agent["capability_ids"] == ["noop", "current_time"]
    patched = await (await client.patch(f"/v1/agents/{agent['id']}", json={"capability_ids": ["current_time"] * 2})).get_json()
    assert patched["capability_ids"] == ["current_time"]


WEATHER = {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}


@pytest.mark.parametrize(("tools", "says"), [
    ([{**WEATHER, "parameters": {"type": "array"}}], "parameters must be the JSON schema of an object"),
    # Reported: accepted, then every turn of the agent failed at the provider.
    ([{**WEATHER, "parameters": {"type": "object", "properties": 5}}],
     "parameters is not a valid JSON Schema at properties: 5 is not of type 'object'"),
    ([{**WEATHER, "parameters": {"properties": {"a": {"type": "bogus"}}}}],
     "parameters is not a valid JSON Schema at properties/a/type"),
    ([WEATHER, WEATHER], "get_weather"),
    ([{**WEATHER, "name": "get_current_time"}], "get_current_time"),
    ([{**WEATHER, "name": "has space"}], "name"),
])
async def test_client_tools_that_no_model_could_call_are_refused(client, tools, says):
    response = await client.post("/v1/agents", json={"name": "a", "system_prompt": "p", "client_tools": tools})
    assert response.status_code == 400 and says in (await response.get_json())["error"]["message"]
    agent = await create(client)
    patched = await client.patch(f"/v1/agents/{agent['id']}", json={"client_tools": tools})
    assert patched.status_code == 400
    assert (await (await client.get(f"/v1/agents/{agent['id']}")).get_json())["client_tools"] == []


async def test_a_valid_client_tool_is_kept_as_sent(client):
    agent = await create(client, client_tools=[WEATHER])
    assert agent["client_tools"] == [{**WEATHER, "description": ""}]
