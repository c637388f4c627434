"""Per-session sequence numbers (1, 2, 3 ...) for messages and events.

Numbers are handed out from memory: the last one is read from the database once per
session, then each write is a single INSERT under a per-session lock. The unique
(session, sequence) constraint stays the source of truth: if another process wrote the
same number first, the insert fails, the counter is re-read, and the insert retried.
That keeps the hot path (every streamed delta) to one statement without giving up
correctness when several processes share a PostgreSQL database.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import TypeVar

from tortoise.exceptions import IntegrityError
from tortoise.models import Model

T = TypeVar("T")

MAX_CACHED_SESSIONS = 10_000
RETRIES = 3
SEQUENCE_MAX = 2**31 - 1  # the sequence columns are INT: no number is larger


class SequenceCounter:
    def __init__(self, model: type[Model]):
        self.model = model  # Message or Event: has session_id and sequence
        self._last: OrderedDict[str, int] = OrderedDict()
        self._locks: dict[str, asyncio.Lock] = {}

    async def _read_last(self, session_id: str) -> int:
        rows = await self.model.filter(session_id=session_id).order_by("-sequence").limit(1).values_list("sequence")
        return rows[0][0] if rows else 0

    async def insert(self, session_id: str, create: Callable[[int], Awaitable[T]]) -> T:
        """Call `create(sequence)` with the session's next number; returns its result."""
        lock = self._locks.setdefault(session_id, asyncio.Lock())
        async with lock:
            last = self._last.get(session_id)
            if last is None:
                last = await self._read_last(session_id)
            for attempt in range(RETRIES):
                try:
                    row = await create(last + 1)
                    break
                except IntegrityError:
                    if attempt == RETRIES - 1:
                        # Not a race (e.g. the session is gone): let the caller see it. What
                        # was remembered is not trusted either: a session deleted by other
                        # means than forget() (a cascade) and created again starts at 1.
                        self._last.pop(session_id, None)
                        raise
                    last = await self._read_last(session_id)
            self._remember(session_id, last + 1)
            return row

    def _remember(self, session_id: str, last: int) -> None:
        self._last[session_id] = last
        self._last.move_to_end(session_id)
        while len(self._last) > MAX_CACHED_SESSIONS:
            oldest, _ = self._last.popitem(last=False)
            lock = self._locks.get(oldest)
            if lock is not None and not lock.locked():
                del self._locks[oldest]

    def last(self, session_id: str) -> int | None:
        """The last number handed out here, if this process has numbered the session yet."""
        return self._last.get(session_id)

    def forget(self, session_id: str) -> None:
        self._last.pop(session_id, None)
        self._locks.pop(session_id, None)


# --- PostgreSQL: numbers from the session row -----------------------------------------

# One statement bumps the session's counter and inserts the row with the new number.
# The UPDATE locks the session row until the statement commits, so a concurrent writer
# (another process) waits for it and then reads the new counter: numbers are unique and
# gap-free, and commit order is number order. A failed insert rolls the bump back. No
# lock outlives the statement, and no process needs to know what the others wrote.
EVENT_INSERT = """
WITH n AS (UPDATE sessions SET event_seq = event_seq + 1 WHERE id = $1 RETURNING event_seq)
INSERT INTO events (session_id, sequence, type, data, created_at)
SELECT $1, n.event_seq, $2, $3::jsonb, $4 FROM n RETURNING id, sequence"""

MESSAGE_INSERT = """
WITH n AS (UPDATE sessions SET message_seq = message_seq + 1 WHERE id = $1 RETURNING message_seq)
INSERT INTO messages (id, session_id, sequence, role, content, created_at, reply_to)
SELECT $2, $1, n.message_seq, $3, $4::jsonb, $5, $6 FROM n RETURNING sequence"""


class SessionRowCounter:
    """Numbers for one table (events or messages) from the session row, on PostgreSQL.

    `remembers`: whether `last()` may answer from what this process handed out. True
    when this process is the session's only writer (in-process runner); False when API
    and worker processes both write, so caches keyed on it are always re-read."""

    def __init__(self, remembers: bool):
        self.remembers = remembers
        self._last: OrderedDict[str, int] = OrderedDict()

    async def insert_row(self, sql: str, session_id: str, *values) -> list:
        from tortoise import connections

        _, rows = await connections.get("default").execute_query(sql, [session_id, *values])
        if not rows:  # the UPDATE found no session: as the foreign key would say
            raise IntegrityError(f"session '{session_id}' does not exist")
        row = list(rows[0].values()) if hasattr(rows[0], "values") else list(rows[0])
        if self.remembers:
            self._last[session_id] = row[-1]
            self._last.move_to_end(session_id)
            while len(self._last) > MAX_CACHED_SESSIONS:
                self._last.popitem(last=False)
        return row

    def last(self, session_id: str) -> int | None:
        return self._last.get(session_id) if self.remembers else None

    def forget(self, session_id: str) -> None:
        self._last.pop(session_id, None)
