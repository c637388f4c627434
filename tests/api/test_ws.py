"""/ws against a real server: init, every message type, loop events in Agent Runtime
shape with the same ids and fields as REST, ping/pong, and a slow client closed with
1013 while a fast one keeps receiving."""

from __future__ import annotations

import asyncio
import json
import socket
import time

import httpx
import pytest
from websockets.asyncio.client import connect

from tests.api.test_agent_runtime import full_auth  # noqa: F401  (a fixture: an app in AUTH_MODE=full)
from tests.fakes import Text, ToolCalls
from tests.helpers import FAKE_KEY
from tests.live_server import LiveServer, until

pytestmark = pytest.mark.both_modes  # in process and on Temporal (tests/conftest.py)


@pytest.fixture(scope="module")
def server(fake_llm_server, tmp_path_factory):
    env = {"OPENAI_API_KEY": FAKE_KEY, "OPENAI_BASE_URL": fake_llm_server.openai_base_url,
           "OPENAI_MODEL": "fake-model", "SUBSCRIBER_QUEUE_SIZE": "50", "DELTA_FLUSH_MS": "0"}
    live = LiveServer(env, tmp_path_factory.mktemp("ws-server")).start()
    yield live
    live.stop()


def ws_url(server) -> str:
    return server.url.replace("http://", "ws://") + "/ws"


