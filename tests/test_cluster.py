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
    (a, b), _ = cluster.start(apis=2, workers=1)
    session_id = await make_session(a.url, fake_llm)
    fake_llm.script(Text(["one ", "two ", "three ", "four"], delay=0.3))

    sse: list[dict] = []
    ready = asyncio.Event()
    reader = asyncio.create_task(read_sse(f"{b.url}/v1/sessions/{session_id}/events", "session.completed", sse, ready))
    ws_messages: list[dict] = []

    async def read_ws() -> None:
        async with websockets.connect(f"ws://127.0.0.1:{b.port}/ws?events=all") as ws:
            while True:
                message = json.loads(await ws.recv())
                ws_messages.append(message)
                if message.get("type") == "event" and message["data"]["type"] == "session.completed" \
                        and message["data"]["session_id"] == session_id:
                    return

    ws_task = asyncio.create_task(read_ws())
    await asyncio.wait_for(ready.wait(), 10)
    await asyncio.sleep(0.3)
    posted_at = time.monotonic()
    await post(a.url, session_id, "count")
    await asyncio.wait_for(reader, 30)

    deltas = [e for e in sse if e["type"] == "message.delta"]
    assert "".join(d["data"]["delta"] for d in deltas) == "one two three four"
    # Live, not at the end: the first delta came while the rest of the answer (three more
    # chunks 0.3 s apart) was still being written. Measured from the answer's end, not from
    # the POST: how soon a worker starts the turn is not what this test is about, and on a
    # loaded 2-core machine it once took 0.64 s.
    completed_at = next(e["at"] for e in sse if e["type"] == "session.completed")
    assert completed_at - deltas[0]["at"] > 0.5
    assert deltas[0]["at"] > posted_at
    log = await log_of(b.url, session_id)
    assert_contiguous(log)
    assert [e["type"] for e in sse] == [e["type"] for e in log]  # every event, in order
    await asyncio.wait_for(ws_task, 10)
    ws_events = [m["data"] for m in ws_messages if m.get("type") == "event" and m["data"]["session_id"] == session_id]
    assert [e["sequence"] for e in ws_events] == [e["sequence"] for e in log if e["sequence"] >= ws_events[0]["sequence"]]


def turns_in_order(log: list[dict], user_messages: list[dict]) -> None:
    """Each turn starts after the previous one ended, and they answer the user messages
    in the order the messages were stored (their sequence: the posting order)."""
    open_turn = None
    started = []
    for event in log:
        if event["type"] == "session.started":
            assert open_turn is None, f"turn {event['data']['message_id']} started while {open_turn} ran"
            open_turn = event["data"]["message_id"]
            started.append(open_turn)
        elif event["type"] in TERMINAL and event["data"].get("message_id"):
            assert event["data"]["message_id"] == open_turn
            open_turn = None
    assert started == [m["id"] for m in sorted(user_messages, key=lambda m: m["sequence"])]


async def test_concurrent_messages_through_two_apis_run_one_at_a_time_in_order(cluster, fake_llm):
    (a, b), _ = cluster.start(apis=2, workers=2)
    session_id = await make_session(a.url, fake_llm)
    fake_llm.script(*[Text([f"answer {i}", "."], delay=0.02) for i in range(20)])

    posted = await asyncio.gather(*(post((a, b)[i % 2].url, session_id, f"message {i}") for i in range(20)))
    log = await wait_terminal(a.url, session_id, 20)
    assert_contiguous(log)
    turns_in_order(log, posted)
    assert [e["type"] for e in log if e["type"] in TERMINAL] == ["session.completed"] * 20
    async with httpx.AsyncClient(base_url=b.url) as http:
        stored = (await http.get(f"/v1/sessions/{session_id}/messages", params={"limit": 100})).json()["data"]
    assert [m["role"] for m in stored].count("assistant") == 20


