"""The bus and the SSE generator with the real event log: slow readers are dropped
without slowing anyone, then catch up from the log; the JSON page of the log."""

from __future__ import annotations

import asyncio

import pytest

from app.events import sse
from app.events.bus import ALL_SESSIONS, EventBus
from app.events.sse import StreamOptions, session_stream


@pytest.fixture
async def chat(client):
    agent = await (await client.post("/v1/agents", json={"name": "a", "system_prompt": "p"})).get_json()
    return await (await client.post(f"/v1/agents/{agent['id']}/sessions", json={})).get_json()


@pytest.fixture
def runtime(app):
    return app.extensions["runtime"]


async def test_full_queue_drops_only_the_slow_subscriber(runtime, chat):
    bus, log = runtime.bus, runtime.events
    slow = bus.subscribe(chat["id"], maxsize=5)
    fast = bus.subscribe(chat["id"], maxsize=100)
    everyone = bus.subscribe(ALL_SESSIONS, maxsize=100)
    hub_and_others = bus.subscriber_count(ALL_SESSIONS)
    for i in range(20):
        await log.append(chat["id"], "message.delta", {"delta": str(i)})
    assert slow.overflowed and slow.closed and not fast.overflowed
    # What it had queued is kept (then the end); lost from the sixth on, as stamped.
    assert [(await slow.get(0.1)).sequence for _ in range(5)] == [1, 2, 3, 4, 5] and await slow.get(0.1) is None
    received = [await fast.get(0.1) for _ in range(20)]
    assert [e.sequence for e in received] == list(range(1, 21)) and slow.lost_since == received[5].created_at
    assert (await everyone.get(0.1)).session_id == chat["id"]
    assert bus.subscriber_count(chat["id"]) == 1  # the slow one was removed
    fast.close(), everyone.close()
    assert bus.subscriber_count(chat["id"]) == 0 and bus.subscriber_count(ALL_SESSIONS) == hub_and_others - 1


async def test_stream_of_a_slow_reader_ends_and_a_reconnect_catches_up(runtime, chat):
    stream = session_stream(runtime.events, runtime.bus, chat["id"], StreamOptions(heartbeat_seconds=5, queue_size=3))
    assert await stream.__anext__() == b"retry: 2000\n\n"
    waiting = asyncio.create_task(stream.__anext__())
    await asyncio.sleep(0.05)  # the stream is now waiting for live events
    for i in range(10):  # ...which arrive faster than this reader reads them
        await runtime.events.append(chat["id"], "message.delta", {"delta": str(i)})
    frames = [await waiting] + [frame async for frame in stream]
    assert frames[-1].startswith(b": too slow")
    received = [int(f.split(b"\n")[0][4:]) for f in frames if f.startswith(b"id:")]
    assert received == list(range(1, len(received) + 1)) and len(received) < 10

    resumed = session_stream(runtime.events, runtime.bus, chat["id"], StreamOptions(since=received[-1]))
    await resumed.__anext__()
    replay = await resumed.__anext__()  # what the log holds after Last-Event-ID, in one write
    await resumed.aclose()
    rest = [int(f.split(b"\n")[0][4:]) for f in replay.split(b"\n\n") if f.startswith(b"id:")]
    assert received + rest == list(range(1, 11))


async def test_a_filtered_stream_sends_keepalives_while_the_session_is_busy(runtime, chat):
    """Reported (for AgentSpec's /stream, and the same here): with ?exclude=message.delta
    a long answer sent the client nothing at all, keep-alives included, because each
    left-out delta restarted the idle timer. A proxy with an idle timeout drops such a
    stream."""
    heartbeat = 0.3
    options = StreamOptions(exclude=frozenset({"message.delta"}), heartbeat_seconds=heartbeat)
    stream = session_stream(runtime.events, runtime.bus, chat["id"], options)
    assert await stream.__anext__() == b"retry: 2000\n\n"

    async def busy_session():  # a delta every 0.1 s, faster than the heartbeat, for 1.5 s
        for i in range(15):
            await runtime.events.append(chat["id"], "message.delta", {"delta": str(i)})
            await asyncio.sleep(0.1)
        await runtime.events.append(chat["id"], "message.created", {"role": "assistant"})

    writer = asyncio.create_task(busy_session())
    opened, reads = asyncio.get_running_loop().time(), []
    while not reads or b"message.created" not in reads[-1][1]:
        frame = await asyncio.wait_for(stream.__anext__(), 5)
        reads.append((asyncio.get_running_loop().time() - opened, frame))
    await writer
    await stream.aclose()
    keepalives = [at for at, frame in reads if frame == b": keepalive\n\n"]
    assert len(keepalives) >= 3, reads
    gaps = [b - a for a, b in zip([0.0, *keepalives], keepalives, strict=False)]
    assert max(gaps) < heartbeat * 3, gaps
    assert not any(b"message.delta" in frame for _, frame in reads)


