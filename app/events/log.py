"""The durable, per-session event log.

Every event is written (with the session's next `sequence`: 1, 2, 3 ... no gaps, no
repeats) before it is published on the bus, so anything a live listener sees can also
be read back, and a listener that missed something can always catch up from here.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncGenerator, Awaitable, Collection
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import Any, TypeVar

from tortoise.exceptions import IntegrityError

from app.errors import SessionGone
from app.events.bus import EventBus, SessionNotice
from app.events.messages import RecentMessages
from app.json_encoding import dumps
from app.models import Event, Message, Session, raw_sql
from app.models.sequences import EVENT_INSERT, MESSAGE_INSERT, SequenceCounter, SessionRowCounter
from app.timeutil import utcnow

ONCE_LOOKBACK = 50  # append_once looks this far back among the session's events of the type
SINCE_PAGE = 1000  # events per read of written_since

T = TypeVar("T")
_new_instance = object.__new__


def sse_frame(event_id: int, name: str, data: Any) -> bytes:
    """One SSE frame: `id`, `event`, and `data` as one line of JSON."""
    return f"id: {event_id}\nevent: {name}\ndata: {dumps(data)}\n\n".encode()


@dataclass(frozen=True)
class LoggedEvent:
    id: int
    session_id: str
    sequence: int
    type: str
    data: dict[str, Any]
    created_at: datetime

    @classmethod
    def from_row(cls, row: Event) -> LoggedEvent:
        return cls(row.id, row.session_id, row.sequence, row.type, row.data, row.created_at)

    @classmethod
    def from_db(cls, row) -> LoggedEvent:
        """From a raw row of raw_sql.event_rows, decoded here rather than through an
        Event instance (half the cost of a page of events). The fields go straight into
        the instance's __dict__: a frozen dataclass's __init__ sets each through
        object.__setattr__, a third of this call (0.7 of 2 µs; a page of 100 events
        builds 100 of these)."""
        event_id, session_id, sequence, type, data, created_at = row
        event = _new_instance(cls)
        event.__dict__.update(id=event_id, session_id=session_id, sequence=sequence, type=type,
                              data=raw_sql.decode_json(data), created_at=raw_sql.decode_timestamp(created_at))
        return event

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "session_id": self.session_id,
            "sequence": self.sequence,
            "type": self.type,
            "data": self.data,
            "created_at": self.created_at.isoformat().replace("+00:00", "Z"),
        }

    @cached_property
    def sse_frame(self) -> bytes:
        """Encoded once, however many subscribers receive it."""
        return sse_frame(self.sequence, self.type, self.data)


async def _unless_gone(session_id: str, write: Awaitable[T]) -> T:
    """A write refused by the database (IntegrityError) because its session no longer
    exists: a DELETE got there first. Callers tell that from other integrity errors (a
    taken id) by SessionGone, the 404 of a missing session rather than a generic 409."""
    try:
        return await write
    except IntegrityError:
        if await Session.exists(id=session_id):
            raise
        raise SessionGone(session_id) from None


class EventLog:
    """Also numbers the session's messages: both logs share one per-session discipline.

    Numbers come from memory on SQLite (one writing process; fastest), and from the
    session row on PostgreSQL (`on_postgres`), where API and worker processes may write
    to one session at once. `single_writer`: this process is the only one running turns
    (in-process runner), so what it numbered may be trusted by caches."""

    def __init__(self, bus: EventBus, on_postgres: bool = False, single_writer: bool = True):
        self.bus = bus
        self.shared = SessionRowCounter(single_writer) if on_postgres else None
        self.event_numbers = SequenceCounter(Event)
        self.message_numbers = self.shared or SequenceCounter(Message)
        self.messages = RecentMessages(self.message_numbers)

    async def append(self, session_id: str, type: str, data: dict[str, Any] | None = None) -> LoggedEvent:
        """Log an event; SessionGone if the session was deleted (by then or meanwhile)."""
        return await _unless_gone(session_id, self._append(session_id, type, data))

    async def _append(self, session_id: str, type: str, data: dict[str, Any] | None) -> LoggedEvent:
        payload = {"session_id": session_id, **(data or {})}
        if self.shared is not None:
            # Published after the statement committed: a reader that fills a gap from
            # the database then finds it. Order across writers is the sequence, which
            # subscribers restore (app/events/sse.py).
            created_at = utcnow()
            row_id, sequence = await self.shared.insert_row(EVENT_INSERT, session_id, type, dumps(payload), created_at)
            event = LoggedEvent(row_id, session_id, sequence, type, payload, created_at)
            self.bus.publish(event)
            return event

        async def store_then_publish(sequence: int) -> LoggedEvent:
            # Published under the session's lock, so live listeners see events in order.
            created_at = utcnow()
            row_id = await raw_sql.insert_event(session_id, sequence, type, dumps(payload), created_at)
            event = LoggedEvent(row_id, session_id, sequence, type, payload, created_at)
            self.bus.publish(event)
            return event

        return await self.event_numbers.insert(session_id, store_then_publish)

    async def append_once(self, session_id: str, type: str, data: dict[str, Any],
                          key: str = "message_id") -> LoggedEvent:
        """append(), unless the log has this event already: one of `type` with the same
        `data[key]`. For writing again after a write whose answer was lost (the database
        connection dropped or timed out after the statement was sent), or a retried
        activity: it may have been stored but never published, so one found is published
        now (subscribers drop what they have seen by its sequence)."""
        recent = await Event.filter(session_id=session_id, type=type).order_by("-sequence").limit(ONCE_LOOKBACK)
        for row in recent:
            if (row.data or {}).get(key) == data.get(key):
                event = LoggedEvent.from_row(row)
                self.bus.publish(event)
                return event
        return await self.append(session_id, type, data)

    async def insert_message(self, session_id: str, message_id, role: str, content: dict[str, Any],
                             reply_to: uuid.UUID | None = None) -> Message:
        """Store a message with the session's next number (not announced: see record_message);
        SessionGone if the session was deleted."""
        return await _unless_gone(session_id, self._insert_message(session_id, message_id, role, content, reply_to))

    async def _insert_message(self, session_id: str, message_id, role: str, content: dict[str, Any],
                              reply_to: uuid.UUID | None) -> Message:
        created_at, content_json = utcnow(), dumps(content)
        if self.shared is None:
            assert isinstance(self.message_numbers, SequenceCounter)  # no shared counter: numbered here

            async def store(number: int) -> int:
                await raw_sql.insert_message(message_id, session_id, number, role, content_json, created_at, reply_to)
                return number

            sequence = await self.message_numbers.insert(session_id, store)
        else:
            (sequence,) = await self.shared.insert_row(MESSAGE_INSERT, session_id, message_id, role, content_json,
                                                       created_at, reply_to)
        return Message(id=message_id, session_id=session_id, sequence=sequence, role=role, content=content,
                       created_at=created_at, reply_to=reply_to)

    def numbers_events_of(self, session_id: str) -> bool:
        """Whether this process numbers the session's events from memory and has numbered
        some: the session existed a moment ago, and a delete here would have forgotten it.
        Never on PostgreSQL, where other processes write and delete too."""
        return self.shared is None and self.event_numbers.last(session_id) is not None

    def forget_session(self, session_id: str) -> None:
        self.event_numbers.forget(session_id)
        self.message_numbers.forget(session_id)
        self.messages.forget(session_id)

    def notify_session(self, kind: str, session_id: str, owner_id: Any = None) -> None:
        """Announce that a session was created, updated or deleted (the /ws feed)."""
        self.bus.publish_notice(SessionNotice(kind, session_id, owner_id))

    @staticmethod
    async def read(session_id: str, after: int = 0, limit: int | None = None,
                   types: tuple[str, ...] | None = None) -> list[LoggedEvent]:
        return [LoggedEvent.from_db(row) for row in await raw_sql.event_rows(session_id, after, limit, types)]

    @staticmethod
    async def read_small(session_id: str, after: int, limit: int, max_each: int,
                         types: Collection[str] | None = None) -> list[LoggedEvent] | None:
        """read(), unless one of the events has more than `max_each` bytes of data (None:
        read those with read_batch). A page of at most `limit * max_each`, for about what
        read() costs."""
        rows = await raw_sql.small_event_rows(session_id, after, limit, max_each, types)
        return None if rows is None else [LoggedEvent.from_db(row) for row in rows]

    @staticmethod
    async def read_batch(session_id: str, after: int, limit: int, max_bytes: int,
                         types: Collection[str] | None = None) -> tuple[list[LoggedEvent], bool]:
        """At most `limit` events after `after` (of `types`, if given), and no more than
        `max_bytes` of them (one at least); and whether more may follow. For replays: a
        batch of large events is bounded by its size, not by a count that may be hundreds
        of MB of them."""
        rows, more = await raw_sql.event_batch(session_id, after, limit, max_bytes, types)
        return [LoggedEvent.from_db(row) for row in rows], more

    @classmethod
    async def batches(cls, session_id: str, after: int, limit: int, max_bytes: int,
                      types: Collection[str] | None = None) -> AsyncGenerator[list[LoggedEvent], None]:
        """Every event after `after` (of `types`, if given), in read_batch's batches."""
        count, more = limit, True
        while more:
            batch, more = await cls.read_batch(session_id, after, count, max_bytes, types)
            if batch:
                after = batch[-1].sequence
                yield batch
            # The database reads every event it sizes: after a batch the budget cut short,
            # size about twice as many as fitted next time, not `limit` again (500 events
            # of 900 KB read per MB sent); a batch that was all of `count` doubles it.
            count = min(limit, 2 * len(batch) or 1)

    @classmethod
    async def in_order(cls, last: int | None, event: LoggedEvent) -> list[LoggedEvent]:
        """What a listener that has delivered up to `last` should deliver for a live
        `event`: nothing if it is a repeat, else the event preceded by any it skipped
        (read from the log). Live events can arrive out of order or not at all when
        several writers publish (other processes, through Redis); the log is the truth.
        `last` None: the listener knows nothing yet, so the event stands alone."""
        if last is None:
            return [event]
        if event.sequence <= last:
            return []
        if event.sequence == last + 1:
            return [event]
        return [*await cls.read(event.session_id, after=last, limit=event.sequence - last - 1), event]

    @staticmethod
    async def written_since(when: datetime) -> dict[str, tuple[int, int]]:
        """The sessions with events stored at or after `when` (as their writers stamped
        them), each with the first and last such sequence. Read newest first by id, the
        primary key, until one is older: ids are handed out in about the order events are
        stored, so this reads what was stored since, never the whole log (created_at has
        no index)."""
        found: dict[str, tuple[int, int]] = {}
        before: int | None = None
        while True:
            query = Event.all() if before is None else Event.filter(id__lt=before)
            rows = await query.order_by("-id").limit(SINCE_PAGE).values_list("id", "session_id", "sequence", "created_at")
            for row_id, session_id, sequence, created_at in rows:
                if created_at < when:
                    return found
                first, last = found.get(session_id, (sequence, sequence))
                found[session_id] = (min(first, sequence), max(last, sequence))
                before = row_id
            if len(rows) < SINCE_PAGE:
                return found

    async def page(self, session_id: str, after: int, limit: int,
                   types: Collection[str] | None, exclude: Collection[str] | None) -> tuple[list[LoggedEvent], int]:
        rows = await raw_sql.event_rows(session_id, after, limit, types, exclude)
        return [LoggedEvent.from_db(row) for row in rows], await raw_sql.event_total(session_id, types, exclude)
