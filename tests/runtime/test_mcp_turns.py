"""Turns that call MCP tools, in both runner modes: the tool's result stored as
`tool.completed` (an image as a reference only), and a server that cannot be reached
simply left out of the turn, at the cost of one connect timeout however many turns start
meanwhile. The model is the fake LLM, scripted."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from tests.fakes import Text, ToolCalls
from tests.fakes.mcp_servers import PNG, listening_socket, silent_url, stdio_command
from tests.helpers import make_chat, messages, say, wait_for_event, wait_turns

pytestmark = pytest.mark.both_modes


SILENT_TIMEOUT = 2.0  # MCP_CONNECT_TIMEOUT_SECONDS of the tests about a silent server


@pytest.fixture
def settings(settings, request):
    # A silent server costs a whole timeout, so those tests use a short one; the stdio
    # servers of the others need the time to start on a busy machine.
    timeout = SILENT_TIMEOUT if "silent" in request.node.name else 5.0
    return settings.replace(mcp_connect_timeout_seconds=timeout)


async def create(client, body: dict) -> dict:
    response = await client.post("/v1/mcp-servers", json=body)
    assert response.status_code == 201, await response.get_json()
    return await response.get_json()


def stdio_body(name: str, variant: str = "normal") -> dict:
    command, args = stdio_command(variant)
    return {"name": name, "transport": "stdio", "command": command, "args": args}


def closed_port_url() -> str:
    with listening_socket() as sock:
        return f"http://127.0.0.1:{sock.getsockname()[1]}/mcp"


async def test_a_turn_calls_an_mcp_tool_and_stores_its_result(client, fake_llm):
    await create(client, stdio_body("calc"))
    chat = await make_chat(client, fake_llm, capabilities=("mcp:calc:add", "mcp:calc:image"))
    fake_llm.script(ToolCalls([("call_1", "calc__add", {"a": 2, "b": 3}), ("call_2", "calc__image", {})]),
                    Text("2 + 3 = 5, and a picture."))
    await say(client, chat["id"], "What is 2 + 3? Show me a picture.")
    log = await wait_turns(client, chat["id"], timeout=20)
    assert log[-1]["type"] == "session.completed", log[-1]
    offered = {tool["function"]["name"] for tool in fake_llm.requests[0]["json"]["tools"]}
    assert offered == {"calc__add", "calc__image"}
    done = {e["data"]["tool_call_id"]: e["data"] for e in log if e["type"] == "tool.completed"}
    assert done["call_1"]["error"] is None and done["call_1"]["result"] == {"result": 5}
    assert done["call_2"]["result"] == {"type": "image", "mime_type": "image/png", "bytes": len(PNG)}
    assert "iVBOR" not in json.dumps(log)  # the PNG's base64 never reaches the log
    sent = [m for m in fake_llm.requests[-1]["json"]["messages"] if m["role"] == "tool"]
    assert [m["tool_call_id"] for m in sent] == ["call_1", "call_2"] and "5" in sent[0]["content"]
    assert (await messages(client, chat["id"]))[-1]["content"] == {"text": "2 + 3 = 5, and a picture."}


async def test_an_unreachable_server_leaves_its_tools_out_of_the_turn(client, fake_llm):
    await create(client, {"name": "nowhere", "transport": "http", "url": closed_port_url()})
    chat = await make_chat(client, fake_llm, capabilities=("current_time", "mcp:nowhere:*"))
    fake_llm.script(Text("Fine without it."))
    await say(client, chat["id"], "hi")
    log = await wait_turns(client, chat["id"], timeout=20)
    assert log[-1]["type"] == "session.completed"
    offered = {tool["function"]["name"] for tool in fake_llm.requests[0]["json"]["tools"]}
    assert offered == {"get_current_time"}


async def test_a_silent_server_costs_concurrent_turns_one_timeout_and_the_next_turn_none(client, fake_llm):
    """Reported: with a server that accepts connections and never answers, every turn of
    every session using it waited out the whole timeout (12 s of a documented 10), one
    turn after the other: the second session's turn queued behind the first's attempt,
    then made its own. Now turns that start together share one attempt, and a server that
    failed is remembered as down (MCP_RETRY_SECONDS), so the next turn does not wait."""
    with silent_url() as url:
        await create(client, {"name": "silent", "transport": "http", "url": url})
        chats = [await make_chat(client, fake_llm, capabilities=("current_time", "mcp:silent:*")) for _ in range(2)]
        fake_llm.script(Text("one"), Text("two"), Text("three"))
        started = time.monotonic()
        await asyncio.gather(*(say(client, chat["id"], "hi") for chat in chats))
        logs = await asyncio.gather(*(wait_turns(client, chat["id"], timeout=20) for chat in chats))
        together = time.monotonic() - started
        assert [log[-1]["type"] for log in logs] == ["session.completed"] * 2
        assert together < 1.5 * SILENT_TIMEOUT, f"both turns took {together:.2f} s"  # one timeout, not two

        started = time.monotonic()
        await say(client, chats[0]["id"], "again")
        log = await wait_turns(client, chats[0]["id"], count=2, timeout=20)
        again = time.monotonic() - started
        assert log[-1]["type"] == "session.completed"
        assert again < SILENT_TIMEOUT / 2, f"the next turn took {again:.2f} s"  # not another timeout
    assert len(fake_llm.requests) == 3
    for request in fake_llm.requests:  # each turn went on without the server's tools
        assert {tool["function"]["name"] for tool in request["json"]["tools"]} == {"get_current_time"}


async def test_one_mcp_tool_can_be_exempted_from_its_servers_approval(client, fake_llm):
    """Reported: {"id": "mcp:calc:add", "requires_approval": false} beside
    {"id": "mcp:calc:*", "requires_approval": true} was read back as false, yet the call
    still waited: false was never stored, so the `*` applied (§3.4: the tool's wins)."""
    await create(client, stdio_body("calc"))
    chat = await make_chat(client, fake_llm, capabilities=())
    url = f"/v1/agents/{chat['agent_id']}/capabilities"
    response = await client.put(url, json={"capabilities": [{"id": "mcp:calc:*", "requires_approval": True},
                                                            {"id": "mcp:calc:add", "requires_approval": False}]})
    assert response.status_code == 200, await response.get_json()
    fake_llm.script(ToolCalls([("call_1", "calc__add", {"a": 1, "b": 2})]), Text("3."))
    await say(client, chat["id"], "1 + 2?")
    log = await wait_turns(client, chat["id"], timeout=20)
    assert log[-1]["type"] == "session.completed" and not any(e["type"] == "session.waiting" for e in log)
    assert next(e for e in log if e["type"] == "tool.completed")["data"]["result"] == {"result": 3}
    # An id added without settings (capability_ids) takes the `*`, and is read back so.
    await client.put(url, json={"capability_ids": ["mcp:calc:*", "mcp:calc:add", "mcp:calc:echo"]})
    listed = (await (await client.get(url)).get_json())["capabilities"]
    assert listed == [{"id": "mcp:calc:*", "requires_approval": True}, {"id": "mcp:calc:add", "requires_approval": False},
                      {"id": "mcp:calc:echo", "requires_approval": True}]


async def test_an_mcp_tool_can_require_approval_for_the_whole_server(client, fake_llm):
    await create(client, stdio_body("calc"))
    chat = await make_chat(client, fake_llm, capabilities=())
    response = await client.put(f"/v1/agents/{chat['agent_id']}/capabilities", json={
        "capabilities": [{"id": "mcp:calc:*", "requires_approval": True}]})
    assert response.status_code == 200, await response.get_json()
    fake_llm.script(ToolCalls([("call_1", "calc__add", {"a": 20, "b": 22})]), Text("42."))
    await say(client, chat["id"], "20 + 22?")
    log = await wait_for_event(client, chat["id"], "session.waiting", timeout=20)
    asked = next(e for e in log if e["type"] == "tool.approval_requested")["data"]
    assert asked["tool_name"] == "calc__add" and not any(e["type"] == "tool.started" for e in log)
    approved = await client.post(f"/v1/sessions/{chat['id']}/tool-calls/call_1/approve")
    assert approved.status_code == 200
    log = await wait_turns(client, chat["id"], timeout=20)
    assert log[-1]["type"] == "session.completed"
    assert next(e for e in log if e["type"] == "tool.completed")["data"]["result"] == {"result": 42}
