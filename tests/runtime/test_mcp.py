"""app/runtime/mcp: the pool of MCP sessions, against real FastMCP servers (tests/fakes/
mcp_servers.py) over stdio and streamable HTTP: one session reused, restarted after a
crash, a timeout or an error becoming the model's error result, shutdown stopping every
process, unreachable servers left out."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import time
import uuid

import pytest

from app.models import McpServer
from app.runtime.capabilities import ToolError
from app.runtime.mcp import McpPool, McpUnavailable, model_name
from app.runtime.mcp.base import ServerConfig
from app.runtime.mcp.results import tool_result
from app.runtime.providers.base import ToolCall
from app.runtime.tools import execute_tool
from app.secrets import SecretBox, mask_secret
from app.wiring import current_runtime
from tests.fakes.mcp_servers import PNG, HttpMcpServer, listening_socket, stdio_command

SILENT_TIMEOUT = 1.0  # MCP_CONNECT_TIMEOUT_SECONDS of the tests about a silent server
# ...and of the one whose server is edited mid-attempt: the edited server must answer
# within it, which on a loaded 2-core machine took more than 1 s once (a full test run).
EDITED_TIMEOUT = 3.0


@pytest.fixture
def settings(settings, request):
    # A silent server costs a whole timeout, so those tests use a short one; the stdio
    # servers of the others need the time to start on a busy machine.
    name = request.node.name
    timeout = EDITED_TIMEOUT if "edited_while" in name else SILENT_TIMEOUT if "silent" in name else 5.0
    return settings.replace(mcp_connect_timeout_seconds=timeout)


@pytest.fixture
async def pool(app, settings):
    pool = McpPool(settings, current_runtime(app).box)
    yield pool
    await pool.close()


@pytest.fixture(scope="module")
def http_normal():
    with HttpMcpServer("normal") as server:
        yield server


async def stdio_server(name: str, variant: str, box: SecretBox | None = None, env: dict | None = None) -> McpServer:
    command, args = stdio_command(variant)
    row = McpServer(name=name, transport="stdio", command=command, args=args)
    if env:
        row.env_encrypted = box.encrypt(json.dumps(env))
        row.env_hints = {k: mask_secret(v) for k, v in env.items()}
    await row.save()
    return row


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


async def wait_gone(pid: int, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while not gone(pid):
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


# --- one session, many calls ---------------------------------------------------------

async def test_tools_are_named_for_the_model_and_one_session_serves_every_call(pool):
    await stdio_server("calc", "normal")
    tools = await pool.tools_for(None, ["mcp:calc:*"])
    assert {"calc__add", "calc__echo", "calc__pid", "calc__image", "calc__env"} == set(tools)
    add = tools["calc__add"]
    assert add.capability_id == "mcp:calc:add" and add.description == "Add two integers."
    assert add.parameters["type"] == "object" and set(add.parameters["properties"]) == {"a", "b"}
    assert await add.invoke({"a": 2, "b": 3}) == {"result": 5}
    first_pid = (await tools["calc__pid"].invoke({}))["result"]
    # Another turn: the same session (and process), the cached tool list.
    again = await pool.tools_for(None, ["mcp:calc:pid", "mcp:calc:add"])
    assert set(again) == {"calc__pid", "calc__add"}
    assert (await again["calc__pid"].invoke({}))["result"] == first_pid
    # Images are kept as a reference, never their bytes.
    assert await tools["calc__image"].invoke({}) == {"type": "image", "mime_type": "image/png", "bytes": len(PNG)}


async def test_a_crash_mid_call_is_an_error_and_the_next_call_restarts_the_server(pool):
    await stdio_server("crashy", "crash")
    tools = await pool.tools_for(None, ["mcp:crashy:*"])
    pid = (await tools["crashy__pid"].invoke({}))["result"]
    started = time.monotonic()
    with pytest.raises(ToolError, match="stopped during the call"):
        await asyncio.wait_for(tools["crashy__crash"].invoke({}), 10)
    assert time.monotonic() - started < 3  # the crash is noticed, not waited out
    assert await tools["crashy__add"].invoke({"a": 1, "b": 1}) == {"result": 2}
    new_pid = (await tools["crashy__pid"].invoke({}))["result"]
    assert new_pid != pid and await wait_gone(pid)


async def test_a_timed_out_call_is_an_error_result_and_the_session_stays_usable(pool):
    await stdio_server("slow", "hang")
    tools = await pool.tools_for(None, ["mcp:slow:*"])
    pid = (await tools["slow__pid"].invoke({}))["result"]
    result, error = await execute_tool(tools, ToolCall("c1", "slow__hang", "{}"), timeout=0.3)
    assert result is None and error == "tool 'slow__hang' timed out after 0.3 s"
    result, error = await execute_tool(tools, ToolCall("c2", "slow__add", '{"a": 4, "b": 5}'), timeout=5)
    assert (result, error) == ({"result": 9}, None)
    assert (await tools["slow__pid"].invoke({}))["result"] == pid  # the same session


async def test_a_call_given_up_on_is_cancelled_on_the_server_and_only_that_one(pool):
    await stdio_server("slow", "hang")
    tools = await pool.tools_for(None, ["mcp:slow:*"])
    # Both calls start in the same loop step: each must cancel (on timeout) its own request.
    hung = asyncio.create_task(asyncio.wait_for(tools["slow__hang"].invoke({}), 0.2))
    slow = asyncio.create_task(tools["slow__slow_echo"].invoke({"text": "done", "seconds": 0.6}))
    with pytest.raises(asyncio.TimeoutError):
        await hung
    assert await asyncio.wait_for(slow, 5) == {"result": "done"}


async def test_an_error_result_and_bad_arguments_are_tool_errors(pool):
    await stdio_server("broken", "error")
    tools = await pool.tools_for(None, ["mcp:broken:fail", "mcp:broken:add"])
    assert set(tools) == {"broken__fail", "broken__add"}
    with pytest.raises(ToolError, match="it failed: nope"):
        await tools["broken__fail"].invoke({"reason": "nope"})
    with pytest.raises(ToolError, match="validation error"):
        await tools["broken__add"].invoke({"a": "not a number"})
    with pytest.raises(ToolError, match="JSON object"):
        await tools["broken__add"].invoke([1, 2])
    result, error = await execute_tool(tools, ToolCall("c1", "broken__fail", "{}"), timeout=5)
    assert result is None and "it failed: boom" in error


async def test_close_stops_every_process(pool):
    await stdio_server("one", "normal")
    await stdio_server("two", "hang")
    tools = await pool.tools_for(None, ["mcp:one:pid", "mcp:two:pid", "mcp:two:hang"])
    pids = [(await tools[name].invoke({}))["result"] for name in ("one__pid", "two__pid")]
    # A call given up on is cancelled on the server too, so it does not hold the process up.
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(tools["two__hang"].invoke({}), 0.2)
    started = time.monotonic()
    await pool.close()
    assert all(gone(pid) for pid in pids)
    assert time.monotonic() - started < 2


async def test_env_is_decrypted_and_merged_onto_a_minimal_environment(pool, app, monkeypatch):
    monkeypatch.setenv("SERVER_ONLY_SECRET", "must-not-leak")
    await stdio_server("envy", "normal", current_runtime(app).box, env={"API_TOKEN": "tok-123456789"})
    tools = await pool.tools_for(None, ["mcp:envy:env"])
    assert await tools["envy__env"].invoke({"name": "API_TOKEN"}) == {"result": "tok-123456789"}
    assert await tools["envy__env"].invoke({"name": "SERVER_ONLY_SECRET"}) == {"result": ""}
    assert (await tools["envy__env"].invoke({"name": "PATH"}))["result"]


async def test_an_edited_server_gets_a_new_session(pool):
    row = await stdio_server("edited", "normal")
    tools = await pool.tools_for(None, ["mcp:edited:pid"])
    pid = (await tools["edited__pid"].invoke({}))["result"]
    row.args = [*row.args]  # as another process's PATCH would: a new updated_at
    await asyncio.sleep(0.01)
    await row.save()
    tools = await pool.tools_for(None, ["mcp:edited:pid"])
    assert (await tools["edited__pid"].invoke({}))["result"] != pid
    assert await wait_gone(pid)


async def test_unreachable_or_disabled_servers_are_left_out_not_fatal(pool, caplog):
    await stdio_server("fine", "normal")
    await McpServer.create(name="missing", transport="stdio", command="/nonexistent/mcp-server")
    with listening_socket() as sock:
        port = sock.getsockname()[1]  # closed again below: nothing listens there
    await McpServer.create(name="nowhere", transport="http", url=f"http://127.0.0.1:{port}/mcp")
    await stdio_server("off", "normal")
    await McpServer.filter(name="off").update(enabled=False)
    with caplog.at_level(logging.WARNING, logger="app.runtime.mcp"):
        tools = await pool.tools_for(None, ["mcp:fine:add", "mcp:missing:*", "mcp:nowhere:*", "mcp:off:*", "noop"])
    assert set(tools) == {"fine__add"}
    assert "'missing' is unavailable" in caplog.text and "'nowhere' is unavailable" in caplog.text
    with pytest.raises(McpUnavailable, match="No such file"):
        await pool.list_tools(await McpServer.get(name="missing"))


async def test_a_silent_stdio_server_costs_one_timeout_and_is_then_known_down(pool, caplog):
    """Reported: MCP_CONNECT_TIMEOUT_SECONDS=10 made a turn wait 12 s for a stdio server
    that never answers: the 2 s that stopping its process takes came on top. The timeout
    now bounds what a turn waits; the process is stopped meanwhile, in the background."""
    row = await McpServer.create(name="mute", transport="stdio", command="sleep", args=["600"])
    with caplog.at_level(logging.WARNING, logger="app.runtime.mcp"):
        started = time.monotonic()
        assert await pool.tools_for(None, ["mcp:mute:*"]) == {}
        took = time.monotonic() - started
        assert took < 1.4 * SILENT_TIMEOUT, f"{took:.2f} s"
        started = time.monotonic()
        assert await pool.tools_for(None, ["mcp:mute:*"]) == {}
        assert time.monotonic() - started < SILENT_TIMEOUT / 4  # known down: not tried again yet
    said = [record.getMessage() for record in caplog.records]
    assert any("'mute' cannot be reached: no answer within 1 s" in line for line in said), said
    assert sum("'mute' is unavailable; its tools are left out of this turn" in line for line in said) == 2, said
    started = time.monotonic()  # a call of a tool listed before it went down: an error result at once
    with pytest.raises(ToolError, match="MCP server 'mute' is unavailable: no answer within 1 s"):
        await pool.call(ServerConfig(id=row.id, name=row.name, version=row.updated_at, transport=row.transport),
                        "add", {})
    assert time.monotonic() - started < SILENT_TIMEOUT / 4


async def test_a_caller_that_gives_up_does_not_cost_the_others_a_silent_server(pool):
    """Callers that need a server at the same time share one attempt to reach it: the
    first one's cancellation (its turn was cancelled) neither ends the attempt nor makes
    the others start one of their own."""
    with listening_socket() as sock:
        await McpServer.create(name="silent", transport="http", url=f"http://127.0.0.1:{sock.getsockname()[1]}/mcp")
        started = time.monotonic()
        first = asyncio.create_task(pool.tools_for(None, ["mcp:silent:*"]))
        others = asyncio.gather(*(pool.tools_for(None, ["mcp:silent:*"]) for _ in range(3)))
        with await connected(sock):
            first.cancel()
            assert await others == [{}, {}, {}]
        took = time.monotonic() - started
        assert took < 1.4 * SILENT_TIMEOUT, f"{took:.2f} s"
        assert isinstance((await asyncio.gather(first, return_exceptions=True))[0], asyncio.CancelledError)


async def test_a_silent_server_edited_while_it_is_being_reached_is_tried_again_at_once(pool, http_normal):
    """The attempt with the old settings is abandoned: who waited for it gets the edited
    server's tools, without waiting out the timeout (nor a cancellation of their own)."""
    with listening_socket() as sock:
        row = await McpServer.create(name="moved", transport="http",
                                     url=f"http://127.0.0.1:{sock.getsockname()[1]}/mcp")
        started = time.monotonic()
        waiting = asyncio.gather(*(pool.tools_for(None, ["mcp:moved:echo"]) for _ in range(2)))
        with await connected(sock):
            row.url = http_normal.url
            await row.save()
            await pool.forget(row.id)  # what PATCH /v1/mcp-servers/{id} does
        assert [set(tools) for tools in await waiting] == [{"moved__echo"}, {"moved__echo"}]
        took = time.monotonic() - started
        assert took < EDITED_TIMEOUT, f"{took:.2f} s"


