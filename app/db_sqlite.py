"""Tortoise's SQLite backend, with writes run on the event loop's own thread.

aiosqlite runs every statement in a worker thread. For the small writes this server
makes all the time (one event, one message, one status), the trip there and back costs
more than the write itself (~60 µs): the thread has to win the GIL from a busy event
loop, which can take a millisecond while a turn streams. So INSERT, UPDATE, DELETE,
transaction statements and single-row lookups (a SELECT ending in LIMIT 1 or 2: what
.first() and .get() send) run inline; other reads, which can be large, still go
through the thread. Statements never overlap: Tortoise holds one lock per connection
around each, so the two paths take turns on the one sqlite3 connection.

Waiting for a lock: another connection (another process: a backup, a `sqlite3` shell)
may hold the write lock. SQLite's busy handler would wait for it on whatever thread
runs the statement, and on the loop's thread that freezes the whole server (/healthz
included). So the connection does not wait (busy_timeout 0): a statement that finds the
file locked is tried again on the worker thread, waiting there at most
DATABASE_TIMEOUT_SECONDS. Errors that mean the file cannot be used now (locked, read-only,
full, I/O errors) become DatabaseUnavailable (app/db.py).
"""

from __future__ import annotations

import logging
import os
import sqlite3
from functools import partial

import aiosqlite
from tortoise.backends.base.client import ConnectionWrapper
from tortoise.backends.sqlite.client import SqliteClient, SqliteTransactionContext, SqliteTransactionWrapper
from tortoise.connection import get_connections

from app.db import unavailable
from app.secrets import keep_private

log = logging.getLogger("app.db")

INLINE = ("INSERT", "UPDATE", "DELETE", "BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE")
DEFAULT_TIMEOUT = 5.0  # seconds; sqlite3's own default, for connections opened without a setting
SQLITE_BUSY, SQLITE_LOCKED, SQLITE_BUSY_SNAPSHOT = 5, 6, 517
# What may simply run again after SQLITE_BUSY: one statement (and what Tortoise reads
# right after it) that failed before changing anything. Not executescript: a script can
# fail part way, after its first statements took effect.
RETRYABLE = ("execute", "executemany", "_execute_insert", "_execute_fetchall", "commit")


def runs_inline(fn, args: tuple) -> bool:
    sql = args[0] if args and isinstance(args[0], str) else None
    if sql is None:
        return getattr(fn, "__name__", "") in ("commit", "rollback")
    head = sql.lstrip()[:9].upper()
    if head.startswith(INLINE):
        return True
    if head.startswith("SELECT") and sql[-12:].rstrip().upper().endswith("LIMIT ?"):  # the tail: a lookup's SQL is 1.5 KB
        params = args[1] if len(args) > 1 else None
        return bool(params and isinstance(params[-1], int) and params[-1] <= 2)
    return False


def locked_out(exc: sqlite3.OperationalError) -> bool:
    """Another connection holds the lock, and waiting may help (not with a stale read
    snapshot inside a transaction: SQLITE_BUSY_SNAPSHOT never clears by waiting)."""
    code = getattr(exc, "sqlite_errorcode", None) or 0
    return (code & 0xFF) in (SQLITE_BUSY, SQLITE_LOCKED) and code != SQLITE_BUSY_SNAPSHOT


