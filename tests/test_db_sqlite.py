"""The SQLite backend runs writes on the event loop's thread and reads on aiosqlite's:
transactions, errors and concurrent use still behave as on stock Tortoise."""

from __future__ import annotations

import asyncio
import threading

import pytest
from tortoise import connections
from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from app.db_sqlite import InlineWritesConnection, InlineWritesSqliteClient
from app.models import Agent, Event, Session


@pytest.fixture
async def db(app, client):  # the client fixture starts the app, which opens the database
    return connections.get("default")


async def test_sqlite_uses_the_inline_writes_backend(db):
    assert isinstance(db, InlineWritesSqliteClient)
    assert isinstance(db._connection, InlineWritesConnection)


async def test_writes_and_lookups_run_inline_and_other_reads_in_the_worker_thread(db, monkeypatch):
    threads: list[tuple[str, str]] = []
    original = InlineWritesConnection._execute

    async def spy(self, fn, *args, **kwargs):
        def traced(*a, **kw):
            threads.append((str(a[0])[:6] if a else getattr(fn, "__name__", "?"), threading.current_thread().name))
            return fn(*a, **kw)
        return await original(self, traced, *args, **kwargs)

    monkeypatch.setattr(InlineWritesConnection, "_execute", spy)
    await Agent.create(name="a", system_prompt="p")
    await Agent.filter(name="a").first()  # one row at most: inline too
    await Agent.filter(name="a")  # any number of rows: the worker thread
    main = threading.main_thread().name
    assert [t for _, t in threads[:2]] == [main, main] and threads[2][1] != main
    assert [s for s, _ in threads[:3]] == ["INSERT", "SELECT", "SELECT"]


async def test_a_failed_transaction_rolls_back(db):
    with pytest.raises(RuntimeError):
        async with in_transaction():
            await Agent.create(name="gone", system_prompt="p")
            raise RuntimeError("abort")
    assert not await Agent.filter(name="gone").exists()


async def test_constraint_errors_are_translated(db):
    session = await Session.create(id="s-dup", agent=await Agent.create(name="a", system_prompt="p"))
    await Event.create(session=session, sequence=1, type="t")
    with pytest.raises(IntegrityError):  # the per-session sequence numbers rely on this
        await Event.create(session=session, sequence=1, type="t")


async def test_concurrent_reads_and_writes_do_not_interleave(db):
    async def write(i: int):
        await Agent.create(name=f"w{i}", system_prompt="p")

    async def read():
        return await Agent.all().count()

    results = await asyncio.gather(*(write(i) if i % 2 else read() for i in range(40)))
    assert await Agent.filter(name__startswith="w").count() == 20 and all(isinstance(r, int) for r in results if r)


async def test_the_wal_keeps_its_working_size_and_commits_skip_fsync(db):
    """Tortoise's 16 KB journal_size_limit shrank the WAL after every checkpoint, and each
    commit grew it again: a quarter of an event insert (issue 13)."""
    assert (await db.execute_query_dict("PRAGMA journal_size_limit"))[0]["journal_size_limit"] == 64 * 1024 * 1024
    assert (await db.execute_query_dict("PRAGMA synchronous"))[0]["synchronous"] == 1  # NORMAL
    assert (await db.execute_query_dict("PRAGMA journal_mode"))[0]["journal_mode"] == "wal"


def test_pragmas_in_the_database_url_win():
    from app.db import with_sqlite_pragmas

    assert with_sqlite_pragmas("sqlite:///x.db?journal_size_limit=-1") == "sqlite:///x.db?journal_size_limit=-1&synchronous=NORMAL"
    assert with_sqlite_pragmas("sqlite:///x.db") == f"sqlite:///x.db?synchronous=NORMAL&journal_size_limit={64 * 1024 * 1024}"
    assert with_sqlite_pragmas("sqlite://:memory:") == "sqlite://:memory:"
