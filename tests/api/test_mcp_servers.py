"""/v1/mcp-servers: CRUD with write-only secrets, name rules, live tool listings (and the
error when a server cannot be reached), MCP tools in /v1/capabilities, agents naming
MCP capabilities. Against real FastMCP servers (tests/fakes/mcp_servers.py);
the admin-only rule for stdio servers is tests/auth/test_mcp_servers_auth.py's, and
turns calling MCP tools tests/runtime/test_mcp_turns.py's."""

from __future__ import annotations

import json
import time
import uuid

import pytest

from tests.fakes.mcp_servers import HttpMcpServer, listening_socket, silent_url, stdio_command

SECRET = "tok-0123456789-very-secret"


SILENT_TIMEOUT = 2.0  # MCP_CONNECT_TIMEOUT_SECONDS of the tests about a silent server


@pytest.fixture
def settings(settings, request):
    # A silent server costs a whole timeout, so those tests use a short one; the stdio
    # servers of the others need the time to start on a busy machine.
    timeout = SILENT_TIMEOUT if "silent" in request.node.name else 5.0
    return settings.replace(mcp_connect_timeout_seconds=timeout)


@pytest.fixture(scope="module")
def http_server():
    with HttpMcpServer("normal") as server:
        yield server


def stdio_body(name: str = "calc", variant: str = "normal", **extra) -> dict:
    command, args = stdio_command(variant)
    return {"name": name, "transport": "stdio", "command": command, "args": args, **extra}


async def create(client, body: dict, status: int = 201) -> dict:
    response = await client.post("/v1/mcp-servers", json=body)
    assert response.status_code == status, await response.get_json()
    return await response.get_json()


def closed_port_url() -> str:
    with listening_socket() as sock:
        return f"http://127.0.0.1:{sock.getsockname()[1]}/mcp"


async def test_crud_and_secrets_are_never_returned(client):
    created = await create(client, stdio_body(env={"API_TOKEN": SECRET}))
    assert created["transport"] == "stdio" and created["enabled"] is True
    assert created["env_hints"] == {"API_TOKEN": "tok...cret"} and "env" not in created
    assert created["header_hints"] == {} and created["url"] is None
    server_id = created["id"]
    assert (await (await client.get(f"/v1/mcp-servers/{server_id}")).get_json())["name"] == "calc"
    listing = await (await client.get("/v1/mcp-servers?limit=10")).get_json()
    assert listing["total"] == 1 and listing["limit"] == 10 and listing["data"][0]["id"] == server_id

    patched = await client.patch(f"/v1/mcp-servers/{server_id}", json={"enabled": False, "name": "calc2"})
    assert (await patched.get_json())["enabled"] is False and (await patched.get_json())["env_hints"]
    # Switching transport drops the old one's settings (the command and its env).
    switched = await client.patch(f"/v1/mcp-servers/{server_id}",
                                  json={"transport": "http", "url": "http://127.0.0.1:1/mcp",
                                        "headers": {"Authorization": f"Bearer {SECRET}"}})
    body = await switched.get_json()
    assert switched.status_code == 200, body
    assert body["command"] is None and body["args"] == [] and body["env_hints"] == {}
    assert body["header_hints"] == {"Authorization": "Bea...cret"}
    for response in (created, body, listing):
        assert SECRET not in json.dumps(response)

    assert (await client.delete(f"/v1/mcp-servers/{server_id}")).status_code == 204
    assert (await client.get(f"/v1/mcp-servers/{server_id}")).status_code == 404
    assert (await client.get("/v1/mcp-servers/not-a-uuid")).status_code == 404


@pytest.mark.parametrize("body, message", [
    ({"name": "Calc", "transport": "http", "url": "http://x/mcp"}, "name"),
    ({"name": "a" * 65, "transport": "http", "url": "http://x/mcp"}, "name"),
    ({"name": "a b", "transport": "http", "url": "http://x/mcp"}, "name"),
    ({"name": "web", "transport": "http"}, "url: required"),
    ({"name": "web", "transport": "http", "url": "http://x/mcp", "command": "ls"}, "command: only for transport"),
    ({"name": "run", "transport": "stdio"}, "command: required"),
    ({"name": "run", "transport": "stdio", "command": "x", "headers": {"A": "b"}}, "headers: only for transport"),
    ({"name": "run", "transport": "stdio", "command": "x", "env": {"1BAD": "v"}}, "env"),
    ({"name": "run", "transport": "stdio", "command": "x", "args": ["a\u0000b"]}, "NUL"),
    ({"name": "web", "transport": "http", "url": "http://x/mcp", "headers": {"A": "b\r\nX: y"}}, "headers"),
    ({"name": "web", "transport": "ftp", "url": "http://x/mcp"}, "transport"),
])
async def test_invalid_servers_are_400_naming_the_field(client, body, message):
    response = await client.post("/v1/mcp-servers", json=body)
    error = await response.get_json()
    assert response.status_code == 400 and error["error"]["code"] == "invalid_request"
    assert message in error["error"]["message"]


