"""Live delivery to WebSocket clients (the dashboard's /ws feed).

One hub task per process listens to every session's events and session notices,
translates each one to the Agent Runtime shape once, encodes it once, and offers the
bytes to every connection's bounded queue. A connection whose queue is full is closed
(code 1013) by its own handler; the hub never waits for a client, so a slow client
cannot slow other clients, the REST API or a turn.

With several processes (Redis bus), live items from the others can be lost while this
process is not subscribed. The bus then says so in line (`Resubscribed`), and the hub
sends from the database what it missed (`_catch_up`) before whatever comes live next.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import OrderedDict
from collections.abc import Collection, Sequence
from datetime import datetime, timedelta
from typing import Protocol

from app.events.bus import ALL_SESSIONS, EventBus, Resubscribed, SessionNotice
from app.events.log import EventLog, LoggedEvent
from app.events.sse import BATCH_BYTES, REPLAY_BATCH
from app.json_encoding import dumps
from app.timeutil import utcnow

log = logging.getLogger("app.events.ws")

HUB_QUEUE_SIZE = 100_000
OVERFLOW_MARGIN_SECONDS = 1.0  # read back from a little before the first item lost
MAX_TRACKED_SESSIONS = 10_000  # sessions whose last sequence the hub remembers

Shaped = tuple[dict | None, uuid.UUID | None]  # a /ws message and the owner of its session  # the hub only translates, so it keeps up unless the process is starved


class Connection:
    def __init__(self, maxsize: int, owner: uuid.UUID | None, sees_everything: bool, all_events: bool = False):
        # Encoded messages, or reserved places for answers still being read (reserve()).
        self.queue: asyncio.Queue[str | asyncio.Future[str]] = asyncio.Queue(maxsize)
        self.owner = owner
        self.sees_everything = sees_everything
        # Also events with no Agent Runtime type (deltas, steps): only clients that asked
        # (/ws?events=all, the built-in dashboard); others would show them as raw JSON.
        self.all_events = all_events
        # Set when the queue overflowed. The handler watches this, not the queue: its
        # sender may be stuck writing to a client that stopped reading.
        self.dropped = asyncio.Event()
        self.going_away = asyncio.Event()  # the server is shutting down (close_all)

    def reserve(self) -> asyncio.Future[str]:
        """A place in the queue for a message that is not ready yet: the sender waits there
        for it, so whatever the hub offers after this call reaches the client after it."""
        slot: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.offer(slot)
        return slot

    def offer(self, message: str | asyncio.Future[str]) -> None:
        if self.dropped.is_set():
            return
        try:
            self.queue.put_nowait(message)
        except asyncio.QueueFull:
            self.dropped.set()
            while not self.queue.empty():  # free the memory now; the client is being closed
                self.queue.get_nowait()


class Feed(Protocol):
    """Translates bus items into /ws messages (app/services/agent_runtime.py LiveFeed)."""

    async def event(self, event: LoggedEvent) -> Shaped: ...
    def core_only(self, event: LoggedEvent) -> bool: ...
    async def notice(self, notice: SessionNotice) -> Shaped: ...
    def forget(self, session_id: str) -> None: ...
    def remember(self, sessions: list) -> None: ...
    async def changes_since(self, since: datetime, known: Collection[str]) -> list[SessionNotice]: ...


class WebSocketHub:
    def __init__(self, bus: EventBus, feed: Feed, queue_size: int):
        self.bus = bus
        self.feed = feed
        self.queue_size = queue_size
        self.connections: set[Connection] = set()
        self._task: asyncio.Task | None = None
        self._last: OrderedDict[str, int] = OrderedDict()  # per session: the last sequence sent

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="ws-hub")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def connect(self, owner: uuid.UUID | None = None, sees_everything: bool = True,
                all_events: bool = False) -> Connection:
        connection = Connection(self.queue_size, owner, sees_everything, all_events)
        self.connections.add(connection)
        return connection

    def close_all(self) -> None:
        """Shutting down: every connection's handler closes it (1001, going away)."""
        for connection in tuple(self.connections):
            connection.going_away.set()

    def disconnect(self, connection: Connection) -> None:
        self.connections.discard(connection)

    def broadcast(self, message: dict, owner: uuid.UUID | None = None, core_only: bool = False) -> None:
        """Send to every connection allowed to see rows of `owner` (its own, or all);
        a `core_only` message only to those that asked for every event."""
        encoded = dumps(message)
        for connection in tuple(self.connections):
            if core_only and not connection.all_events:
                continue
            if connection.sees_everything or (owner is not None and connection.owner == owner):
                connection.offer(encoded)

    async def _in_order(self, item: LoggedEvent | SessionNotice) -> Sequence[LoggedEvent | SessionNotice]:
        """Events of a session in sequence order, once each. With several processes
        writing (temporal mode), events reach this process through Redis from different
        publishers, so one can overtake another, or be lost: a gap is filled from the
        log, a repeat dropped."""
        if isinstance(item, SessionNotice):
            if item.kind == "session_deleted":
                self._last.pop(item.session_id, None)
            return [item]
        due = await EventLog.in_order(self._last.get(item.session_id), item)
        if due:
            self._sent(item)
        return due

    def _sent(self, event: LoggedEvent) -> None:
        self._last[event.session_id] = event.sequence
        self._last.move_to_end(event.session_id)
        while len(self._last) > MAX_TRACKED_SESSIONS:
            self._last.popitem(last=False)

    async def _catch_up(self, since: datetime) -> None:
        """Live items from other processes may be lost since `since`: send what they would
        have brought, from the database. Session changes first (a new session before its
        events), then each session's events after the last one sent, or, for a session
        none was sent of, every one stored since. What comes live afterwards and was read
        here is a repeat, dropped by sequence."""
        for notice in await self.feed.changes_since(since, self._last):
            for item in await self._in_order(notice):
                await self._deliver(item)
        for session_id, (first, last) in (await EventLog.written_since(since)).items():
            after = self._last.get(session_id, first - 1)
            if after >= last:  # it came live before the loss
                continue
            if not self.connections:  # nobody to send them to: the next live event stands alone
                self._last.pop(session_id, None)
                continue
            async for batch in EventLog.batches(session_id, after, REPLAY_BATCH, BATCH_BYTES):
                for event in batch:
                    self._sent(event)
                    await self._deliver(event)

    async def _run(self) -> None:
        lost_since: datetime | None = None
        while True:
            with self.bus.subscribe(ALL_SESSIONS, maxsize=HUB_QUEUE_SIZE) as items:
                if lost_since is not None:  # fell behind: what the full queue lost is in the log
                    await self._catch_up_safely(lost_since)
                    lost_since = None
                while (received := await items.get()) is not None:
                    if isinstance(received, Resubscribed):
                        await self._catch_up_safely(received.since)
                        continue
                    try:
                        ordered = await self._in_order(received)
                    except Exception:  # the log could not be read: send what arrived
                        log.exception("cannot fill a gap before %r for /ws", received)
                        ordered = [received]
                    for item in ordered:
                        await self._deliver(item)
            if items.overflowed:
                # Subscribed again first, then read up from the log: an item both live and
                # read is a repeat, dropped by its sequence. The margin covers a clock step.
                lost_since = (items.lost_since or utcnow()) - timedelta(seconds=OVERFLOW_MARGIN_SECONDS)
                log.warning("/ws hub fell behind (more than %d items queued); catching up from the log", HUB_QUEUE_SIZE)

    async def _catch_up_safely(self, since: datetime) -> None:
        try:
            await self._catch_up(since)
        except Exception:  # the database is down too: later events still fill gaps
            log.exception("cannot catch /ws up after live events from %s may be lost", since)

    async def _deliver(self, item: LoggedEvent | SessionNotice) -> None:
        if not self.connections:
            # Nothing to translate for; but what the feed remembers about a changed
            # session is stale now.
            if isinstance(item, SessionNotice):
                self.feed.forget(item.session_id)
            return
        try:
            if isinstance(item, SessionNotice):
                (message, owner), core_only = await self.feed.notice(item), False
            else:
                core_only = self.feed.core_only(item)
                if core_only and not any(c.all_events for c in self.connections):
                    return  # nobody to translate it for
                message, owner = await self.feed.event(item)
        except Exception:  # one bad item must not stop the feed
            log.exception("cannot translate %r for /ws", item)
            return
        if message is not None:
            self.broadcast(message, owner, core_only)