async def test_cancel_through_the_other_api(cluster, fake_llm):
    (a, b), _ = cluster.start(apis=2, workers=1)
    session_id = await make_session(a.url, fake_llm)
    fake_llm.script(Text([f"word{i} " for i in range(100)], delay=0.1))
    await post(a.url, session_id, "talk for a while")
    deadline = time.monotonic() + 20
    while not any(e["type"] == "message.delta" for e in await log_of(a.url, session_id)):
        assert time.monotonic() < deadline
        await asyncio.sleep(0.1)

    started = time.monotonic()
    async with httpx.AsyncClient(base_url=b.url, timeout=10) as http:
        answer = (await http.post(f"/v1/sessions/{session_id}/cancel")).json()
    assert answer["cancelled"] is True and answer["status"] == "pending"
    assert time.monotonic() - started < 1.0
    log = await wait_terminal(a.url, session_id, 1)
    assert log[-1]["type"] == "session.cancelled"
    assert_contiguous(log)
    async with httpx.AsyncClient(base_url=a.url) as http:
        stored = (await http.get(f"/v1/sessions/{session_id}/messages")).json()["data"]
    assert stored[-1]["role"] == "assistant" and stored[-1]["content"]["text"].startswith("word0 ")  # kept


async def running_worker_pid(temporal_address: str, session_id: str) -> int:
    """The pid of the worker running the session's model call (its identity is pid@host)."""
    from temporalio.client import Client

    client = await Client.connect(temporal_address)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        description = await client.get_workflow_handle(f"session:{session_id}").describe()
        for pending in description.raw_description.pending_activities:
            if pending.last_worker_identity:
                return int(pending.last_worker_identity.split("@")[0])
        await asyncio.sleep(0.1)
    raise AssertionError("no worker is running the session's activity")


async def test_kill_9_of_the_worker_mid_stream_the_other_finishes_the_turn(cluster, fake_llm, temporal_server):
    (a,), workers = cluster.start(apis=1, workers=2)
    session_id = await make_session(a.url, fake_llm)
    fake_llm.script(Text([f"slow{i} " for i in range(60)], delay=0.1), Text(["the ", "final ", "answer"]))
    await post(a.url, session_id, "answer slowly")
    deadline = time.monotonic() + 20
    while sum(e["type"] == "message.delta" for e in await log_of(a.url, session_id)) < 3:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.1)
    pid = await running_worker_pid(temporal_server.address, session_id)
    victim = next(w for w in workers if w.pid == pid)
    victim.kill()

    log = await wait_terminal(a.url, session_id, 1, timeout=60)
    assert_contiguous(log)
    assert log[-1]["type"] == "session.completed"
    retried = [e for e in log if e["type"] == "step.retried"]
    assert len(retried) == 1 and retried[0]["data"]["attempt"] == 2
    step_message = retried[0]["data"]["message_id"]
    before = [e for e in log if e["type"] == "message.delta" and e["sequence"] < retried[0]["sequence"]]
    after = [e for e in log if e["type"] == "message.delta" and e["sequence"] > retried[0]["sequence"]]
    assert before and all("attempt" not in e["data"] for e in before)  # the abandoned partial text
    assert "".join(e["data"]["delta"] for e in after) == "the final answer"
    assert all(e["data"]["attempt"] == 2 and e["data"]["message_id"] == step_message for e in after)
    async with httpx.AsyncClient(base_url=a.url) as http:
        stored = (await http.get(f"/v1/sessions/{session_id}/messages")).json()["data"]
        status = (await http.get(f"/v1/sessions/{session_id}")).json()["status"]
    assert [(m["role"], m["content"]) for m in stored] == [("user", {"text": "answer slowly"}),
                                                            ("assistant", {"text": "the final answer"})]
    assert stored[1]["id"] == step_message and status == "pending"