async def connected(sock: socket.socket) -> socket.socket:
    """The first client that connects to this listening socket: the server end, which
    stays silent until the caller closes it."""
    sock.setblocking(False)
    peer, _ = await asyncio.get_running_loop().sock_accept(sock)
    return peer


async def test_tools_are_the_owners(pool):
    """An agent sees its owner's servers only; ownerless agents the ownerless servers."""
    await stdio_server("mine", "normal")
    assert set(await pool.tools_for(None, ["mcp:mine:add"])) == {"mine__add"}
    assert await pool.tools_for(uuid.uuid4(), ["mcp:mine:add"]) == {}


# --- streamable HTTP -----------------------------------------------------------------

async def test_http_server_calls_and_a_restart_in_between(pool, http_normal):
    await McpServer.create(name="remote", transport="http", url=http_normal.url)
    tools = await pool.tools_for(None, ["mcp:remote:*"])
    assert await tools["remote__echo"].invoke({"text": "hi"}) == {"result": "hi"}
    pid = (await tools["remote__pid"].invoke({}))["result"]
    http_normal.restart()  # the server forgets the session: the next call starts a new one
    assert await tools["remote__add"].invoke({"a": 1, "b": 2}) == {"result": 3}
    assert (await tools["remote__pid"].invoke({}))["result"] != pid


