"""Tortoise's asyncpg backend, without a second query on every connection release.

Tortoise takes a pooled connection for each statement and gives it back at once, and
asyncpg resets a connection it gets back: by default with a query (`SELECT
pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL`), so every statement cost
two round trips. That reset undoes session state: advisory locks, cursors, LISTEN, SET;
this server creates none of them. asyncpg still rolls back a transaction left open on
release (its own `_reset` runs before ours). Measured with py-spy in bench/temporal.py:
the reset was about 4 % of a worker's samples, and a round trip on every query's path.
"""

from __future__ import annotations

import asyncpg
from tortoise.backends.asyncpg.client import AsyncpgDBClient


async def _keep_session(connection: asyncpg.Connection) -> None:
    """Nothing to undo (see above)."""


class NoResetAsyncpgClient(AsyncpgDBClient):
    async def create_pool(self, **kwargs) -> asyncpg.Pool:
        return await asyncpg.create_pool(None, reset=_keep_session, **kwargs)


client_class = NoResetAsyncpgClient