async def test_names_are_unique_per_owner(client):
    await create(client, {"name": "web", "transport": "http", "url": "http://127.0.0.1:1/mcp"})
    taken = await create(client, {"name": "web", "transport": "http", "url": "http://127.0.0.1:2/mcp"}, status=409)
    assert "already exists" in taken["error"]["message"]
    other = await create(client, {"name": "web2", "transport": "http", "url": "http://127.0.0.1:2/mcp"})
    renamed = await client.patch(f"/v1/mcp-servers/{other['id']}", json={"name": "web"})
    assert renamed.status_code == 409


async def test_tools_are_listed_live_and_an_unreachable_server_is_a_502(client, http_server):
    stdio = await create(client, stdio_body())
    tools = await (await client.get(f"/v1/mcp-servers/{stdio['id']}/tools")).get_json()
    add = next(tool for tool in tools["data"] if tool["name"] == "add")
    assert add == {"name": "add", "model_name": "calc__add", "capability_id": "mcp:calc:add",
                   "description": "Add two integers.", "input_schema": add["input_schema"]}
    assert set(add["input_schema"]["properties"]) == {"a", "b"} and tools["total"] == len(tools["data"])

    remote = await create(client, {"name": "remote", "transport": "http", "url": http_server.url})
    listed = await (await client.get(f"/v1/mcp-servers/{remote['id']}/tools")).get_json()
    assert {tool["capability_id"] for tool in listed["data"]} >= {"mcp:remote:echo", "mcp:remote:image"}

    for body in (stdio_body("missing", command="/nonexistent/server"),
                 {"name": "nowhere", "transport": "http", "url": closed_port_url()}):
        server = await create(client, body)
        response = await client.get(f"/v1/mcp-servers/{server['id']}/tools")
        error = await response.get_json()
        assert response.status_code == 502 and error["error"]["code"] == "mcp_unavailable"
        assert error["status"] == 502 and f"MCP server '{body['name']}' cannot be reached" in error["message"]


async def test_capabilities_list_mcp_tools_and_unreachable_servers(client):
    await create(client, stdio_body())
    await create(client, {"name": "nowhere", "transport": "http", "url": closed_port_url()})
    await create(client, stdio_body("off", enabled=False))
    body = await (await client.get("/v1/capabilities")).get_json()
    by_id = {cap["id"]: cap for cap in body["data"]}
    assert {"noop", "current_time", "mcp:calc:*", "mcp:calc:add", "mcp:calc:image", "mcp:nowhere:*"} <= set(by_id)
    assert not any(cap_id.startswith("mcp:off:") for cap_id in by_id) and body["total"] == len(body["data"])
    add = by_id["mcp:calc:add"]
    assert add["status"] == "available" and add["description"] == "Add two integers."
    assert add["tools"][0]["name"] == "calc__add" and set(add["tools"][0]["parameters"]["properties"]) == {"a", "b"}
    assert len(by_id["mcp:calc:*"]["tools"]) == 5  # add, echo, env, pid, image
    nowhere = by_id["mcp:nowhere:*"]
    assert nowhere["status"] == "unavailable" and nowhere["tools"] == []
    assert "Cannot be reached" in nowhere["description"]