async def test_http_crash_and_outage_are_quick_errors(pool):
    server = HttpMcpServer("crash").start()
    try:
        await McpServer.create(name="flaky", transport="http", url=server.url)
        tools = await pool.tools_for(None, ["mcp:flaky:*"])
        started = time.monotonic()
        with pytest.raises(ToolError, match="stopped during the call"):
            await asyncio.wait_for(tools["flaky__crash"].invoke({}), 10)
        with pytest.raises(ToolError, match="unavailable"):  # nothing listens now
            await asyncio.wait_for(tools["flaky__add"].invoke({"a": 1, "b": 1}), 10)
        assert time.monotonic() - started < 5
        server.start()  # back on the same port
        assert await tools["flaky__add"].invoke({"a": 1, "b": 1}) == {"result": 2}
    finally:
        server.stop()


# --- names and results ---------------------------------------------------------------

def test_model_visible_names_fit_both_providers():
    import re

    assert model_name("calc", "add") == "calc__add"
    odd = model_name("calc", "files/read.v2")
    assert re.fullmatch(r"calc__files_read_v2_[0-9a-f]{8}", odd)
    assert model_name("calc", "files/read.v2") != model_name("calc", "files_read_v2")
    long = model_name("s" * 64, "t" * 64)
    assert len(long) == 64 and re.fullmatch(r"^[a-zA-Z0-9_-]{1,64}$", long)
    assert long != model_name("s" * 64, "t" * 63)


def test_results_keep_text_and_json_and_reference_binaries():
    from mcp import types

    def result(*content, structured=None):
        return types.CallToolResult(content=list(content), structuredContent=structured)

    text = types.TextContent(type="text", text="hello")
    assert tool_result(result(text, types.TextContent(type="text", text="world"))) == "hello\nworld"
    assert tool_result(result(types.TextContent(type="text", text='{"a": 1}'))) == {"a": 1}
    assert tool_result(result(text, structured={"x": 1})) == {"x": 1}
    audio = types.AudioContent(type="audio", data="AAAA", mimeType="audio/wav")
    assert tool_result(result(audio)) == {"type": "audio", "mime_type": "audio/wav", "bytes": 3}
    blob = types.EmbeddedResource(type="resource", resource=types.BlobResourceContents(
        uri="file:///x.bin", mimeType="application/octet-stream", blob="AAAAAAAA"))
    assert tool_result(result(text, blob)) == [
        {"type": "text", "text": "hello"},
        {"type": "resource", "uri": "file:///x.bin", "mime_type": "application/octet-stream", "bytes": 6}]
