"""The /ws hub reads from the log what it lost by falling behind.

The hub listens to every session through one bounded queue (HUB_QUEUE_SIZE). A burst
larger than that queue, published while the hub could not run, overflowed it: the bus
dropped the oldest queued event to make room for its end marker, and dropped everything
published after it; the hub subscribed again and logged "clients may need to reload".
The /ws clients never got those events, although every one of them is in the log."""

from __future__ import annotations

import asyncio
import json

import pytest

import app.events.ws as ws_module

BURST = 30


@pytest.fixture
def small_hub(monkeypatch):
    monkeypatch.setattr(ws_module, "HUB_QUEUE_SIZE", 5)  # read when the hub subscribes (at start-up)


async def _events_of(ws, session_id: str, count: int) -> list[int]:
    sequences: list[int] = []
    while len(sequences) < count:
        message = json.loads(await asyncio.wait_for(ws.receive(), 5))
        if message["type"] == "event" and message["data"]["session_id"] == session_id:
            sequences.append(message["data"]["sequence"])
    return sequences


async def test_a_burst_larger_than_the_hubs_queue_reaches_ws_clients_whole(small_hub, app, client, caplog):
    events = app.extensions["runtime"].events
    assert (await client.post("/sessions", json={"session_id": "burst", "session_name": "n"})).status_code == 200
    async with client.websocket("/ws") as ws:
        assert json.loads(await ws.receive())["type"] == "init"
        # Stored and published back to back: SQLite writes run on this thread without
        # yielding, so the hub cannot run until the burst is over.
        for i in range(BURST):
            await events.append("burst", "post_tool", {"tool_name": "Bash", "tool_output": str(i)})
        assert await _events_of(ws, "burst", BURST) == list(range(1, BURST + 1))
        # and live events after it still come, once each
        await events.append("burst", "post_tool", {"tool_name": "Bash", "tool_output": "after"})
        assert await _events_of(ws, "burst", 1) == [BURST + 1]
    assert "/ws hub fell behind" in caplog.text
