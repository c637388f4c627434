"""/v1/mcp-servers with authentication on (full mode): each user sees their own servers
(and only their servers' tools in /v1/capabilities); a stdio server runs a command on
the host, so only admins may create one, switch a server to stdio or change what it runs."""

from __future__ import annotations

from tests.auth.conftest import make_key
from tests.fakes.mcp_servers import stdio_command

COMMAND, ARGS = stdio_command("normal")
STDIO = {"name": "calc", "transport": "stdio", "command": COMMAND, "args": ARGS}
HTTP = {"name": "web", "transport": "http", "url": "http://127.0.0.1:1/mcp"}


async def test_stdio_servers_are_for_admins_only(client, alice, admin):
    refused = await client.post("/v1/mcp-servers", json=STDIO, headers=alice.headers)
    error = await refused.get_json()
    assert refused.status_code == 403 and error["error"]["code"] == "forbidden" and "only admins" in error["message"]
    own = await (await client.post("/v1/mcp-servers", json=HTTP, headers=alice.headers)).get_json()
    switch = await client.patch(f"/v1/mcp-servers/{own['id']}", json={"transport": "stdio", "command": COMMAND},
                                headers=alice.headers)
    assert switch.status_code == 403
    renamed = await client.patch(f"/v1/mcp-servers/{own['id']}", json={"name": "web2", "enabled": False},
                                 headers=alice.headers)
    assert renamed.status_code == 200

    created = await client.post("/v1/mcp-servers", json=STDIO, headers=admin.headers)
    assert created.status_code == 201
    server = await created.get_json()
    # An admin's key without the admin scope does not carry the admin's right to run commands.
    narrow = await make_key(client, admin, ["agents:read", "agents:write"])
    change = await client.patch(f"/v1/mcp-servers/{server['id']}", json={"args": ["-V"]}, headers={"X-API-Key": narrow})
    assert change.status_code == 403
    assert (await client.patch(f"/v1/mcp-servers/{server['id']}", json={"enabled": False},
                               headers={"X-API-Key": narrow})).status_code == 200


async def test_each_user_sees_their_own_servers_and_tools(client, alice, bob, admin):
    alices = await (await client.post("/v1/mcp-servers", json=HTTP, headers=alice.headers)).get_json()
    bobs = await (await client.post("/v1/mcp-servers", json=HTTP, headers=bob.headers)).get_json()  # names: per owner
    assert alices["id"] != bobs["id"]
    await client.post("/v1/mcp-servers", json=STDIO, headers=admin.headers)
    listed = await (await client.get("/v1/mcp-servers", headers=alice.headers)).get_json()
    assert [s["id"] for s in listed["data"]] == [alices["id"]]
    assert (await client.get(f"/v1/mcp-servers/{bobs['id']}", headers=alice.headers)).status_code == 404
    assert (await client.get(f"/v1/mcp-servers/{bobs['id']}/tools", headers=alice.headers)).status_code == 404
    assert (await client.delete(f"/v1/mcp-servers/{bobs['id']}", headers=alice.headers)).status_code == 404
    capabilities = await (await client.get("/v1/capabilities", headers=alice.headers)).get_json()
    mcp_ids = {c["id"] for c in capabilities["data"] if c["id"].startswith("mcp:")}
    assert mcp_ids == {"mcp:web:*"}  # her own (unreachable) server; not the admin's calc
    everything = await (await client.get("/v1/capabilities", headers=admin.headers)).get_json()
    assert {"mcp:calc:*", "mcp:calc:add"} <= {c["id"] for c in everything["data"]}
    # An agent may only name servers its author can see.
    agent = {"name": "a", "system_prompt": "p", "capability_ids": ["mcp:calc:add"]}
    refused = await client.post("/v1/agents", json=agent, headers=alice.headers)
    assert refused.status_code == 400


async def test_reading_and_writing_need_the_agents_scopes(client, alice):
    reader = await make_key(client, alice, ["agents:read"])
    assert (await client.get("/v1/mcp-servers", headers={"X-API-Key": reader})).status_code == 200
    assert (await client.post("/v1/mcp-servers", json=HTTP, headers={"X-API-Key": reader})).status_code == 403
    llm_only = await make_key(client, alice, ["llm:read", "llm:write"])
    assert (await client.get("/v1/mcp-servers", headers={"X-API-Key": llm_only})).status_code == 403
