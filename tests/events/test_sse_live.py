"""SSE against a real server process: replay, resume after a drop, filters, heartbeats,
and a turn that survives its client disconnecting. Also: kill -9 mid-turn, restart."""

from __future__ import annotations

import json
import os
import signal
import threading
import time

import httpx
import pytest

from tests.fakes import Hang, Text
from tests.helpers import FAKE_KEY
from tests.live_server import LiveServer

pytestmark = pytest.mark.both_modes  # in process and on Temporal (tests/conftest.py)


@pytest.fixture(scope="module")
def server_env(fake_llm_server):
    # The server creates its default provider from these on first start (no REST set-up).
    return {"OPENAI_API_KEY": FAKE_KEY, "OPENAI_BASE_URL": fake_llm_server.openai_base_url, "OPENAI_MODEL": "fake-model",
            "SSE_HEARTBEAT_SECONDS": "0.3", "DELTA_FLUSH_MS": "0"}


@pytest.fixture(scope="module")
def server(server_env, tmp_path_factory):
    """One server for the module's tests (each test makes its own session)."""
    live = LiveServer(server_env, tmp_path_factory.mktemp("sse-server")).start()
    yield live
    live.stop()


def new_session(base: str) -> str:
    with httpx.Client(base_url=base, timeout=10) as http:
        agent = http.post("/v1/agents", json={"name": "live", "system_prompt": "be brief"}).json()
        return http.post(f"/v1/agents/{agent['id']}/sessions", json={}).json()["id"]


def post(base: str, sid: str, text: str) -> None:
    assert httpx.post(f"{base}/v1/sessions/{sid}/messages", json={"content": text}, timeout=10).status_code == 201


def log(base: str, sid: str) -> list[dict]:
    response = httpx.get(f"{base}/v1/sessions/{sid}/events?limit=500", headers={"Accept": "application/json"}, timeout=10)
    return response.json()["data"]


def wait_log(base: str, sid: str, last_type: str, timeout: float = 10) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        events = log(base, sid)
        if events and events[-1]["type"] == last_type:
            return events
        time.sleep(0.05)
    raise AssertionError(f"log never ended with {last_type}: {[e['type'] for e in log(base, sid)]}")


def read_sse(url: str, *, headers=None, stop=lambda frame: False, max_frames=10_000, timeout=10):
    """Read frames (dicts with id/event/data, or comment/retry) until `stop(frame)` is true."""
    frames, current = [], {}
    with httpx.stream("GET", url, headers={"Accept": "text/event-stream", **(headers or {})},
                      timeout=httpx.Timeout(timeout)) as response:
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line == "":
                if current:
                    frames.append(current)
                    if stop(current) or len(frames) >= max_frames:
                        return frames
                current = {}
            elif line.startswith(":"):
                current = {"comment": line[1:].strip()}
            else:
                key, _, value = line.partition(": ")
                current[key] = json.loads(value) if key == "data" else value
    return frames


def events_only(frames):
    return [f for f in frames if "event" in f]


def test_stream_replays_then_goes_live_and_resumes_without_loss_or_repeats(server, fake_llm):
    sid = new_session(server.url)
    fake_llm.script(Text([f"part{i} " for i in range(30)], delay=0.03))
    post(server.url, sid, "tell me")
    url = f"{server.url}/v1/sessions/{sid}/events"
    first = read_sse(url, stop=lambda f: f.get("event") == "message.delta" and "part5" in f["data"]["delta"])
    assert first[0] == {"retry": "2000"}
    seen = events_only(first)
    # The connection is dropped here, mid-stream; the turn goes on without us.
    wait_log(server.url, sid, "session.completed")
    rest = events_only(read_sse(url, headers={"Last-Event-ID": seen[-1]["id"]},
                                stop=lambda f: f.get("event") == "session.completed"))
    got = [int(f["id"]) for f in seen + rest]
    full = log(server.url, sid)
    assert got == [e["sequence"] for e in full] == list(range(1, len(full) + 1))
    assert "".join(f["data"]["delta"] for f in seen + rest if f["event"] == "message.delta") == "".join(f"part{i} " for i in range(30))
    assert all(f["data"]["session_id"] == sid for f in seen + rest)


def test_since_types_exclude_and_the_sse_alias(server, fake_llm):
    sid = new_session(server.url)
    post(server.url, sid, "hi")
    full = wait_log(server.url, sid, "session.completed")
    frames = events_only(read_sse(f"{server.url}/v1/sessions/{sid}/sse?since=2&types=message.created,session.completed",
                                  stop=lambda f: f.get("event") == "session.completed"))
    assert {f["event"] for f in frames} == {"message.created", "session.completed"}
    assert all(int(f["id"]) > 2 for f in frames)
    no_deltas = events_only(read_sse(f"{server.url}/v1/sessions/{sid}/events?exclude=message.delta",
                                     stop=lambda f: f.get("event") == "session.completed"))
    assert [int(f["id"]) for f in no_deltas] == [e["sequence"] for e in full if e["type"] != "message.delta"]


