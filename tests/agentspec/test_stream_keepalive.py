"""AgentSpec /stream keep-alives follow what the stream itself sent (app/api/agentspec.py).

Reported: a /stream queued behind another turn of the same session sent no byte at all,
keep-alives included, until its own turn began (5.8 s with SSE_HEARTBEAT_SECONDS=2): the
earlier turn's events reset the idle timer but were left out of this stream. A client or
proxy with an idle timeout could drop it."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from tests.agentspec.test_agentspec import agent_named
from tests.fakes import Text
from tests.helpers import wait_for_event

HEARTBEAT = 0.3


@pytest.fixture
def settings(settings):
    return settings.replace(sse_heartbeat_seconds=HEARTBEAT, delta_flush_ms=0)


async def test_a_stream_queued_behind_another_turn_gets_keepalives(client, fake_llm):
    await agent_named(client, fake_llm, prompt="p")
    sid = (await (await client.post("/v1/agents/assistant/sessions")).get_json())["id"]
    # The earlier turn streams a chunk every 0.2 s (faster than the heartbeat) for 2.4 s.
    fake_llm.script(Text([f"c{i} " for i in range(13)], delay=0.2), Text(["two"]))
    await client.post(f"/v1/sessions/{sid}/messages", json={"content": "one"})
    await wait_for_event(client, sid, "message.delta")
    reads: list[tuple[float, bytes]] = []
    async with client.request("/v1/agents/assistant/stream", method="POST",
                              headers={"Content-Type": "application/json"}) as conn:
        await conn.send(json.dumps({"input": "two", "session_id": sid}).encode())
        await conn.send_complete()
        opened = time.monotonic()
        while not any(b"event: done" in chunk for _, chunk in reads):
            reads.append((time.monotonic() - opened, await asyncio.wait_for(conn.receive(), 10)))
    own_turn_at = next(at for at, chunk in reads if b"event:" in chunk)
    assert own_turn_at > 1.5, "the earlier turn should still have been running"
    waiting = [at for at, chunk in reads if chunk == b": keepalive\n\n" and at < own_turn_at]
    # One every HEARTBEAT while it waited (allowing for a slow machine), not none.
    assert len(waiting) >= 3, reads
    gaps = [b - a for a, b in zip([0.0, *waiting], waiting, strict=False)]
    assert max(gaps) < HEARTBEAT * 3, gaps
    body = b"".join(chunk for _, chunk in reads)
    # Still only its own turn's text. The earlier turn's chunks are "c0 ", "c1 " ... as JSON
    # strings: a bare b"c0" also matched the session id in `done` (a random UUID holds "c0"
    # about one time in nine), which made this test fail now and then.
    assert not any(f'"c{i} '.encode() in body for i in range(13)) and b'{"text":"two"}' in body, body.decode()