class InlineWritesConnection(aiosqlite.Connection):
    timeout = DEFAULT_TIMEOUT  # longest wait for another connection's lock (DATABASE_TIMEOUT_SECONDS)

    async def _execute(self, fn, *args, **kwargs):
        try:
            if runs_inline(fn, args):
                if not self._running or not self._connection:
                    raise ValueError("Connection closed")
                try:
                    return fn(*args, **kwargs)
                except sqlite3.OperationalError as exc:
                    if not (locked_out(exc) and getattr(fn, "__name__", "") in RETRYABLE):
                        raise
                    # The file is locked by another connection: wait for it off this thread.
            return await super()._execute(self._waiting(fn), *args, **kwargs)
        except sqlite3.Error as exc:
            error = unavailable(exc, self.timeout)
            if error is None:
                raise
            raise error from exc

    def _waiting(self, fn):
        """`fn` for the worker thread: at once, and if the file is locked, again with
        SQLite's busy handler waiting up to `timeout` for the lock."""
        if getattr(fn, "__name__", "") not in RETRYABLE:
            return fn

        def call(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except sqlite3.OperationalError as exc:
                if not locked_out(exc):
                    raise
            connection = self._conn
            connection.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")
            try:
                return fn(*args, **kwargs)
            finally:
                connection.execute("PRAGMA busy_timeout = 0")

        call.__name__ = fn.__name__
        return call


class UnlockingConnectionWrapper(ConnectionWrapper):
    """Tortoise's, except that a connection that cannot be opened (a read-only or
    missing directory) gives the lock back: Tortoise's keeps it, and every later
    statement would wait for it forever instead of failing."""

    async def __aenter__(self):
        await self._lock.acquire()
        try:
            await self.ensure_connection()
        except BaseException:
            self._lock.release()
            raise
        return self.connection


class UnlockingTransactionContext(SqliteTransactionContext):
    """The same for a transaction that cannot begin."""

    async def __aenter__(self):
        await self._trxlock.acquire()
        try:
            await self.ensure_connection()
            await self.connection.begin()
        except BaseException:
            self._trxlock.release()
            raise
        self.token = get_connections().set(self.connection_name, self.connection)
        return self.connection


class InlineWritesSqliteClient(SqliteClient):
    def __init__(self, file_path: str, database_timeout: float | None = None, **kwargs):
        super().__init__(file_path, **kwargs)  # other keywords are PRAGMAs
        self.database_timeout = database_timeout or DEFAULT_TIMEOUT

    def acquire_connection(self) -> ConnectionWrapper:
        return UnlockingConnectionWrapper(self._lock, self)

    async def check_writable(self) -> None:
        """For /healthz: a committed write, the smallest SQLite has (the header's
        user_version, set to what it is). Reading (SELECT 1) still works on a file that
        can no longer be written: a file system gone read-only or full, a file opened
        read-only. Only a write that reaches the file shows it."""
        (row,) = await self.execute_query_dict("PRAGMA user_version")
        await self.execute_query(f"PRAGMA user_version = {int(row['user_version'])}")

    def _in_transaction(self):
        return UnlockingTransactionContext(SqliteTransactionWrapper(self), self._lock)

    async def create_connection(self, with_db: bool) -> None:
        if not self._connection:
            make_private(self.filename)
            # As aiosqlite.connect(), but the connection is used from two threads (never
            # at once, see above), so sqlite3 must not insist on the thread that opened it;
            # and it never waits for a lock by itself (timeout=0, see above).
            connector = partial(sqlite3.connect, self.filename, isolation_level=None, check_same_thread=False,
                                timeout=0)
            connection = InlineWritesConnection(connector, 64)
            await connection  # starts its thread and connects (awaited, it is typed as its base class)
            connection.timeout = self.database_timeout
            try:
                connection._conn.row_factory = sqlite3.Row
                for pragma, val in self.pragmas.items():
                    cursor = await connection.execute(f"PRAGMA {pragma}={val}")
                    await cursor.close()
            except BaseException:
                # Not kept half set up (without foreign_keys, say): the next statement
                # opens it afresh, which works once the file can be used again.
                await connection.close()
                raise
            self._connection = connection
            await self._post_connect()


def make_private(filename: str) -> None:
    """The database holds password, API key and refresh token hashes: readable by its
    owner only. A new file is created 0600 before SQLite opens it (SQLite gives the -wal
    and -shm files it makes the database's mode). A file others can read (made by an
    earlier version, with the umask's 0644) is tightened to its owner's bits, and said so:
    quietly readable by every local account is the worse surprise."""
    if filename in ("", ":memory:") or filename.startswith("file:"):
        return
    try:
        os.close(os.open(filename, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        return
    except FileExistsError:
        pass
    for path in (filename, filename + "-wal", filename + "-shm"):
        keep_private(path)


client_class = InlineWritesSqliteClient