async def test_an_agentspec_stream_says_when_its_step_is_retried(cluster, fake_llm, temporal_server):
    """Reported: after kill -9 of the worker mid-answer, /stream left `step.retried` out, so
    a client joining the tokens got "slow0 slow1 … the final answer" where the stored answer
    is "the final answer". The stream now sends a `retry` frame (drop the step's text so
    far) and `done` carries the answer as stored."""
    (a,), workers = cluster.start(apis=1, workers=2)
    session_id = await make_session(a.url, fake_llm)
    async with httpx.AsyncClient(base_url=a.url, timeout=10) as http:
        agent = (await http.get(f"/v1/sessions/{session_id}")).json()["agent_id"]
    fake_llm.script(Text([f"slow{i} " for i in range(60)], delay=0.1), Text(["the ", "final ", "answer"]))

    async def stream() -> list[tuple[str, dict]]:
        frames, kind = [], None
        async with httpx.AsyncClient(base_url=a.url, timeout=60) as http, \
                http.stream("POST", f"/v1/agents/{agent}/stream", json={"input": "answer slowly"}) as response:
            async for line in response.aiter_lines():
                if line.startswith("event: "):
                    kind = line[7:]
                elif line.startswith("data: "):
                    frames.append((kind, json.loads(line[6:])))
        return frames

    streaming = asyncio.create_task(stream())
    deadline = time.monotonic() + 20
    while True:
        async with httpx.AsyncClient(base_url=a.url, timeout=10) as http:
            listed = (await http.get("/v1/sessions")).json()["data"]
        sessions = [s["id"] for s in listed if s["agent_id"] == agent and s["id"] != session_id]
        if sessions and sum(e["type"] == "message.delta" for e in await log_of(a.url, sessions[0])) >= 3:
            break
        assert time.monotonic() < deadline, "the streamed turn never began"
        await asyncio.sleep(0.1)
    pid = await running_worker_pid(temporal_server.address, sessions[0])
    next(w for w in workers if w.pid == pid).kill()
    frames = await asyncio.wait_for(streaming, 60)

    kinds = [k for k, _ in frames]
    assert kinds.count("retry") == 1 and kinds[-1] == "done", kinds
    cut = kinds.index("retry")
    assert frames[cut][1]["attempt"] == 2
    assert "".join(d["content"] for k, d in frames[cut:] if k == "token") == "the final answer"
    assert frames[-1][1]["output"] == "the final answer"


async def test_rolling_restart_of_every_process_loses_no_turn(cluster, fake_llm):
    apis, workers = cluster.start(apis=2, workers=2)
    sessions = [await make_session(apis[0].url, fake_llm) for _ in range(1)]
    sessions += [await _another_session(apis[0].url) for _ in range(19)]
    fake_llm.script(*[Text([f"reply {i} ", "in ", "parts"], delay=0.15) for i in range(40)])
    for i, session_id in enumerate(sessions):
        await post(apis[i % 2].url, session_id, f"turn {i}")

    for process in [*workers, *apis]:  # one by one, while the turns run
        if process in workers:
            cluster.restart_worker(process)
        else:
            cluster.restart_api(process)

    for session_id in sessions:
        log = await wait_terminal(apis[0].url, session_id, 1, timeout=90)
        assert_contiguous(log)
        assert [e["type"] for e in log if e["type"] in TERMINAL] == ["session.completed"]
        async with httpx.AsyncClient(base_url=apis[1].url) as http:
            stored = (await http.get(f"/v1/sessions/{session_id}/messages")).json()["data"]
        assert [m["role"] for m in stored] == ["user", "assistant"]


async def _another_session(api_url: str) -> str:
    async with httpx.AsyncClient(base_url=api_url, timeout=10) as http:
        agent = (await http.get("/v1/agents")).json()["data"][0]
        return (await http.post(f"/v1/agents/{agent['id']}/sessions", json={})).json()["id"]


