"""The Redis event bus, with two buses standing for two processes: events, notices,
session ends and control messages cross; each bus delivers its own exactly once; order
holds; Redis being down or dropping connections never reaches the publisher."""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import redis.asyncio as redis

from app.events.bus import ALL_SESSIONS, EventBus, SessionNotice
from app.events.log import LoggedEvent
from app.events.redis_bus import RedisEventBus
from tests.live_server import accepts_tcp

REDIS_URL = "redis://127.0.0.1:6379/0"


needs_redis = pytest.mark.skipif(not accepts_tcp("127.0.0.1", 6379), reason="no Redis listening on 127.0.0.1:6379")


def event(sequence: int, session_id: str = "s1") -> LoggedEvent:
    return LoggedEvent(1000 + sequence, session_id, sequence, "message.delta",
                       {"session_id": session_id, "delta": f"d{sequence}", "nested": {"n": [1, None, "x"]}},
                       datetime.now(UTC))


async def eventually(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


@pytest.fixture
def prefix() -> str:
    return f"test-{uuid.uuid4().hex}"  # a channel of its own: tests never see each other's traffic


@pytest.fixture
async def buses(prefix):
    a, b = RedisEventBus(REDIS_URL, prefix=prefix), RedisEventBus(REDIS_URL, prefix=prefix)
    await a.start()
    await b.start()
    yield a, b
    await a.stop()
    await b.stop()
    assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("redis-bus")]


@needs_redis
async def test_an_event_reaches_the_other_process_once_and_its_own_subscribers_once(buses):
    a, b = buses
    on_b, everything_on_b, on_a = b.subscribe("s1"), b.subscribe(ALL_SESSIONS), a.subscribe("s1")
    sent = event(1)
    a.publish(sent)
    assert on_a.get_ready() == [sent]  # local delivery does not wait for Redis

    received = await on_b.get(5)
    assert received == sent and received is not sent  # every field equal, decoded from JSON
    assert received.created_at.tzinfo is not None and received.created_at.utcoffset().total_seconds() == 0
    assert await everything_on_b.get(5) == sent

    # A's listener reads the channel in order: by the time B's reply reaches A, A has
    # seen (and skipped) its own message; only the reply is new to A's subscriber.
    reply = event(2)
    b.publish(reply)
    assert await on_a.get(5) == reply
    await asyncio.sleep(0.05)
    assert on_a.get_ready() == [] and on_b.get_ready() == [reply]


@needs_redis
async def test_buses_on_two_databases_of_one_server_do_not_hear_each_other(prefix):
    """Pub/sub ignores the database number; two deployments that share a Redis server on
    databases of their own must not see each other's sessions."""
    buses = [RedisEventBus(f"redis://127.0.0.1:6379/{db}", prefix=prefix) for db in (1, 2, 2)]
    for bus in buses:
        await bus.start()
    try:
        one, two, two_too = buses
        on_one, on_two_too = one.subscribe(ALL_SESSIONS), two_too.subscribe(ALL_SESSIONS)
        theirs, ours = event(1, "theirs"), event(2, "ours")
        two.publish(theirs)
        assert await on_two_too.get(5) == theirs  # same database: it crosses
        one.publish(ours)  # after theirs on the server: had theirs crossed, it came first
        assert await on_one.get(5) == ours and on_one.get_ready() == []
    finally:
        for bus in buses:
            await bus.stop()


@needs_redis
async def test_order_holds_for_500_events_back_to_back(buses):
    a, b = buses
    on_b, on_a = b.subscribe("s1", maxsize=1000), a.subscribe("s1", maxsize=1000)
    for sequence in range(1, 501):
        a.publish(event(sequence))
    received = [(await on_b.get(5)).sequence for _ in range(500)]
    assert received == list(range(1, 501))
    assert [e.sequence for e in on_a.get_ready()] == list(range(1, 501))