async def test_stream_fills_gaps_when_events_arrive_out_of_order(runtime, chat):
    stream = session_stream(runtime.events, runtime.bus, chat["id"], StreamOptions(heartbeat_seconds=5))
    await stream.__anext__()
    bus = runtime.bus
    runtime.bus = EventBus()  # appends below are stored but not published...
    runtime.events.bus = runtime.bus
    first = await runtime.events.append(chat["id"], "step.started", {})
    second = await runtime.events.append(chat["id"], "step.completed", {})
    runtime.events.bus = bus
    bus.publish(second)  # ...then only the later one is published
    ids: list[bytes] = []
    while len(ids) < 2:  # a write may carry several frames
        chunk = await stream.__anext__()
        ids += [f.split(b"\n")[0] for f in chunk.split(b"\n\n") if f.startswith(b"id:")]
    await stream.aclose()
    assert ids == [b"id: 1", b"id: 2"]
    assert first.sequence == 1


async def test_json_page_with_after_limit_and_filters(client, runtime, chat):
    for i in range(5):
        await runtime.events.append(chat["id"], "message.delta" if i % 2 else "step.started", {"i": i})
    headers = {"Accept": "application/json"}
    page = await (await client.get(f"/v1/sessions/{chat['id']}/events?after=1&limit=2", headers=headers)).get_json()
    assert [e["sequence"] for e in page["data"]] == [2, 3] and page["next_after"] == 3 and page["total"] == 5
    assert page["data"][0]["data"] == {"session_id": chat["id"], "i": 1} and page["data"][0]["type"] == "message.delta"
    only = await (await client.get(f"/v1/agents/{chat['agent_id']}/sessions/{chat['id']}/events?types=step.started",
                                   headers=headers)).get_json()
    assert [e["data"]["i"] for e in only["data"]] == [0, 2, 4] and only["total"] == 3
    assert (await client.get(f"/v1/sessions/{chat['id']}/events?limit=501", headers=headers)).status_code == 400


async def test_sse_is_the_default_representation_and_disconnect_cleans_up(client, runtime, chat):
    for accept in (None, "*/*", "text/event-stream"):
        headers = {"Accept": accept} if accept else {}
        async with client.request(f"/v1/sessions/{chat['id']}/events", method="GET", headers=headers) as connection:
            await connection.send_complete()
            first = await asyncio.wait_for(connection.receive(), 2)
            await connection.disconnect()
        assert connection.headers["Content-Type"].startswith("text/event-stream") and first == b"retry: 2000\n\n"
    await asyncio.sleep(0.05)
    assert runtime.bus.subscriber_count(chat["id"]) == 0  # no subscription outlives its client


async def test_stream_ends_when_its_session_is_deleted(client, runtime, chat):
    stream = session_stream(runtime.events, runtime.bus, chat["id"], StreamOptions(heartbeat_seconds=5))
    await stream.__anext__()
    waiting = asyncio.create_task(stream.__anext__())
    await asyncio.sleep(0.05)
    assert (await client.delete(f"/v1/sessions/{chat['id']}")).status_code == 204
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(waiting, 2)


async def test_ws_hub_fills_gaps_and_drops_repeats(client, runtime, chat):
    """As SSE streams do (EventLog.in_order): events published out of order, missing, or
    twice (several writers, Redis) reach /ws clients once each, in sequence order."""
    import json

    async with client.websocket("/ws?events=all") as ws:
        assert json.loads(await ws.receive())["type"] == "init"
        announced = await runtime.events.append(chat["id"], "step.started", {})  # the hub now knows the session
        bus = runtime.bus
        runtime.events.bus = EventBus()  # appends below are stored but not published...
        await runtime.events.append(chat["id"], "step.completed", {})
        third = await runtime.events.append(chat["id"], "session.completed", {})
        runtime.events.bus = bus
        bus.publish(third)  # ...then only the last one, twice
        bus.publish(third)
        bus.publish(announced)  # and an old one again
        await runtime.events.append(chat["id"], "session.started", {})
        received = []
        while len(received) < 4:
            message = json.loads(await asyncio.wait_for(ws.receive(), 5))
            if message["type"] == "event":
                received.append(message["data"]["sequence"])
    assert received == [1, 2, 3, 4]


def _frames(write: bytes) -> list[int]:
    """The sequence numbers of the frames of one write."""
    return [int(f.split(b"\n")[0][4:]) for f in write.split(b"\n\n") if f.startswith(b"id:")]


