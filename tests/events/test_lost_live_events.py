"""A stored event whose live copy never came (temporal mode: another process appended it
while Redis was down or reconnecting) still reaches every stream: the log is the truth.

Reported with a real cluster: a /v1 SSE client stalled until the session's next event
(which may never come), and an AgentSpec /stream never ended at all, though the turn had
finished. Here the lost event is written straight into the database, as that other
process did, with nothing published; the streams must find it on their own."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import threading
import time

import httpx
import pytest

from tests.fakes import Hang
from tests.helpers import FAKE_KEY
from tests.live_server import LiveServer

QUIET_SECONDS = 0.5  # SSE_HEARTBEAT_SECONDS: how long a stream waits before it reads the log


@pytest.fixture
def server(fake_llm, tmp_path):
    live = LiveServer({"OPENAI_API_KEY": FAKE_KEY, "OPENAI_BASE_URL": fake_llm.openai_base_url,
                       "OPENAI_MODEL": "fake-model", "SSE_HEARTBEAT_SECONDS": str(QUIET_SECONDS)}, tmp_path).start()
    yield live
    live.stop()


def append_unannounced(data_dir, session_id: str, type: str, data: dict) -> int:
    """Store an event as another process would, its live copy lost; its sequence."""
    with sqlite3.connect(data_dir / "runtime.sqlite3") as db:
        (last,) = db.execute("SELECT MAX(sequence) FROM events WHERE session_id = ?", (session_id,)).fetchone()
        stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f+00:00")
        db.execute("INSERT INTO events (session_id, sequence, type, data, created_at) VALUES (?, ?, ?, ?, ?)",
                   (session_id, last + 1, type, json.dumps({"session_id": session_id, **data}), stamp))
    return last + 1


def test_a_v1_sse_stream_finds_an_event_it_was_not_sent(server, tmp_path):
    base = server.url
    httpx.post(f"{base}/sessions", json={"session_id": "ext-lost", "session_name": "x"}).raise_for_status()
    httpx.post(f"{base}/sessions/ext-lost/events", json={"event_type": "pre_tool", "session_id": "ext-lost",
                                                          "session_name": "x", "tool_name": "Bash",
                                                          "timestamp": "2026-01-01T00:00:00Z"}).raise_for_status()
    seen: list[str] = []
    opened = threading.Event()

    def listen() -> None:
        with httpx.stream("GET", f"{base}/v1/sessions/ext-lost/events", headers={"Accept": "text/event-stream"},
                          timeout=10) as response:
            for line in response.iter_lines():
                opened.set()
                if line.startswith("id: "):
                    seen.append(line[4:])
                    if len(seen) == 2:
                        return

    reader = threading.Thread(target=listen, daemon=True)
    reader.start()
    assert opened.wait(5)
    time.sleep(0.2)  # the replay is over: the stream waits for live events
    lost = append_unannounced(tmp_path, "ext-lost", "post_tool", {"tool_name": "Bash", "tool_output": "ok"})
    started = time.monotonic()
    reader.join(5)
    assert seen == ["1", str(lost)] and time.monotonic() - started < QUIET_SECONDS + 3


def test_an_agentspec_stream_ends_on_a_terminal_event_it_was_not_sent(server, tmp_path, fake_llm):
    base = server.url
    with httpx.Client(base_url=base, timeout=10) as http:
        agent = http.post("/v1/agents", json={"name": "slow", "system_prompt": "p"}).json()
        session = http.post(f"/v1/agents/{agent['id']}/sessions", json={}).json()["id"]
        fake_llm.script(Hang(["thinking"], seconds=30))
        assert http.post(f"/v1/sessions/{session}/messages", json={"content": "first"}).status_code == 201
        frames: list[str] = []

        def stream() -> None:  # queued behind the hanging turn
            with httpx.stream("POST", f"{base}/v1/agents/{agent['id']}/stream",
                              json={"input": "second", "session_id": session}, timeout=15) as response:
                frames.extend(line for line in response.iter_lines() if line.startswith(("event:", "data:")))

        streaming = threading.Thread(target=stream, daemon=True)
        streaming.start()
        deadline = time.monotonic() + 5
        while len(users := [m for m in http.get(f"/v1/sessions/{session}/messages").json()["data"]
                            if m["role"] == "user"]) < 2:
            assert time.monotonic() < deadline, "the streamed message was never stored"
            time.sleep(0.05)
        # Another process dropped the queued turn (a cancel), and its event's live copy was lost.
        append_unannounced(tmp_path, session, "session.cancelled",
                           {"reason": "cancelled by request", "message_id": None, "dropped_message_ids": [users[1]["id"]]})
        streaming.join(QUIET_SECONDS + 5)
        assert not streaming.is_alive(), "the stream never ended"
        assert frames[-2:] == ["event: error", 'data: {"code":"cancelled","message":"cancelled by request"}']
        http.post(f"/v1/sessions/{session}/cancel")
