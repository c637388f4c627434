"""Tortoise's asyncpg backend, without a second query on every connection release, and
with every call bounded in time.

Tortoise takes a pooled connection for each statement and gives it back at once, and
asyncpg resets a connection it gets back: by default with a query (`SELECT
pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL`), so every statement cost
two round trips. That reset undoes session state: advisory locks, cursors, LISTEN, SET;
this server creates none of them. asyncpg still rolls back a transaction left open on
release (its own `_reset` runs before ours). Measured with py-spy in bench/temporal.py:
the reset was about 4 % of a worker's samples, and a round trip on every query's path.

Time limits (`database_timeout`, DATABASE_TIMEOUT_SECONDS): a database that stops
answering (packets dropped, a hung server) must not hold requests for as long as their
clients wait. Each call (waiting for a pooled connection, connecting, the statement)
ends within the limit; asyncpg's own limits (connect `timeout`, `command_timeout`, which
also bounds the cancel request it sends for a statement cut short) close connections
that stay silent, so the pool heals once the database answers again. Driver errors that
mean the database cannot be used now become DatabaseUnavailable (app/db.py).
"""

from __future__ import annotations

import asyncio

import asyncpg
from tortoise.backends.asyncpg.client import AsyncpgDBClient, TransactionWrapper
from tortoise.backends.base.client import NestedTransactionContext, TransactionContextPooled
from tortoise.connection import get_connections
from tortoise.exceptions import TransactionManagementError

from app.db import DatabaseUnavailable, unavailable


async def _keep_session(connection: asyncpg.Connection) -> None:
    """Nothing to undo (see above)."""


class _Limit:
    """`async with _Limit(seconds):` the block must finish in time; a timeout and driver
    errors that mean the database cannot be used come out as DatabaseUnavailable."""

    __slots__ = ("seconds", "_timeout")

    def __init__(self, seconds: float | None):
        self.seconds = seconds

    async def __aenter__(self) -> None:
        self._timeout = asyncio.timeout(self.seconds)
        await self._timeout.__aenter__()

    async def __aexit__(self, exc_type, exc, tb) -> None:
        try:
            await self._timeout.__aexit__(exc_type, exc, tb)  # turns its own cancel into TimeoutError
        except TimeoutError as timed_out:
            exc = timed_out
        if exc is None or isinstance(exc, DatabaseUnavailable) or not isinstance(exc, Exception):
            return  # success, already translated, or a cancel that is not ours: as it is
        error = unavailable(exc, self.seconds)  # never None for our own TimeoutError
        if error is not None:
            raise error from exc


class TimedPool(asyncpg.Pool):
    """Tortoise acquires and releases without a timeout; here they have one. A release
    made while the task is being cancelled (its call ran out of time) goes on in the
    background: asyncpg shields it anyway, and waiting would only hold the caller up for
    a connection that does not answer (asyncpg closes it when its own limit passes)."""

    def __init__(self, *args, acquire_timeout: float | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self._acquire_timeout = acquire_timeout
        self._releasing: set[asyncio.Task] = set()

    def acquire(self, *, timeout: float | None = None):
        return super().acquire(timeout=self._acquire_timeout if timeout is None else timeout)

    async def release(self, connection, *, timeout: float | None = None) -> None:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            releasing = asyncio.ensure_future(super().release(connection, timeout=timeout))
            self._releasing.add(releasing)
            releasing.add_done_callback(self._released)
            return
        await super().release(connection, timeout=timeout)

    def _released(self, task: asyncio.Task) -> None:
        self._releasing.discard(task)
        if not task.cancelled():
            task.exception()  # a connection that failed to reset was terminated: nothing else to do


class TimedTransactionWrapper(TransactionWrapper):
    """Statements, commit and rollback of a transaction, bounded like any call."""

    def __init__(self, connection) -> None:
        super().__init__(connection)
        self.database_timeout = connection.database_timeout

    def _in_transaction(self):
        return NestedTransactionContext(TimedTransactionWrapper(self))

    async def _translate_exceptions(self, func, *args, **kwargs):
        async with _Limit(self.database_timeout):
            return await super()._translate_exceptions(func, *args, **kwargs)

    async def commit(self) -> None:
        async with _Limit(self.database_timeout):
            await super().commit()

    async def rollback(self) -> None:
        async with _Limit(self.database_timeout):
            await super().rollback()


class TimedTransactionContext(TransactionContextPooled):
    """Tortoise's, except that a transaction that cannot begin gives its connection back
    (Tortoise's keeps it: a few failures would empty the pool for good), and a connection
    whose statement ran out of time or was lost is closed rather than rolled back: the
    server rolls back what a closed connection left open, and a rollback sent to a
    database that does not answer would wait out another time limit."""

    client: TimedTransactionWrapper  # as _in_transaction below makes it

    async def __aenter__(self):
        await self.ensure_connection()
        pool = self.client._parent._pool
        assert pool is not None  # ensure_connection made it
        async with _Limit(self.client.database_timeout):
            self.client._connection = await pool.acquire()
        try:
            await self.client.begin()
        except BaseException:
            self.client._connection.terminate()
            await pool.release(self.client._connection)
            raise
        self.token = get_connections().set(self.connection_name, self.client)
        return self.client

    async def __aexit__(self, exc_type, exc, tb) -> None:
        connection = self.client._connection
        try:
            if not self.client._finalized:
                if exc_type is None:
                    try:
                        await self.client.commit()
                    except DatabaseUnavailable:
                        connection.terminate()  # whether it committed is unknown; nothing else to do
                        raise
                elif isinstance(exc, DatabaseUnavailable) or not isinstance(exc, Exception):
                    connection.terminate()  # timed out, lost or cancelled mid-statement
                elif exc_type is not TransactionManagementError:
                    await self.client.rollback()
        finally:
            if self.client._parent._pool:
                await self.client._parent._pool.release(connection)
            get_connections().reset(self.token)


class NoResetAsyncpgClient(AsyncpgDBClient):
    def __init__(self, *args, database_timeout: float | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.database_timeout = database_timeout
        if database_timeout is not None:
            self.extra.setdefault("timeout", database_timeout)  # connecting
            self.extra.setdefault("command_timeout", database_timeout)  # each statement, and its cancel

    async def create_pool(self, **kwargs) -> asyncpg.Pool:
        # As asyncpg.create_pool(), with its defaults, but our pool class.
        kwargs.setdefault("max_queries", 50000)
        kwargs.setdefault("max_inactive_connection_lifetime", 300.0)
        kwargs.setdefault("record_class", asyncpg.Record)
        pool = TimedPool(None, reset=_keep_session, acquire_timeout=self.database_timeout, **kwargs)
        async with _Limit(self.database_timeout):
            return await pool

    async def _translate_exceptions(self, func, *args, **kwargs):
        async with _Limit(self.database_timeout):
            return await super()._translate_exceptions(func, *args, **kwargs)

    def _in_transaction(self):
        return TimedTransactionContext(TimedTransactionWrapper(self), self._pool_init_lock)

    async def check_writable(self) -> None:
        """For /healthz: whether this database takes writes. A standby (after a failover)
        and a database set to default_transaction_read_only (what some hosted
        PostgreSQL services do when the disk is nearly full) answer reads but refuse
        every write."""
        (row,) = await self.execute_query_dict(
            "SELECT pg_is_in_recovery() AS standby, current_setting('transaction_read_only') AS read_only")
        if row["standby"] or row["read_only"] == "on":
            raise DatabaseUnavailable("read-only, so nothing can be saved")


client_class = NoResetAsyncpgClient