async def next_message(ws, predicate=lambda m: True, timeout=10.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        message = json.loads(await asyncio.wait_for(ws.recv(), max(0.01, deadline - time.monotonic())))
        if predicate(message):
            return message


def hook(event_type, session_id, **fields):
    return {"event_type": event_type, "session_id": session_id, "session_name": "ws test",
            "timestamp": "2025-11-16T10:30:16Z", **fields}


async def test_init_then_session_lifecycle_messages(server):
    async with httpx.AsyncClient(base_url=server.url) as http:
        await http.post("/sessions", json={"session_id": "before-ws", "session_name": "early"})
        async with connect(ws_url(server)) as ws:
            init = await next_message(ws)
            assert init["type"] == "init" and "before-ws" in [s["session_id"] for s in init["sessions"]]
            await http.post("/sessions", json={"session_id": "ws-1", "session_name": "ws test", "agent_name": "bot"})
            created = await next_message(ws, lambda m: m["type"] == "session_created")
            assert created["session"]["session_id"] == "ws-1" and created["session"]["status"] == "running"
            assert created["session"]["agent_name"] == "bot"
            await http.patch("/sessions/ws-1/metadata", json={"session_name": "renamed"})
            updated = await next_message(ws, lambda m: m["type"] == "session_updated")
            assert updated["session"]["session_name"] == "renamed"
            await http.post("/sessions/ws-1/events", json=hook("post_tool", "ws-1", tool_name="Read", tool_output=0))
            event = await next_message(ws, lambda m: m["type"] == "event")
            rest = (await http.get("/events/ws-1")).json()["events"][0]
            # Same id and fields as REST; an event keeps the session_name its reporter sent.
            assert event["data"] == rest and event["data"]["tool_output"] == 0 and event["data"]["session_name"] == "ws test"
            await http.post("/events", json=hook("session_stop", "ws-1", exit_code=0))
            stopped = await next_message(ws, lambda m: m["type"] == "session_updated")
            assert stopped["session"]["status"] == "finished"
            await http.delete("/sessions/ws-1")
            assert await next_message(ws, lambda m: m["type"] == "session_deleted") == {"type": "session_deleted", "session_id": "ws-1"}
            await ws.send(json.dumps({"type": "ping"}))
            assert await next_message(ws, lambda m: m["type"] == "pong") == {"type": "pong"}


AR_TYPES = {"session_start", "pre_tool", "post_tool", "session_stop", "message"}


async def _turn_events(ws, sid) -> list[dict]:
    seen: list[dict] = []
    while not seen or seen[-1]["event_type"] != "session_stop":
        seen.append((await next_message(ws, lambda m: m["type"] == "event" and m["data"]["session_id"] == sid))["data"])
    return seen


async def test_agent_loop_events_in_agent_runtime_shape(server, fake_llm):
    async with httpx.AsyncClient(base_url=server.url) as http:
        agent = (await http.post("/v1/agents", json={"name": "Clock", "system_prompt": "p",
                                                     "capability_ids": ["current_time"]})).json()
        async with connect(ws_url(server)) as ws, connect(ws_url(server) + "?events=all") as ws_all:
            await next_message(ws)
            await next_message(ws_all)
            sid = (await http.post(f"/v1/agents/{agent['id']}/sessions", json={"title": "loop"})).json()["id"]
            fake_llm.script(ToolCalls([("c1", "get_current_time", {"timezone": "UTC"})]), Text(["It ", "is now."]))
            await http.post(f"/v1/sessions/{sid}/messages", json={"content": "time?"})
            seen, everything = await _turn_events(ws, sid), await _turn_events(ws_all, sid)
            rest = {e["id"]: e for e in (await http.get(f"/events/{sid}?events=all")).json()["events"]}
            rest_default = (await http.get(f"/events/{sid}")).json()["events"]
    assert [e["id"] for e in everything] == sorted(rest) and all(e == rest[e["id"]] for e in everything)
    # An Agent Runtime client gets only the types it knows (the same as REST gives it):
    # no step/delta/tool_call cards.
    assert {e["event_type"] for e in seen} <= AR_TYPES and seen == rest_default
    assert [e for e in everything if e["event_type"] in AR_TYPES] == seen
    by_type = {}
    for e in everything:
        by_type.setdefault(e["event_type"], []).append(e)
    assert by_type["session_start"][0]["session_name"] == "loop"
    pre, post = by_type["pre_tool"][0], by_type["post_tool"][0]
    assert pre["tool_name"] == "get_current_time" and pre["tool_input"] == {"timezone": "UTC"}
    assert post["tool_output"]["timezone"] == "UTC" and post["error"] is None
    assert [(m["role"], m["content"]) for m in by_type["message"]] == [
        ("user", [{"type": "text", "text": "time?"}]), ("assistant", [{"type": "text", "text": "It is now."}])]
    assert "".join(e["data"]["delta"] for e in by_type["message.delta"]) == "It is now."
    assert by_type["session_stop"][0]["exit_code"] == 0


WAIT_TYPES = ("tool.approval_requested", "tool.client_requested", "session.waiting", "tool.call_answered")


async def _collect(ws, until) -> list[dict]:
    """Every message up to and including the first one `until` accepts."""
    seen = [await next_message(ws)]
    while not until(seen[-1]):
        seen.append(await next_message(ws))
    return seen


async def test_a_tool_call_waiting_for_approval_is_carried_live(server, fake_llm):
    """The request reaches /ws?events=all clients (the dashboard) as it is written, in the
    shape of every core event; every client sees the session read waiting_for_approval
    (`runtime_status`) while it stays `running` in the Agent Runtime view."""
    async with httpx.AsyncClient(base_url=server.url) as http:
        agent = (await http.post("/v1/agents", json={"name": "Careful clock", "system_prompt": "p"})).json()
        put = await http.put(f"/v1/agents/{agent['id']}/capabilities",
                             json={"capabilities": [{"id": "current_time", "requires_approval": True}]})
        assert put.status_code == 200, put.text
        async with connect(ws_url(server)) as ws, connect(ws_url(server) + "?events=all") as ws_all:
            await next_message(ws)
            await next_message(ws_all)
            sid = (await http.post(f"/v1/agents/{agent['id']}/sessions", json={"title": "ask first"})).json()["id"]
            fake_llm.script(ToolCalls([("c1", "get_current_time", {"timezone": "UTC"})]), Text(["Done."]))
            await http.post(f"/v1/sessions/{sid}/messages", json={"content": "time?"})

            def event(m, *types):
                return m["type"] == "event" and m["data"]["session_id"] == sid and m["data"]["event_type"] in types

            before = await _collect(ws_all, lambda m: event(m, "session.waiting"))
            assert (await http.get(f"/sessions/{sid}")).json()["session"]["status"] == "running"
            assert (await http.get(f"/v1/sessions/{sid}")).json()["status"] == "waiting_for_approval"
            listed = (await http.get("/v1/sessions?status=waiting_for_approval")).json()["data"]
            assert [s["id"] for s in listed] == [sid]
            answer = await http.post(f"/v1/sessions/{sid}/tool-calls/c1/approve")
            assert answer.status_code == 200, answer.text
            after = await _collect(ws_all, lambda m: event(m, "session_stop"))
            plain = await _collect(ws, lambda m: event(m, "session_stop"))

    asked = next(m["data"] for m in before if event(m, "tool.approval_requested"))
    assert asked["type"] == "tool.approval_requested" and asked["session_name"] == "ask first"
    assert {k: asked["data"][k] for k in ("tool_call_id", "tool_name", "arguments")} == \
        {"tool_call_id": "c1", "tool_name": "get_current_time", "arguments": {"timezone": "UTC"}}
    assert asked["data"]["step_id"] and asked["data"]["message_id"]
    assert before[-1]["data"]["data"]["status"] == "waiting_for_approval"
    assert before[-1]["data"]["data"]["tool_call_ids"] == ["c1"]
    answered = next(m["data"] for m in after if event(m, "tool.call_answered"))
    assert answered["data"]["decision"] == "approved" and answered["data"]["tool_call_id"] == "c1"
    assert [m["data"]["event_type"] for m in after if event(m, "pre_tool", "post_tool", "session_stop")] == \
        ["pre_tool", "post_tool", "session_stop"]
    assert after[-1]["data"]["exit_code"] == 0
    for feed in (before + after, plain):  # every client hears of the status
        statuses = [(m["session"]["status"], m["session"]["runtime_status"]) for m in feed
                    if m["type"] == "session_updated" and m["session"]["session_id"] == sid]
        assert ("running", "waiting_for_approval") in statuses and statuses[-1] == ("finished", "pending")
    # A client of the five Agent Runtime types gets none of the new ones (as on REST).
    assert not [m for m in plain if event(m, *WAIT_TYPES)]
    assert [m["data"]["event_type"] for m in plain if event(m, "pre_tool", "post_tool")] == ["pre_tool", "post_tool"]


async def test_clients_exact_requests_over_a_real_server(server):
    """A hook's first event for a session it never started, a child created with its
    parent, and a resumed run's PATCH + session_start + prompt, as /ws clients see them."""
    async with httpx.AsyncClient(base_url=server.url) as http:
        async with connect(ws_url(server)) as ws:
            await next_message(ws)
            await http.post("/events", json=hook("post_tool", "mid-ws", tool_name="Bash", tool_output=""))
            created = await next_message(ws, lambda m: m["type"] == "session_created")
            assert created["session"]["session_id"] == "mid-ws" and created["session"]["implicit"] is True
            event = await next_message(ws, lambda m: m["type"] == "event")
            assert event["data"]["event_type"] == "post_tool" and event["data"]["tool_output"] == ""
            await http.post("/sessions", json={"session_id": "child-ws", "session_name": "child",
                                               "parent_session_name": "mid-ws"})
            child = await next_message(ws, lambda m: m["type"] == "session_created")
            assert child["session"]["parent_session_name"] == "mid-ws"
            await http.post("/sessions/child-ws/events", json=hook("session_stop", "child-ws", exit_code=0))
            await next_message(ws, lambda m: m["type"] == "session_updated" and m["session"]["status"] == "finished")
            patched = await http.patch("/sessions/child-ws/metadata", json={"last_resumed_at": "2025-11-16T12:00:00Z"})
            assert patched.status_code == 200, patched.text
            await http.post("/sessions/child-ws/events", json=hook("session_start", "child-ws"))
            resumed = await next_message(ws, lambda m: m["type"] == "session_updated" and m["session"]["status"] == "running")
            assert resumed["session"]["session_id"] == "child-ws"
            prompt = [{"type": "text", "text": "go on"}]
            await http.post("/sessions/child-ws/events", json=hook("message", "child-ws", role="user", content=prompt))
            message = await next_message(ws, lambda m: m["type"] == "event" and m["data"]["event_type"] == "message")
            assert message["data"]["content"] == prompt and message["data"]["session_id"] == "child-ws"


class StalledClient:
    """A WebSocket client that completes the handshake and then stops reading, with a
    tiny receive window, so the server's writes really back up (a library client would
    keep reading into its own buffers)."""

    def __init__(self, port: int):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: small window
        self.sock.connect(("127.0.0.1", port))
        self.sock.sendall(b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                          b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
        head = b""
        while b"\r\n\r\n" not in head:
            head += self.sock.recv(1)
        assert head.startswith(b"HTTP/1.1 101")

    def read_until_closed(self, timeout: float) -> bytes:
        self.sock.settimeout(timeout)
        data = b""
        while chunk := self.sock.recv(65536):
            data += chunk
        return data

    @staticmethod
    def close_code(data: bytes) -> int | None:
        """Walk the (unmasked) server frames and return the close frame's status code."""
        at = 0
        while at + 2 <= len(data):
            opcode, length = data[at] & 0x0F, data[at + 1] & 0x7F
            at += 2
            if length == 126:
                length, at = int.from_bytes(data[at:at + 2], "big"), at + 2
            elif length == 127:
                length, at = int.from_bytes(data[at:at + 8], "big"), at + 8
            if opcode == 0x8:
                return int.from_bytes(data[at:at + 2], "big")
            at += length
        return None


async def test_slow_client_is_closed_and_fast_client_and_rest_are_unaffected(server):
    big = "x" * 32_000
    count = 300  # 9.6 MB: more than the kernel buffers plus the 50-message queue hold
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        await http.post("/sessions", json={"session_id": "flood", "session_name": "flood"})
        slow = await asyncio.to_thread(StalledClient, server.port)
        async with connect(ws_url(server), max_size=None) as fast:
            await next_message(fast)
            received = 0

            async def drain_fast():
                nonlocal received
                while received < count:
                    message = await next_message(fast, lambda m: m["type"] == "event" and m["data"]["session_id"] == "flood", timeout=30)
                    received += message["data"]["tool_name"] == "Flood"

            reader = asyncio.create_task(drain_fast())
            for i in range(count):
                posted = await http.post("/sessions/flood/events", json=hook("post_tool", "flood", tool_name="Flood", tool_output=big))
                assert posted.status_code == 200, posted.text
                if i % 50 == 0:
                    assert (await http.get("/health")).status_code == 200
            await asyncio.wait_for(reader, 30)
            assert received == count  # the fast client got every event
    # "Unaffected" is proved by order and counts, not by timing REST: every POST and
    # health check above was answered, and the fast client got all `count` events,
    # before the slow client read a single byte (it reads only now). A hub or a request
    # that waited for the slow client would hang there instead, until the 30 s timeouts.
    backlog = await asyncio.to_thread(slow.read_until_closed, 15)
    assert StalledClient.close_code(backlog) == 1013  # at the end of what it had been sent
    assert len(backlog) < count * len(big)  # it was cut off, not sent everything


def test_a_client_dropped_for_not_reading_is_disconnected(live_server_factory):
    """Reported: a /ws client that stopped reading was logged as dropped (its queue
    overflowed; the 1013 close, which it did not read either, was abandoned after 1 s), but
    its connection stayed open, with what was waiting to be sent to it, for as long as the
    client kept it. Now the server cuts the connection once the client has taken nothing
    for SEND_TIMEOUT_SECONDS; a client that reads again finds it ended."""
    server = live_server_factory({"SUBSCRIBER_QUEUE_SIZE": "50", "SEND_TIMEOUT_SECONDS": "1"})
    slow = StalledClient(server.port)
    client_port = slow.sock.getsockname()[1]
    with httpx.Client(base_url=server.url, timeout=30) as http:
        http.post("/sessions", json={"session_id": "flood", "session_name": "flood"}).raise_for_status()
        for i in range(300):  # until the server gives up on the client (9.6 MB at most)
            http.post("/sessions/flood/events", json=hook("post_tool", "flood", tool_name="Flood",
                                                          tool_output="x" * 32_000)).raise_for_status()
            if i % 10 == 0 and "closing it (1013)" in server.log():
                break
    assert "closing it (1013)" in server.log()
    # Up to 1 s for the close to be sent, 1 s without the client taking any of it; then gone.
    until(lambda: client_port not in server.held_connections(), 2 + 5, "the dropped client disconnected")
    assert "took nothing for 1 s" in server.log()
    try:
        backlog = slow.read_until_closed(5)  # what the kernel still held for it, then the end
    except ConnectionResetError:
        backlog = b""
    assert len(backlog) < 300 * 32_000
    assert httpx.get(f"{server.url}/health").status_code == 200


def _server_tasks() -> set[asyncio.Task]:
    """The running tasks of the server's own code (app, Quart, Hypercorn); in temporal
    mode a Temporal worker runs in this process too, its tasks coming and going."""
    def ours(task: asyncio.Task) -> bool:
        filename = getattr(getattr(task.get_coro(), "cr_code", None), "co_filename", "")
        return any(part in filename for part in ("/app/", "/quart", "/hypercorn"))

    return {t for t in asyncio.all_tasks() if ours(t) and not t.done()}


async def test_disconnect_leaves_no_connection_or_task_behind(app, client):
    hub = app.extensions["runtime"].hub
    before = _server_tasks()
    for _ in range(5):
        async with client.websocket("/ws") as ws:
            assert json.loads(await ws.receive())["type"] == "init"
            await ws.send(json.dumps({"type": "ping"}))
            # (In temporal mode, events of earlier tests' workflows may still come first.)
            while (message := json.loads(await asyncio.wait_for(ws.receive(), 10)))["type"] == "event":
                pass
            assert message == {"type": "pong"}
            assert len(hub.connections) == 1
            assert _server_tasks() - before  # the connection's handler and its helpers
    # Wait for the connections' tasks themselves to end (not a fixed sleep): one that
    # never ends is still running after 5 s and fails here.
    if left := _server_tasks() - before:
        _, running = await asyncio.wait(left, timeout=5)
        assert not running, running
    assert hub.connections == set()
    assert _server_tasks() - before == set()  # nor did ending them start others


async def test_a_rename_while_nobody_watches_is_not_lost(client):
    agent = await (await client.post("/v1/agents", json={"name": "a", "system_prompt": "p"})).get_json()
    async with client.websocket("/ws") as ws:
        assert json.loads(await ws.receive())["type"] == "init"
        sid = (await (await client.post(f"/v1/agents/{agent['id']}/sessions", json={"title": "before"})).get_json())["id"]
        assert (json.loads(await ws.receive()))["session"]["session_name"] == "before"  # the feed now knows the name
    await client.patch(f"/v1/sessions/{sid}", json={"title": "after"})  # no /ws client connected
    async with client.websocket("/ws") as ws:
        assert json.loads(await ws.receive())["type"] == "init"
        await client.post(f"/v1/sessions/{sid}/messages", json={"content": "hi"})
        event = await asyncio.wait_for(_first_event(ws, sid), 5)
    assert event["session_name"] == "after"


async def _first_event(ws, session_id):
    while True:
        message = json.loads(await ws.receive())
        if message["type"] == "event" and message["data"]["session_id"] == session_id:
            return message["data"]


# --- paging: init carries the newest page, list_sessions the next ones ----------------

async def _create(client, ids, headers=None):
    for session_id in ids:
        response = await client.post("/sessions", json={"session_id": session_id, "session_name": "n"}, headers=headers)
        assert response.status_code == 200, await response.get_json()


async def _ask(ws, **request) -> dict:
    """Send list_sessions and return the answer (a sessions or error message)."""
    await ws.send(json.dumps({"type": "list_sessions", **request}))
    while (message := json.loads(await asyncio.wait_for(ws.receive(), 5)))["type"] not in ("sessions", "error"):
        pass
    return message


def _ids(message: dict) -> list[str]:
    return [s["session_id"] for s in message["sessions"]]


async def test_init_is_the_newest_page_and_list_sessions_brings_the_rest(client):
    ids = [f"p-{i:03d}" for i in range(103)]
    await _create(client, ids)
    async with client.websocket("/ws") as ws:
        init = json.loads(await ws.receive())
        assert init["type"] == "init" and _ids(init) == ids[:2:-1]  # the newest 100, newest first
        assert init["has_more"] is True and init["next"]
        second = await _ask(ws, before=init["next"], limit=2)
        assert second["before"] == init["next"] and _ids(second) == ["p-002", "p-001"] and second["has_more"] is True
        last = await _ask(ws, before=second["next"], limit=2)
        assert _ids(last) == ["p-000"] and last["has_more"] is False and last["next"] is None
        assert sorted(_ids(init) + _ids(second) + _ids(last)) == ids  # each once
        # "3", true and 2.0 were taken as limits (reported): JSON numbers only, as documented
        for bad in ({"limit": 0}, {"limit": 99999999999999999999}, {"limit": "many"}, {"before": "nonsense"}, {"before": 5},
                    {"limit": "3"}, {"limit": True}, {"limit": 2.0}):
            error = await _ask(ws, **bad)
            assert error["type"] == "error" and error["request"] == "list_sessions" and error["detail"], (bad, error)
        await ws.send(json.dumps({"type": "ping"}))  # still served after the errors
        assert json.loads(await asyncio.wait_for(ws.receive(), 5)) == {"type": "pong"}


async def test_answers_come_in_request_order(client):
    """Reported: a pong overtook the answer to a list_sessions sent before it (the pong
    was sent at once, the page waited in the connection's queue)."""
    await _create(client, ["o-1", "o-2"])
    async with client.websocket("/ws") as ws:
        assert json.loads(await ws.receive())["type"] == "init"
        for _ in range(4):
            await ws.send(json.dumps({"type": "list_sessions", "limit": 1}))
            await ws.send(json.dumps({"type": "ping"}))
        answers = [json.loads(await asyncio.wait_for(ws.receive(), 5))["type"] for _ in range(8)]
    assert answers == ["sessions", "pong"] * 4


async def test_a_page_read_before_a_delete_reaches_the_client_before_the_delete(app, client, monkeypatch):
    """A page answers in its place in the feed: had the deletion been sent first, the
    late page would bring the deleted session back into the client's list."""
    from app.services import agent_runtime

    await _create(client, [f"p-{i:03d}" for i in range(102)])
    hub = app.extensions["runtime"].hub
    read, release, deleted = asyncio.Event(), asyncio.Event(), asyncio.Event()
    real_list, real_broadcast = agent_runtime.list_sessions, hub.broadcast

    async def list_then_wait(limit=agent_runtime.SESSION_PAGE, before=None):
        page = await real_list(limit, before)
        if before is not None:
            read.set()
            await release.wait()
        return page

    def broadcast(message, *rest):
        real_broadcast(message, *rest)
        if message["type"] == "session_deleted":
            deleted.set()

    monkeypatch.setattr(agent_runtime, "list_sessions", list_then_wait)
    monkeypatch.setattr(hub, "broadcast", broadcast)
    async with client.websocket("/ws") as ws:
        init = json.loads(await ws.receive())
        await ws.send(json.dumps({"type": "list_sessions", "before": init["next"]}))
        await asyncio.wait_for(read.wait(), 5)
        await client.delete("/sessions/p-001")  # after the read, before its answer is sent
        await asyncio.wait_for(deleted.wait(), 5)
        release.set()
        first = json.loads(await asyncio.wait_for(ws.receive(), 5))
        second = json.loads(await asyncio.wait_for(ws.receive(), 5))
    assert first["type"] == "sessions" and _ids(first) == ["p-001", "p-000"]
    assert second == {"type": "session_deleted", "session_id": "p-001"}


async def test_list_sessions_pages_only_what_the_user_may_see(full_auth):  # noqa: F811 (the fixture imported above)
    client, headers = full_auth
    await _create(client, ["alice-1", "alice-2", "alice-3"], headers["alice"])
    await _create(client, ["bob-1", "bob-2"], headers["bob"])
    async with client.websocket("/ws", headers=headers["alice"]) as ws:
        init = json.loads(await ws.receive())
        assert _ids(init) == ["alice-3", "alice-2", "alice-1"] and init["has_more"] is False
        first = await _ask(ws, limit=2)
        rest = await _ask(ws, limit=2, before=first["next"])
        assert (_ids(first), _ids(rest), rest["next"]) == (["alice-3", "alice-2"], ["alice-1"], None)
    async with client.websocket("/ws", headers=headers["admin"]) as ws:
        assert _ids(json.loads(await ws.receive())) == ["bob-2", "bob-1", "alice-3", "alice-2", "alice-1"]
        first = await _ask(ws, limit=3)
        assert _ids(first) == ["bob-2", "bob-1", "alice-3"] and _ids(await _ask(ws, before=first["next"])) == ["alice-2", "alice-1"]


def _newest_first(sessions: list[dict]) -> bool:
    from datetime import datetime

    keys = [(datetime.fromisoformat(s["created_at"]), s["session_id"]) for s in sessions]
    return all(a > b for a, b in zip(keys, keys[1:], strict=False))


async def test_paging_over_a_real_websocket(server):
    ids = [f"real-{i:03d}" for i in range(130)]
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        for start in range(0, len(ids), 10):  # ten at a time: several share a millisecond
            responses = await asyncio.gather(*(http.post("/sessions", json={"session_id": i, "session_name": "r"})
                                               for i in ids[start:start + 10]))
            assert all(r.status_code == 200 for r in responses)
        everything = []
        query = "/sessions?limit=500"
        while query:
            body = (await http.get(query)).json()
            everything += body["sessions"]
            query = body["next"] and f"/sessions?limit=500&before={body['next']}"
        async with connect(ws_url(server), max_size=None) as ws:
            init = await next_message(ws)
            assert init["type"] == "init" and len(init["sessions"]) == 100 and init["has_more"] is True
            seen, cursor = init["sessions"], init["next"]
            while cursor:
                await ws.send(json.dumps({"type": "list_sessions", "before": cursor, "limit": 40}))
                page = await next_message(ws, lambda m: m["type"] == "sessions")
                assert page["before"] == cursor and len(page["sessions"]) <= 40
                seen, cursor = seen + page["sessions"], page["next"]
    assert [s["session_id"] for s in seen] == [s["session_id"] for s in everything]  # the same, in the same order
    assert _newest_first(seen) and set(ids) <= {s["session_id"] for s in seen}