@needs_redis
async def test_session_notices_cross(buses):
    a, b = buses
    everything_on_b, one_session_on_b = b.subscribe(ALL_SESSIONS), b.subscribe("s1")
    owner = uuid.uuid4()
    a.publish_notice(SessionNotice("session_deleted", "s1", owner))
    a.publish_notice(SessionNotice("session_created", "s2"))
    deleted, created = await everything_on_b.get(5), await everything_on_b.get(5)
    assert deleted == SessionNotice("session_deleted", "s1", owner) and isinstance(deleted.owner_id, uuid.UUID)
    assert created == SessionNotice("session_created", "s2", None)
    assert one_session_on_b.get_ready() == []  # notices go to listeners of every session only


@needs_redis
async def test_control_messages_reach_every_process_and_the_sender_once(buses):
    a, b = buses
    on_a, on_b, replies = [], [], []
    a.on_control("models_changed", on_a.append)
    b.on_control("models_changed", on_b.append)
    a.on_control("reply", replies.append)
    a.publish_control("models_changed", {"model": "m1"})
    assert on_a == [{"model": "m1"}]  # synchronously, in the sending process
    await eventually(lambda: on_b == [{"model": "m1"}])

    b.publish_control("reply")  # reaches A after A's own message came back (and was skipped)
    await eventually(lambda: replies == [{}])
    assert on_a == [{"model": "m1"}]


@needs_redis
async def test_ending_a_session_on_one_process_ends_its_streams_on_the_other(buses):
    a, b = buses
    ended, other = b.subscribe("s1"), b.subscribe("s2")
    a.end_session("s1")
    assert await ended.get(5) is None and ended.closed and not ended.overflowed
    assert not other.closed and b.subscriber_count("s1") == 0


@needs_redis
async def test_stop_flushes_what_is_queued(prefix):
    a, b = RedisEventBus(REDIS_URL, prefix=prefix), RedisEventBus(REDIS_URL, prefix=prefix)
    await a.start(), await b.start()
    on_b = b.subscribe("s1")
    for sequence in range(1, 51):
        a.publish(event(sequence))
    await a.stop()  # right away: the queued events still go out
    assert [(await on_b.get(5)).sequence for _ in range(50)] == list(range(1, 51))
    await b.stop()
    assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("redis-bus")]


@needs_redis
async def test_both_processes_reconnect_after_redis_drops_their_connections(buses):
    a, b = buses
    on_b = b.subscribe("s1", maxsize=1000)
    killed = 0
    async with redis.Redis.from_url(REDIS_URL) as admin:
        for client in await admin.client_list():
            if client["name"] in (f"agent-runtime-bus-{a.origin}", f"agent-runtime-bus-{b.origin}"):
                killed += await admin.client_kill_filter(_id=client["id"])
    assert killed >= 2  # both listeners (and A's publishing connection, if open)
    received, sequence = [], 0
    while not received:  # what is sent while B resubscribes is lost (the log has it)
        sequence += 1
        assert sequence < 500, "B never received anything again"
        a.publish(event(sequence))
        await asyncio.sleep(0.02)
        received += on_b.get_ready()
    a.publish(last := event(sequence + 1))
    while received[-1] != last:
        received.append(await on_b.get(5))
    sequences = [e.sequence for e in received]
    assert sequences == sorted(set(sequences))  # in order, no repeats


@needs_redis
async def test_listeners_of_every_session_are_told_in_line_when_a_lost_subscription_is_back(buses):
    """The /ws hub reads up from the log what may have been lost; a session's stream (SSE)
    reads the log when quiet and is not told."""
    from app.events.bus import Resubscribed
    from app.events.redis_bus import GAP_MARGIN_SECONDS

    a, b = buses
    everything, one_session = b.subscribe(ALL_SESSIONS), b.subscribe("s1")
    sent_at = datetime.now(UTC)
    a.publish(event(1))
    first = await everything.get(5)  # the first subscription was no loss: nothing before the event
    assert isinstance(first, LoggedEvent) and first.sequence == 1
    heard_by = datetime.now(UTC)
    async with redis.Redis.from_url(REDIS_URL) as admin:
        killed = 0
        for client in await admin.client_list():
            if client["name"] == f"agent-runtime-bus-{b.origin}":
                killed += await admin.client_kill_filter(_id=client["id"])
    assert killed >= 1
    told = await everything.get(5)
    assert isinstance(told, Resubscribed)
    margin = timedelta(seconds=GAP_MARGIN_SECONDS)
    assert sent_at - margin <= told.since <= heard_by - margin  # from the last message heard, margin included
    a.publish(event(2))
    assert (await everything.get(5)).sequence == 2  # what comes live after it, after it
    assert [e.sequence for e in one_session.get_ready()] == [1, 2]