async def test_a_silent_server_is_listed_unavailable_at_once_once_it_is_known_down(client, http_server):
    """Reported: while a server accepted connections and never answered, every
    GET /v1/capabilities waited out the whole connect timeout. The first listing still
    tries it (within the timeout); until MCP_RETRY_SECONDS pass, the listings answer at
    once with the reason, and an edit of the server is tried at once."""
    with silent_url() as url:
        server = await create(client, {"name": "silent", "transport": "http", "url": url})
        started = time.monotonic()
        response = await client.get("/v1/capabilities")
        first = time.monotonic() - started
        assert response.status_code == 200 and first < 1.5 * SILENT_TIMEOUT, f"{first:.2f} s"
        for _ in range(2):
            started = time.monotonic()
            response = await client.get("/v1/capabilities")
            took = time.monotonic() - started
            assert response.status_code == 200 and took < SILENT_TIMEOUT / 4, f"the listing took {took:.2f} s"
            silent = {cap["id"]: cap for cap in (await response.get_json())["data"]}["mcp:silent:*"]
            assert silent["status"] == "unavailable" and silent["tools"] == []
            assert "Cannot be reached: no answer within 2 s" in silent["description"], silent
            assert "not tried again for" in silent["description"], silent
        started = time.monotonic()
        response = await client.get(f"/v1/mcp-servers/{server['id']}/tools")
        took = time.monotonic() - started
        error = await response.get_json()
        assert response.status_code == 502 and error["error"]["code"] == "mcp_unavailable"
        assert "MCP server 'silent' cannot be reached: no answer within 2 s" in error["message"]
        assert took < SILENT_TIMEOUT / 4, f"the tool list took {took:.2f} s"

        patched = await client.patch(f"/v1/mcp-servers/{server['id']}", json={"url": http_server.url})
        assert patched.status_code == 200
        listed = {cap["id"]: cap for cap in (await (await client.get("/v1/capabilities")).get_json())["data"]}
        assert listed["mcp:silent:*"]["status"] == "available" and "mcp:silent:echo" in listed


async def test_a_tool_name_with_white_space_does_not_break_the_capability_list(client):
    await create(client, stdio_body("odd", "odd_names"))
    response = await client.get("/v1/capabilities")
    assert response.status_code == 200
    by_id = {cap["id"]: cap for cap in (await response.get_json())["data"]}
    assert by_id["mcp:odd:look up"]["name"] == "look up (odd)"


async def test_agents_take_mcp_capabilities_of_servers_they_can_see(client):
    await create(client, stdio_body())
    ok = await client.post("/v1/agents", json={"name": "a", "system_prompt": "p",
                                               "capability_ids": ["mcp:calc:add", "mcp:calc:*"]})
    assert ok.status_code == 201, await ok.get_json()
    for bad in ("mcp:other:add", "mcp:Calc:add", "mcp:calc"):
        response = await client.post("/v1/agents", json={"name": "b", "system_prompt": "p", "capability_ids": [bad]})
        assert response.status_code == 400 and bad in (await response.get_json())["message"]


async def test_an_agent_naming_a_deleted_server_can_be_written_back(client):
    """The server is deleted; the agent keeps its ids (§3.12). A client that reads the
    agent and writes it back, as the dashboard's editor does, is not refused for them,
    but such an id cannot be added anew."""
    server = await create(client, stdio_body())
    agent = await (await client.post("/v1/agents", json={"name": "a", "system_prompt": "p",
                                                         "capability_ids": ["noop", "mcp:calc:add"]})).get_json()
    assert (await client.delete(f"/v1/mcp-servers/{server['id']}")).status_code == 204
    read = await (await client.get(f"/v1/agents/{agent['id']}")).get_json()
    assert read["capability_ids"] == ["noop", "mcp:calc:add"]

    patched = await client.patch(f"/v1/agents/{agent['id']}",
                                 json={"description": "edited", "capability_ids": read["capability_ids"]})
    assert patched.status_code == 200, await patched.get_json()
    put = await client.put(f"/v1/agents/{agent['id']}/capabilities",
                           json={"capabilities": [{"id": "mcp:calc:add", "requires_approval": True}]})
    body = await put.get_json()
    assert put.status_code == 200, body
    assert body["capabilities"] == [{"id": "mcp:calc:add", "requires_approval": True}]

    for refused in (client.patch(f"/v1/agents/{agent['id']}", json={"capability_ids": ["mcp:calc:echo"]}),
                    client.put(f"/v1/agents/{agent['id']}/capabilities", json={"capability_ids": ["mcp:calc:*"]}),
                    client.post("/v1/agents", json={"name": "b", "system_prompt": "p",
                                                    "capability_ids": ["mcp:calc:add"]})):
        response = await refused
        assert response.status_code == 400 and "unknown capability" in (await response.get_json())["message"]
    missing = await client.put(f"/v1/agents/{uuid.uuid4()}/capabilities", json={"capability_ids": ["nope"]})
    assert missing.status_code == 400  # an unknown id is reported before a missing agent (docs/api.md §3.4)
