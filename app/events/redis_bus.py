"""Live events between processes, over one Redis pub/sub channel.

Several API processes and Temporal workers share one database. Each process feeds its
own SSE and /ws subscribers from its in-memory bus; this subclass also sends every event,
session notice, session end and control message to Redis, and hands what the other
processes send there to this process's subscribers.

Redis carries only *live* traffic: the durable event log stays the truth. Pub/sub is
at-most-once (a message sent while a listener reconnects, or dropped from a full outbox,
is gone), but events are written to the log before they are published, and a subscriber
that sees a gap in `sequence` reads the missing ones from the database (app/events/sse.py
does), as does every client that reconnects. So a lost message delays an event, never
loses it. After a failed send the batch is sent again, so a message may also arrive twice;
streams skip sequences they have already sent. Once the listener is subscribed again after
losing its subscription, listeners of every session (the /ws hub) are told what time the
loss may have begun (`Resubscribed`), in line with what comes live, and read it up from
the database: a gap they cannot see in a session's sequence (the last events of a turn, a
session created meanwhile) is not left until the session's next event.

Hence Redis trouble never reaches a caller: publish() delivers locally at once and only
queues for Redis; the publisher and listener tasks log a warning, back off and reconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections import deque
from datetime import UTC, datetime

import redis.asyncio as redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from app.events.bus import ALL_SESSIONS, EventBus, SessionNotice
from app.events.log import LoggedEvent
from app.json_encoding import dumps

log = logging.getLogger("app.events.redis_bus")

BATCH = 500  # messages per round trip to Redis
BACKOFF_MIN, BACKOFF_MAX = 0.1, 5.0  # seconds between reconnect attempts
FLUSH_SECONDS = 1.0  # how long stop() waits for queued messages to go out
REPLY_SECONDS = 5.0  # a Redis that accepts connections but never answers counts as down
# Every process tells the others how many live subscribers its sessions have (those with
# at least COUNTS_MIN), every COUNTS_EVERY seconds; a report older than COUNTS_TTL is
# ignored. A worker streaming a turn has no subscribers of its own, and the delta merge
# window grows with the audience (app/runtime/deltas.py), so it needs the API's counts.
COUNTS_EVERY, COUNTS_TTL, COUNTS_MIN = 1.0, 3.0, 20
# How much earlier than the last message heard a loss may have begun, for what is read up
# after it by the time its writer stamped it: other processes' clocks differ a little, and
# what they publish waits in their outbox a moment after it was stored.
GAP_MARGIN_SECONDS = 10.0


class RedisEventBus(EventBus):
    def __init__(self, redis_url: str, queue_size: int = 1000, *,
                 prefix: str = "agent-runtime", outbox_size: int = 10_000):
        super().__init__(queue_size)
        # Each message names the bus that sent it: that bus delivered it locally already.
        self.origin = uuid.uuid4().hex
        # Our loops reconnect with backoff, so redis-py fails fast; named for CLIENT LIST.
        self._redis = redis.Redis.from_url(redis_url, retry=Retry(NoBackoff(), 0), socket_connect_timeout=2,
                                           socket_keepalive=True, client_name=f"agent-runtime-bus-{self.origin}")
        # Pub/sub channels belong to the whole Redis server, not to a database: the channel
        # names REDIS_URL's database, so deployments that share a server on databases of
        # their own (as one keeps apart keys) do not get each other's events and notices.
        database = self._redis.connection_pool.connection_kwargs.get("db", 0)
        self.channel = f"{prefix}:{database}:bus"
        # Bounded: while Redis is down the oldest messages are dropped (counted in
        # `dropped`). The newest matter most to a live view; gaps are read from the log.
        self._outbox: deque[str] = deque(maxlen=outbox_size)
        self._batch: list[str] = []  # taken from the outbox, not yet sent
        self._ready = asyncio.Event()
        self._listening = asyncio.Event()  # the listener's first attempt is over (either way)
        self._tasks: list[asyncio.Task] = []
        self._down: set[str] = set()  # "publish" / "listen" while failing: warn once per outage
        self.dropped = 0
        self._remote_counts: dict[str, tuple[float, dict[str, int]]] = {}  # origin -> (when, counts)
        self._reported = False  # the last report was not empty (so an empty one clears it)
        self._heard_at = time.time()  # when the listener last heard from Redis (nothing to miss before start)
        self._lost_since: float | None = None  # set while not subscribed, after a loss or a failed first try

    def subscriber_count(self, session_id: str | None = None) -> int:
        """With a session id: this process's subscribers plus the other processes' (as
        they last reported); without: this process's only (its metrics)."""
        local = super().subscriber_count(session_id)
        if session_id is None or session_id == ALL_SESSIONS or not self._remote_counts:
            return local
        now = time.monotonic()
        return local + sum(counts.get(session_id, 0) for when, counts in self._remote_counts.values()
                           if now - when < COUNTS_TTL)

    # -- sending: local subscribers at once, other processes through the publisher task

    def publish(self, event: LoggedEvent) -> None:
        super().publish(event)
        self._send({"type": "event", "event": {
            "id": event.id, "session_id": event.session_id, "sequence": event.sequence,
            "type": event.type, "data": event.data, "created_at": event.created_at.isoformat()}})

    def publish_notice(self, notice: SessionNotice) -> None:
        super().publish_notice(notice)
        owner = None if notice.owner_id is None else str(notice.owner_id)
        self._send({"type": "notice", "notice": {
            "kind": notice.kind, "session_id": notice.session_id, "owner_id": owner}})

    def end_session(self, session_id: str) -> None:
        super().end_session(session_id)
        self._send({"type": "end_session", "session_id": session_id})

    def publish_control(self, kind: str, data: dict | None = None) -> None:
        super().publish_control(kind, data)
        self._send({"type": "control", "kind": kind, "data": data or {}})

    def _send(self, message: dict) -> None:
        """Queue for Redis; never blocks or raises (the caller may hold a session's lock)."""
        try:  # encoded now: the caller's objects may change once we return
            encoded = dumps({"origin": self.origin, **message})
        except (TypeError, ValueError):
            log.exception("cannot encode a %s message for Redis", message["type"])
            return
        if len(self._outbox) == self._outbox.maxlen:
            self.dropped += 1
            if self.dropped % 1000 == 1:
                log.warning("Redis bus outbox full: %d messages dropped so far", self.dropped)
        self._outbox.append(encoded)
        self._ready.set()

    # -- receiving: deliver through the in-memory paths only, never back to Redis

    def _receive(self, raw: bytes) -> None:
        try:
            message = json.loads(raw)
            if message["origin"] == self.origin:
                return
            kind = message["type"]
            if kind == "event":
                e = message["event"]
                super().publish(LoggedEvent(e["id"], e["session_id"], e["sequence"], e["type"], e["data"],
                                            datetime.fromisoformat(e["created_at"])))
            elif kind == "notice":
                n = message["notice"]
                owner = None if n["owner_id"] is None else uuid.UUID(n["owner_id"])
                super().publish_notice(SessionNotice(n["kind"], n["session_id"], owner))
            elif kind == "end_session":
                super().end_session(message["session_id"])
            elif kind == "control":
                self._deliver_control(message["kind"], message["data"])
            elif kind == "counts":
                self._remote_counts[message["origin"]] = (time.monotonic(), message["counts"])
        except Exception:  # a bad message (another version?) must not stop the listener
            log.exception("ignoring a malformed message on %s", self.channel)

    # -- lifecycle

    async def start(self) -> None:
        if self._tasks:
            return
        self._tasks = [asyncio.create_task(self._publisher(), name="redis-bus-publisher"),
                       asyncio.create_task(self._listener(), name="redis-bus-listener"),
                       asyncio.create_task(self._report_counts(), name="redis-bus-counts")]
        # Wait until subscribed, so nothing published right after startup is missed; but
        # a Redis that is down must not hold up startup (the listener keeps trying).
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(REPLY_SECONDS):
                await self._listening.wait()

    async def stop(self) -> None:
        if self._tasks:
            with contextlib.suppress(TimeoutError):  # let queued messages reach the others
                async with asyncio.timeout(FLUSH_SECONDS):
                    while self._outbox or self._batch:  # noqa: ASYNC110 (no event marks an empty outbox; a short poll at shutdown only)
                        await asyncio.sleep(0.01)
            if unsent := len(self._outbox) + len(self._batch):
                log.warning("Redis bus stopped with %d messages unsent", unsent)
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            self._tasks = []
        await self._redis.aclose()

    async def ping(self, timeout: float) -> bool:
        """For health checks: does Redis answer within `timeout` seconds?"""
        try:
            async with asyncio.timeout(timeout):
                return bool(await self._redis.ping())
        except Exception:
            return False

    async def _publisher(self) -> None:
        backoff = BACKOFF_MIN
        while True:
            if not self._outbox and not self._batch:
                self._ready.clear()
                await self._ready.wait()
            # Whatever was queued meanwhile goes in one round trip. A batch that failed is
            # kept and goes first, so the order holds across a reconnect.
            while self._outbox and len(self._batch) < BATCH:
                self._batch.append(self._outbox.popleft())
            try:
                async with asyncio.timeout(REPLY_SECONDS), self._redis.pipeline(transaction=False) as pipe:
                    for message in self._batch:
                        pipe.publish(self.channel, message)
                    await pipe.execute()
            except Exception as exc:
                self._trouble("publish", exc)
                await asyncio.sleep(backoff)
                backoff = min(2 * backoff, BACKOFF_MAX)
                continue
            self._batch.clear()
            self._recovered("publish")
            backoff = BACKOFF_MIN

    async def _listener(self) -> None:
        backoff = BACKOFF_MIN
        while True:
            try:
                async with self._redis.pubsub() as pubsub:
                    await pubsub.subscribe(self.channel)
                    async with asyncio.timeout(REPLY_SECONDS):  # confirmed: from now on nothing is missed
                        await pubsub.get_message(timeout=None)
                    self._listening.set()
                    self._recovered("listen")
                    backoff = BACKOFF_MIN
                    self._heard_at = time.time()
                    if self._lost_since is not None:
                        self.resubscribed(datetime.fromtimestamp(self._lost_since - GAP_MARGIN_SECONDS, UTC))
                        self._lost_since = None
                    async for message in pubsub.listen():
                        self._heard_at = time.time()
                        if message["type"] == "message":
                            self._receive(message["data"])
            except Exception as exc:
                self._trouble("listen", exc)
            if self._lost_since is None:  # what came after the last message heard may be lost
                self._lost_since = self._heard_at
            self._listening.set()
            await asyncio.sleep(backoff)
            backoff = min(2 * backoff, BACKOFF_MAX)

    async def _report_counts(self) -> None:
        while True:
            await asyncio.sleep(COUNTS_EVERY)
            counts = {key: len(subs) for key, subs in self._subscribers.items()
                      if key != ALL_SESSIONS and len(subs) >= COUNTS_MIN}
            if counts or self._reported:
                self._send({"type": "counts", "counts": counts})
            self._reported = bool(counts)

    def _trouble(self, role: str, exc: Exception) -> None:
        if role not in self._down:  # once per outage, not once per retry
            self._down.add(role)
            log.warning("Redis bus cannot %s (%r); serving local subscribers, reconnecting", role, exc)

    def _recovered(self, role: str) -> None:
        if role in self._down:
            self._down.discard(role)
            log.warning("Redis bus can %s again", role)