async def test_a_pipeline_run_survives_killed_workers_and_a_restarted_api(cluster, fake_llm):
    (a, b), workers = cluster.start(apis=2, workers=2)
    await make_session(a.url, fake_llm)  # the provider, model and agent "Helper"
    fake_llm.script(*[Text([f"step {i} ", "says ", "hello"], delay=0.3) for i in range(6)])
    async with httpx.AsyncClient(base_url=a.url, timeout=10) as http:
        created = await http.post("/v1/pipelines", json={"name": "chain", "steps": [
            {"name": "first", "agent": "Helper"},
            {"name": "second", "agent": "Helper", "depends_on": ["first"]},
            {"name": "third", "agent": "Helper", "depends_on": ["second"]}]})
        assert created.status_code == 201, created.text
        started = (await http.post("/v1/pipelines/chain/run", json={"input": "go", "wait": False})).json()
    run_id = started["run_id"]

    await asyncio.sleep(1.0)  # the first step is streaming
    workers[0].kill()
    cluster.restart_api(a)
    await asyncio.sleep(1.0)
    workers[1].kill()  # now nothing runs it until a worker comes back
    workers[0].start()

    deadline = time.monotonic() + 90
    async with httpx.AsyncClient(base_url=b.url, timeout=10) as http:
        while True:
            status = (await http.get("/v1/pipelines/chain/status", params={"run_id": run_id})).json()
            if status["status"] != "running":
                break
            assert time.monotonic() < deadline, status
            await asyncio.sleep(0.3)
    assert status["status"] == "completed", status
    assert [s["status"] for s in status["steps"]] == ["completed"] * 3
    assert status["output"].endswith("says hello")
    for step in status["steps"]:  # each step's session answered once
        log = await log_of(b.url, step["session_id"])
        assert_contiguous(log)
        assert [e["type"] for e in log if e["type"] in TERMINAL] == ["session.completed"]


async def test_hook_events_and_a_turn_from_four_processes_number_one_log(cluster, fake_llm):
    """Two APIs take Agent Runtime hook events for a session while a worker streams its
    turn: every writer shares one gap-free sequence."""
    (a, b), _ = cluster.start(apis=2, workers=2)
    session_id = await make_session(a.url, fake_llm)
    fake_llm.script(Text([f"w{i} " for i in range(30)], delay=0.03))
    await post(a.url, session_id, "stream while others write")

    async def hook(api_url: str, i: int) -> None:
        async with httpx.AsyncClient(base_url=api_url, timeout=10) as http:
            response = await http.post(f"/sessions/{session_id}/events", json={
                "event_type": "message", "session_id": session_id, "session_name": "x", "role": "assistant",
                "timestamp": "2025-11-16T10:30:16Z", "content": f"hook {i}"})
            assert response.status_code == 200, response.text

    await asyncio.gather(*(hook((a, b)[i % 2].url, i) for i in range(60)))
    log = await wait_terminal(a.url, session_id, 1)
    assert_contiguous(log)
    assert sum(e["type"] == "message" for e in log) == 60
    assert [e["type"] for e in log if e["type"] in TERMINAL] == ["session.completed"]


async def test_a_model_change_through_one_api_reaches_the_workers_at_once(cluster, fake_llm):
    (a, b), _ = cluster.start(apis=2, workers=1)
    session_id = await make_session(a.url, fake_llm)
    await post(a.url, session_id, "first")
    await wait_terminal(a.url, session_id, 1)
    assert fake_llm.requests[-1]["json"]["model"] == "fake-model"  # the worker has cached it now

    async with httpx.AsyncClient(base_url=b.url, timeout=10) as http:
        provider = (await http.get("/v1/llm-providers")).json()["data"][0]
        created = await http.post(f"/v1/llm-providers/{provider['id']}/models",
                                  json={"model_id": "newer-model", "is_default": True})
        assert created.status_code == 201, created.text
    await post(a.url, session_id, "second")  # well within the cache's 5 s
    await wait_terminal(a.url, session_id, 2)
    assert fake_llm.requests[-1]["json"]["model"] == "newer-model"


async def test_a_worker_serves_the_counters_of_the_turns_it_ran(cluster, fake_llm):
    from tests.live_server import free_port

    port = free_port()
    (a,), _ = cluster.start(apis=1, workers=1, WORKER_METRICS_BIND=f"127.0.0.1:{port}")
    session_id = await make_session(a.url, fake_llm)
    fake_llm.script(Text(["one"], input_tokens=7, output_tokens=3), Text(["two"], input_tokens=7, output_tokens=3))
    await post(a.url, session_id, "first")
    await wait_terminal(a.url, session_id, 1)
    await post(a.url, session_id, "second")
    await wait_terminal(a.url, session_id, 2)
    async with httpx.AsyncClient(timeout=10) as http:
        text = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
    assert 'agentspec_turns_total{outcome="completed"} 2.0' in text
    assert 'agentspec_tokens_total{kind="input",model="fake-model",provider="openai"} 14.0' in text