async def test_redis_down_never_reaches_the_publisher(prefix, caplog):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    bus = RedisEventBus(f"redis://127.0.0.1:{port}/0", prefix=prefix, outbox_size=5)
    started = time.monotonic()
    await bus.start()  # does not wait for a Redis that is not there
    local, everything = bus.subscribe("s1"), bus.subscribe(ALL_SESSIONS)
    first = event(1)
    bus.publish(first)
    bus.publish_notice(SessionNotice("session_updated", "s1"))
    bus.publish_control("models_changed")
    assert local.get_ready() == [first]
    await asyncio.sleep(0.3)  # the publisher and listener fail, back off and retry...
    assert all(not task.done() for task in bus._tasks)  # ...without crashing
    for sequence in range(2, 22):
        bus.publish(event(sequence))  # the bounded outbox drops the oldest
    assert bus.dropped >= 15
    assert [e.sequence for e in everything.get_ready() if isinstance(e, LoggedEvent)] == list(range(1, 22))
    assert not await bus.ping(0.5)
    assert "Redis bus cannot" in caplog.text
    await bus.stop()
    assert time.monotonic() - started < 4 and not bus._tasks


async def test_in_memory_control_messages_call_this_process_callbacks():
    bus = EventBus()
    await bus.start()
    first, second, other = [], [], []
    bus.on_control("models_changed", first.append)
    bus.on_control("models_changed", lambda data: 1 / 0)  # a broken callback is logged, not raised
    bus.on_control("models_changed", second.append)
    bus.on_control("session_ended", other.append)
    bus.publish_control("models_changed", {"provider": "openai"})
    bus.publish_control("models_changed")
    bus.publish_control("nobody_listens")
    assert first == second == [{"provider": "openai"}, {}] and other == []
    await bus.stop()


async def test_subscriber_counts_reach_the_other_processes(monkeypatch, redis_url):
    """A worker (no subscribers of its own) sees how many an API process has, so its
    delta merge window can grow with the audience."""
    from app.events import redis_bus

    monkeypatch.setattr(redis_bus, "COUNTS_EVERY", 0.05)
    prefix = f"test-{uuid.uuid4().hex[:8]}"
    api, worker = RedisEventBus(redis_url, prefix=prefix), RedisEventBus(redis_url, prefix=prefix)
    await api.start(), await worker.start()
    try:
        subs = [api.subscribe("s1") for _ in range(redis_bus.COUNTS_MIN)]
        few = [api.subscribe("s2")]  # under COUNTS_MIN: not reported
        for _ in range(100):
            if worker.subscriber_count("s1") == redis_bus.COUNTS_MIN:
                break
            await asyncio.sleep(0.02)
        assert worker.subscriber_count("s1") == redis_bus.COUNTS_MIN
        assert worker.subscriber_count("s2") == 0 and worker.subscriber_count() == 0
        assert api.subscriber_count("s1") == redis_bus.COUNTS_MIN  # its own, not counted twice
        for sub in subs + few:
            sub.close()
        for _ in range(100):
            if worker.subscriber_count("s1") == 0:
                break
            await asyncio.sleep(0.02)
        assert worker.subscriber_count("s1") == 0  # an empty report clears the last one
    finally:
        await api.stop(), await worker.stop()
