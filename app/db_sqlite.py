"""Tortoise's SQLite backend, with writes run on the event loop's own thread.

aiosqlite runs every statement in a worker thread. For the small writes this server
makes all the time (one event, one message, one status), the trip there and back costs
more than the write itself (~60 µs): the thread has to win the GIL from a busy event
loop, which can take a millisecond while a turn streams. So INSERT, UPDATE, DELETE,
transaction statements and single-row lookups (a SELECT ending in LIMIT 1 or 2: what
.first() and .get() send) run inline; other reads, which can be large, still go
through the thread. Statements never overlap: Tortoise holds one lock per connection
around each, so the two paths take turns on the one sqlite3 connection.
"""

from __future__ import annotations

import sqlite3
from functools import partial

import aiosqlite
from tortoise.backends.sqlite.client import SqliteClient

INLINE = ("INSERT", "UPDATE", "DELETE", "BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE")


def runs_inline(fn, args: tuple) -> bool:
    sql = args[0] if args and isinstance(args[0], str) else None
    if sql is None:
        return getattr(fn, "__name__", "") in ("commit", "rollback")
    head = sql.lstrip()[:9].upper()
    if head.startswith(INLINE):
        return True
    if head.startswith("SELECT") and sql.rstrip().upper().endswith("LIMIT ?"):
        params = args[1] if len(args) > 1 else None
        return bool(params) and isinstance(params[-1], int) and params[-1] <= 2
    return False


class InlineWritesConnection(aiosqlite.Connection):
    async def _execute(self, fn, *args, **kwargs):
        if runs_inline(fn, args):
            if not self._running or not self._connection:
                raise ValueError("Connection closed")
            return fn(*args, **kwargs)
        return await super()._execute(fn, *args, **kwargs)


class InlineWritesSqliteClient(SqliteClient):
    async def create_connection(self, with_db: bool) -> None:
        if not self._connection:
            # As aiosqlite.connect(), but the connection is used from two threads (never
            # at once, see above), so sqlite3 must not insist on the thread that opened it.
            connector = partial(sqlite3.connect, self.filename, isolation_level=None, check_same_thread=False)
            self._connection = await InlineWritesConnection(connector, 64)
            self._connection._conn.row_factory = sqlite3.Row
            for pragma, val in self.pragmas.items():
                cursor = await self._connection.execute(f"PRAGMA {pragma}={val}")
                await cursor.close()
            await self._post_connect()


client_class = InlineWritesSqliteClient