def test_idle_stream_sends_heartbeats(server):
    sid = new_session(server.url)
    heartbeats = 0

    def third_heartbeat(frame) -> bool:
        nonlocal heartbeats
        heartbeats += frame == {"comment": "keepalive"}
        return heartbeats == 3

    # Counted, not timed end to end: three heartbeats in a row on a stream with nothing
    # else to send, so not a one-off. The interval is the behaviour, so one generous
    # bound stays: the server is set to 0.3 s (server_env) and each read may wait 5 s
    # (httpx's read timeout), which the 15 s default, or no heartbeat, never meets.
    frames = read_sse(f"{server.url}/v1/sessions/{sid}/events", stop=third_heartbeat, timeout=5)
    assert frames[0] == {"retry": "2000"} and frames[-3:] == [{"comment": "keepalive"}] * 3
    assert events_only(frames) == [{"id": str(e["sequence"]), "event": e["type"], "data": e} for e in log(server.url, sid)]


def test_bad_last_event_id_and_unknown_session(server):
    sid = new_session(server.url)
    response = httpx.get(f"{server.url}/v1/sessions/{sid}/events", headers={"Last-Event-ID": "abc"}, timeout=5)
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_request"
    assert httpx.get(f"{server.url}/v1/sessions/nope/events", timeout=5).status_code == 404


def test_a_session_named_star_streams_only_its_own_events(server):
    """`*` is a valid Agent Runtime session id; the bus once used it as its "every
    session" key, so this session's stream carried every other session's events."""
    def hook(sid: str, tool: str) -> None:
        event = {"event_type": "pre_tool", "session_id": sid, "session_name": "n", "tool_name": tool,
                 "timestamp": "2025-11-16T10:30:16.000000Z"}
        assert httpx.post(f"{server.url}/sessions/{sid}/events", json=event, timeout=5).json()["ok"] is True

    for sid in ("*", "next-to-star"):
        assert httpx.post(f"{server.url}/sessions", json={"session_id": sid, "session_name": "n"}, timeout=5).status_code == 200
    frames: list[dict] = []
    reader = threading.Thread(target=lambda: frames.extend(read_sse(
        f"{server.url}/v1/sessions/*/events", stop=lambda f: f.get("data", {}).get("tool_name") == "Last")))
    reader.start()
    time.sleep(0.5)  # the stream is open (an event missed here would still be replayed from the log)
    hook("next-to-star", "Elsewhere")
    httpx.post(f"{server.url}/v1/agents", json={"name": "a notice on the bus"}, timeout=5)
    hook("*", "Last")
    reader.join(timeout=15)
    assert not reader.is_alive()
    tools = [f["data"].get("tool_name") for f in events_only(frames)]
    assert tools[-1] == "Last" and "Elsewhere" not in tools, tools


def test_client_disconnect_does_not_affect_the_turn(server, fake_llm):
    sid = new_session(server.url)
    fake_llm.script(Text(["slow ", "but ", "sure"], delay=0.2))
    post(server.url, sid, "go")
    read_sse(f"{server.url}/v1/sessions/{sid}/events", stop=lambda f: f.get("event") == "message.delta")
    events = wait_log(server.url, sid, "session.completed")
    texts = [e["data"]["content"]["text"] for e in events if e["type"] == "message.created" and e["data"]["role"] == "assistant"]
    assert texts == ["slow but sure"]


def test_kill_mid_turn_then_restart_leaves_no_session_running(live_server_factory, server_env, fake_llm, tmp_path):
    server = live_server_factory(server_env, data_dir=tmp_path / "node")
    sid = new_session(server.url)
    fake_llm.script(Hang(["thinking..."], seconds=30))
    post(server.url, sid, "a long task")
    wait_log(server.url, sid, "message.delta")
    assert httpx.get(f"{server.url}/v1/sessions/{sid}").json()["status"] == "running"
    os.kill(server.proc.pid, signal.SIGKILL)
    server.proc.wait()

    again = live_server_factory(server_env, data_dir=tmp_path / "node")
    after = httpx.get(f"{again.url}/v1/sessions/{sid}").json()
    assert after["status"] == "failed" and "restarted" in after["last_error"]
    events = log(again.url, sid)
    last = events[-1]
    assert last["type"] == "session.failed" and last["data"]["code"] == "server_restarted"
    # Reported: no message_id (§4.3), and the streamed text was dropped, its deltas naming
    # a message that never existed. The failure names the turn's message, and what the
    # user saw streamed is kept as the assistant message the deltas name (as §5.4 keeps it
    # for any failure).
    started = next(e for e in events if e["type"] == "session.started")
    assert last["data"]["message_id"] == started["data"]["message_id"]
    delta = next(e for e in events if e["type"] == "message.delta")
    kept = [m for m in httpx.get(f"{again.url}/v1/sessions/{sid}/messages").json()["data"] if m["role"] == "assistant"]
    assert [(m["id"], m["content"]["text"]) for m in kept] == [(delta["data"]["message_id"], "thinking...")]
    post(again.url, sid, "try again")  # a failed session takes new messages
    assert wait_log(again.url, sid, "session.completed")[-1]["type"] == "session.completed"
    sent = fake_llm.requests[-1]["json"]["messages"]
    assert {"role": "assistant", "content": "thinking..."} in sent  # the model sees what was said
