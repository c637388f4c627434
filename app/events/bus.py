"""In-process publish/subscribe of logged events.

The bus never blocks a publisher: each subscriber has a bounded queue, and one that is
full is dropped (its `overflowed` flag set and its stream ended). It reconnects and
catches up from the durable log, so a slow reader loses nothing and slows no one.

This bus lives in one process. app/events/redis_bus.py extends it across processes; the
lifecycle (start/stop) and control hooks here are what it overrides, and are no-ops or
in-process calls so code written against the bus works the same with either.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from app.timeutil import utcnow

if TYPE_CHECKING:
    from datetime import datetime

    from app.events.log import LoggedEvent

log = logging.getLogger("app.events.bus")

# The key of listeners to every session: one no session id can be (every id has at least one
# character). It was "*", which an Agent Runtime client may choose as its session's id: that
# session's stream then got every session's events, and deleting it ended the /ws hub's feed.
ALL_SESSIONS = ""


@dataclass(frozen=True)
class SessionNotice:
    kind: str  # session_created | session_updated | session_deleted
    session_id: str
    owner_id: Any = None  # known to the sender; a deleted session can no longer be looked up


@dataclass(frozen=True)
class Resubscribed:
    """To listeners of every session, in line with the items around it: what other
    processes published from `since` (a wall-clock time, margin included) until now may
    be lost (the Redis bus was not subscribed); the database has it. Never sent by the
    in-memory bus: it has no other processes."""

    since: datetime


class Subscription:
    def __init__(self, bus: EventBus, key: str, maxsize: int):
        self._bus = bus
        self.key = key
        self.queue: asyncio.Queue[LoggedEvent | SessionNotice | Resubscribed | None] = asyncio.Queue(maxsize)
        self.overflowed = False
        # Overflowed: when the first item that did not fit was stamped (an event's
        # created_at, else the time it came). What was offered from then on is lost.
        self.lost_since: datetime | None = None
        self.closed = False

    def offer(self, event: LoggedEvent | SessionNotice | Resubscribed) -> None:
        if self.closed:
            return
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.overflowed = True
            self.lost_since = getattr(event, "created_at", None) or utcnow()
            self.close()

    async def get(self, timeout: float | None = None) -> LoggedEvent | SessionNotice | Resubscribed | None:
        """The next event; None when closed (check `overflowed`); TimeoutError on timeout."""
        if self.closed and self.queue.empty():
            return None
        if not self.queue.empty():
            return self.queue.get_nowait()
        async with asyncio.timeout(timeout):  # unlike wait_for, no extra task per event
            return await self.queue.get()

    def get_ready(self) -> list[LoggedEvent | SessionNotice | Resubscribed | None]:
        """Everything already queued, without waiting."""
        items = []
        while not self.queue.empty():
            items.append(self.queue.get_nowait())
        return items

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._bus._remove(self)
        # Wake a reader blocked in get(). A full queue has none blocked, and get() answers
        # None once it is drained: nothing queued is dropped (the /ws hub has no earlier
        # sequence to find a dropped first event of a session by).
        if not self.queue.full():
            self.queue.put_nowait(None)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class EventBus:
    def __init__(self, queue_size: int = 1000):
        self.queue_size = queue_size
        self._subscribers: dict[str, set[Subscription]] = {}
        self._controls: dict[str, list[Callable[[dict], None]]] = {}

    async def start(self) -> None:
        """Connect to whatever carries events between processes (nothing, in memory)."""

    async def stop(self) -> None:
        """Flush and disconnect (nothing, in memory)."""

    async def ping(self, timeout: float) -> bool:
        """For health checks: does what carries events answer (in memory: always)?"""
        return True

    def subscribe(self, session_id: str = ALL_SESSIONS, *, maxsize: int | None = None) -> Subscription:
        """Listen to one session's events, or to every session's with ALL_SESSIONS."""
        sub = Subscription(self, session_id, maxsize or self.queue_size)
        self._subscribers.setdefault(session_id, set()).add(sub)
        return sub

    def publish(self, event: LoggedEvent) -> None:
        for key in (event.session_id, ALL_SESSIONS):
            for sub in tuple(self._subscribers.get(key, ())):
                sub.offer(event)

    def publish_notice(self, notice: SessionNotice) -> None:
        """Session created/updated/deleted: only for listeners of every session (/ws)."""
        for sub in tuple(self._subscribers.get(ALL_SESSIONS, ())):
            sub.offer(notice)

    def resubscribed(self, since: datetime) -> None:
        """Tell listeners of every session (/ws) that items from other processes may be
        missing since `since` (Redis bus only)."""
        for sub in tuple(self._subscribers.get(ALL_SESSIONS, ())):
            sub.offer(Resubscribed(since))

    def end_session(self, session_id: str) -> None:
        """Close every stream of a session that no longer exists."""
        for sub in tuple(self._subscribers.get(session_id, ())):
            sub.close()

    def end_all_streams(self) -> None:
        """Shutting down: end every session's stream now (SSE clients reconnect elsewhere or
        later with Last-Event-ID), so Hypercorn need not wait out its graceful timeout.
        Listeners of every session (the /ws hub) are left to their owner."""
        for key, subs in tuple(self._subscribers.items()):
            if key != ALL_SESSIONS:
                for sub in tuple(subs):
                    sub.close()

    def on_control(self, kind: str, callback: Callable[[dict], None]) -> None:
        """Call `callback(data)` for every control message of `kind` (e.g. "models_changed"),
        sent by this process or, on a shared bus, by any other."""
        self._controls.setdefault(kind, []).append(callback)

    def publish_control(self, kind: str, data: dict | None = None) -> None:
        """Tell every process (here: this one, synchronously) that something changed."""
        self._deliver_control(kind, data or {})

    def _deliver_control(self, kind: str, data: dict) -> None:
        for callback in tuple(self._controls.get(kind, ())):
            try:
                callback(data)
            except Exception:  # one broken callback must not stop the others (or a listener)
                log.exception("control callback for %r failed", kind)

    def subscriber_count(self, session_id: str | None = None) -> int:
        if session_id is not None:
            return len(self._subscribers.get(session_id, ()))
        return sum(len(subs) for subs in self._subscribers.values())

    def _remove(self, sub: Subscription) -> None:
        subs = self._subscribers.get(sub.key)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._subscribers[sub.key]
