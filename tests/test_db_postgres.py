"""The PostgreSQL backend (app/db_postgres.py): asyncpg's pool without the reset query
on release, and still nothing left half done by a failed transaction."""

from __future__ import annotations

import pytest
from tortoise import connections
from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from app.config import Settings
from app.db import apply_migrations, close_db, open_db
from app.db_postgres import NoResetAsyncpgClient
from app.models import Agent


async def test_statements_and_transactions_on_the_pool_without_reset(postgres_url, tmp_path):
    settings = Settings(data_dir=tmp_path, database_url=postgres_url)
    await apply_migrations(settings)
    await open_db(settings)
    try:
        client = connections.get("default")
        assert isinstance(client, NoResetAsyncpgClient)
        agent = await Agent.create(name="a", system_prompt="p")
        with pytest.raises(IntegrityError):
            async with in_transaction():
                await Agent.create(name="b", system_prompt="p")
                await Agent.create(id=agent.id, name="dup", system_prompt="p")  # same primary key
        assert [a.name for a in await Agent.all()] == ["a"]  # the transaction rolled back
        for _ in range(20):  # connections go back to the pool and come out usable
            assert await Agent.filter(name="a").count() == 1
        pool = client._pool
        assert pool._reset is not None and pool._reset.__name__ == "_keep_session"
    finally:
        await close_db()
