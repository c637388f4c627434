"""RUNNER_MODE=temporal with real processes: two API servers and two workers on one
PostgreSQL database, Redis and the Temporal dev server. Nothing is mocked; the model is
the fake provider on loopback."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest
import websockets

from tests.cluster import Cluster, cluster_env
from tests.fakes import Text
from tests.helpers import FAKE_KEY

TERMINAL = ("session.completed", "session.failed", "session.cancelled")


@pytest.fixture
def cluster(tmp_path, postgres_url, redis_url, temporal_server, task_queue):
    cluster = Cluster(cluster_env(postgres_url, redis_url, temporal_server.address, task_queue, tmp_path), tmp_path)
    try:
        yield cluster
    except BaseException:
        print(cluster.logs())
        raise
    finally:
        cluster.stop()


async def make_session(api_url: str, fake) -> str:
    async with httpx.AsyncClient(base_url=api_url, timeout=10) as http:
        provider = (await http.post("/v1/llm-providers", json={
            "name": "fake", "provider_type": "openai", "base_url": fake.openai_base_url, "api_key": FAKE_KEY,
            "is_default": True})).json()
        await http.post(f"/v1/llm-providers/{provider['id']}/models", json={"model_id": "fake-model", "is_default": True})
        agent = (await http.post("/v1/agents", json={"name": "Helper", "system_prompt": "Be terse."})).json()
        return (await http.post(f"/v1/agents/{agent['id']}/sessions", json={})).json()["id"]


async def log_of(api_url: str, session_id: str) -> list[dict]:
    async with httpx.AsyncClient(base_url=api_url, timeout=10) as http:
        events, after = [], 0
        while True:
            page = (await http.get(f"/v1/sessions/{session_id}/events", params={"after": after, "limit": 500},
                                   headers={"Accept": "application/json"})).json()
            events += page["data"]
            if not page["data"]:
                return events
            after = page["next_after"]


async def wait_terminal(api_url: str, session_id: str, count: int, timeout: float = 60) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        log = await log_of(api_url, session_id)
        if sum(e["type"] in TERMINAL for e in log) >= count:
            return log
        assert time.monotonic() < deadline, f"{count} turns did not end; log: {[e['type'] for e in log]}"
        await asyncio.sleep(0.2)


def assert_contiguous(log: list[dict]) -> None:
    assert [e["sequence"] for e in log] == list(range(1, len(log) + 1))


async def post(api_url: str, session_id: str, text: str) -> dict:
    async with httpx.AsyncClient(base_url=api_url, timeout=10) as http:
        response = await http.post(f"/v1/sessions/{session_id}/messages", json={"content": text})
        assert response.status_code == 201, response.text
        return response.json()


async def read_sse(url: str, until: str, into: list[dict], ready: asyncio.Event) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        async with http.stream("GET", url) as response:
            ready.set()
            kind = None
            async for line in response.aiter_lines():
                if line.startswith("event: "):
                    kind = line[7:]
                elif line.startswith("data: "):
                    into.append({"type": kind, "data": json.loads(line[6:]), "at": time.monotonic()})
                    if kind == until:
                        return


async def test_a_turn_posted_to_one_api_streams_live_on_the_other(cluster, fake_llm):
    a, b = cluster.add_api(), cluster.add_api()
    cluster.add_worker()
    session_id = await make_session(a.url, fake_llm)
    fake_llm.script(Text(["one ", "two ", "three ", "four"], delay=0.3))

    sse: list[dict] = []
    ready = asyncio.Event()
    reader = asyncio.create_task(read_sse(f"{b.url}/v1/sessions/{session_id}/events", "session.completed", sse, ready))
    ws_messages: list[dict] = []

    async def read_ws() -> None:
        async with websockets.connect(f"ws://127.0.0.1:{b.port}/ws") as ws:
            while True:
                message = json.loads(await ws.recv())
                ws_messages.append(message)
                if message.get("type") == "event" and message["data"]["type"] == "session.completed":
                    return

    ws_task = asyncio.create_task(read_ws())
    await asyncio.wait_for(ready.wait(), 10)
    await asyncio.sleep(0.3)
    posted_at = time.monotonic()
    await post(a.url, session_id, "count")
    await asyncio.wait_for(reader, 30)

    deltas = [e for e in sse if e["type"] == "message.delta"]
    assert "".join(d["data"]["delta"] for d in deltas) == "one two three four"
    assert deltas[0]["at"] - posted_at < 0.5  # live, not at the end (the answer takes ~1 s)
    log = await log_of(b.url, session_id)
    assert_contiguous(log)
    assert [e["type"] for e in sse] == [e["type"] for e in log]  # every event, in order
    await asyncio.wait_for(ws_task, 10)
    ws_events = [m["data"] for m in ws_messages if m.get("type") == "event" and m["data"]["session_id"] == session_id]
    assert [e["sequence"] for e in ws_events] == [e["sequence"] for e in log if e["sequence"] >= ws_events[0]["sequence"]]