async def _writes_until(stream, last: int, writes: list[bytes] | None = None) -> list[bytes]:
    """The stream's writes (after `writes`, if given) up to the one with event `last`."""
    writes = writes or []
    while not writes or not _frames(writes[-1]) or _frames(writes[-1])[-1] < last:
        writes.append(await asyncio.wait_for(stream.__anext__(), 5))
    return writes


async def test_replay_reads_and_writes_at_most_a_batch_of_bytes(runtime, chat, monkeypatch):
    """Reported: the replay read 500 events per batch and wrote them in one piece however
    large each was, so a client of a session of 900 KB events had hundreds of MB read,
    encoded and waiting for it (five that stopped reading held 900 MB). A batch now stops
    at BATCH_BYTES too; one event larger than that goes alone."""
    monkeypatch.setattr(sse, "BATCH_BYTES", 250_000, raising=False)
    first = (await runtime.events.append(chat["id"], "tool.result", {"output": "x" * 100_000})).sequence
    for _ in range(6):
        await runtime.events.append(chat["id"], "tool.result", {"output": "x" * 100_000})
    huge = await runtime.events.append(chat["id"], "tool.result", {"output": "y" * 300_000})
    last = (await runtime.events.append(chat["id"], "tool.result", {"output": "z"})).sequence
    stream = session_stream(runtime.events, runtime.bus, chat["id"], StreamOptions(since=first - 1))
    assert await stream.__anext__() == b"retry: 2000\n\n"
    writes = await _writes_until(stream, last)
    await stream.aclose()
    assert [s for write in writes for s in _frames(write)] == list(range(first, last + 1))
    assert [len(_frames(write)) for write in writes] == [2, 2, 2, 1, 1, 1]  # 100 KB each, 300 KB, then 1 byte
    assert _frames(writes[-2]) == [huge.sequence]
    assert all(len(write) <= 250_000 for write in writes if len(_frames(write)) > 1)


async def test_queued_live_events_go_out_in_writes_of_at_most_a_batch_of_bytes(runtime, chat, monkeypatch):
    """Live events already queued go out together (fewer, larger writes), but not all of a
    queue of large events in one piece: no more than BATCH_BYTES per write either."""
    monkeypatch.setattr(sse, "BATCH_BYTES", 250_000, raising=False)
    since = len(await runtime.events.read(chat["id"]))  # no replay: only live events
    stream = session_stream(runtime.events, runtime.bus, chat["id"], StreamOptions(since=since))
    assert await stream.__anext__() == b"retry: 2000\n\n"
    waiting = asyncio.create_task(stream.__anext__())
    await asyncio.sleep(0.05)  # the stream is now waiting for live events; they queue meanwhile
    sequences = [(await runtime.events.append(chat["id"], "tool.result", {"output": "x" * 100_000})).sequence
                 for _ in range(7)]
    writes = await _writes_until(stream, sequences[-1], [await waiting])
    await stream.aclose()
    assert [s for write in writes for s in _frames(write)] == sequences
    assert all(len(write) <= 250_000 for write in writes)
    assert max(len(_frames(write)) for write in writes) == 2


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
async def test_a_batch_of_the_log_stops_at_its_byte_budget(request, settings, database):
    """EventLog.read_batch: at most `limit` events, and no more than `max_bytes` of them
    (at least one, however large), and whether the log may hold more after them."""
    from app.main import create_app

    app = create_app(request.getfixturevalue("pg_settings") if database == "postgres" else settings)
    async with app.test_app():
        client, log = app.test_client(), app.extensions["runtime"].events
        sid = "s"
        assert (await client.post("/sessions", json={"session_id": sid, "session_name": "x"})).status_code == 200
        before = len(await log.read(sid))
        sizes = [100_000, 100_000, 100_000, 300_000, 10, 10]
        for size in sizes:
            await log.append(sid, "tool.result", {"output": "é" * (size // 2)})  # two bytes each in UTF-8

        async def batch(after: int, limit: int = 500, max_bytes: int = 250_000) -> tuple[list[int], bool]:
            events, more = await log.read_batch(sid, after=before + after, limit=limit, max_bytes=max_bytes)
            return [e.sequence - before for e in events], more

        assert await batch(0) == ([1, 2], True)
        assert await batch(2) == ([3], True)  # the next one would pass the budget
        assert await batch(3) == ([4], True)  # larger than the budget: alone
        assert await batch(4) == ([5, 6], False)
        assert await batch(6) == ([], False)
        assert await batch(4, limit=2) == ([5, 6], True)  # a full count: there may be more
        assert await batch(0, max_bytes=10**9) == ([1, 2, 3, 4, 5, 6], False)
        events, _ = await log.read_batch(sid, after=before, limit=1, max_bytes=10**9)
        assert events[0].data == {"session_id": sid, "output": "é" * 50_000}
