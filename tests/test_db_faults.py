"""When the database fails: a stalled, down, dropped, read-only or full database is a
503 `database_unavailable` within DATABASE_TIMEOUT_SECONDS (never a hang, never a 500),
/healthz says so within 2 s (it checks that the database takes writes, not only that it
answers), and everything works again once the database is back.

PostgreSQL faults go through a TCP proxy (tests/tcp_proxy.py) that can drop packets or
refuse connections; SQLite faults are what an operator's machine would do to the file:
another process holding the write lock, writes refused by the kernel, a full disk."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import sqlite3
import subprocess
import time
from pathlib import Path

import asyncpg
import pytest

from app.config import ConfigError, Settings
from app.main import create_app
from tests.conftest import PG_ADMIN_URL
from tests.tcp_proxy import TcpProxy

TIMEOUT = 1.0  # DATABASE_TIMEOUT_SECONDS in these tests
SLACK = 1.0  # what a loaded test machine may add to it
AGENT = {"name": "a", "system_prompt": "p"}


# --- the setting ----------------------------------------------------------------------

def test_database_timeout_setting():
    assert Settings.from_env({}).database_timeout_seconds == 5.0
    assert Settings.from_env({"DATABASE_TIMEOUT_SECONDS": "2.5"}).database_timeout_seconds == 2.5
    for bad in ("0", "-1", "soon", "nan", "inf"):
        with pytest.raises(ConfigError, match="DATABASE_TIMEOUT_SECONDS"):
            Settings.from_env({"DATABASE_TIMEOUT_SECONDS": bad})


# --- helpers --------------------------------------------------------------------------

@contextlib.asynccontextmanager
async def serving(settings: Settings):
    app = create_app(settings)
    async with app.test_app():
        yield app.test_client()


async def timed(call, limit: float):
    """(response, seconds); a call that takes longer than `limit` fails the test rather
    than hanging it (the old behaviour was to wait as long as the client did)."""
    started = time.monotonic()
    async with asyncio.timeout(limit):
        response = await call
    return response, time.monotonic() - started


async def longest_stall(until: asyncio.Future) -> float:
    """The longest the event loop did not run this task while `until` was pending."""
    worst, last = 0.0, time.monotonic()
    while not until.done():
        await asyncio.sleep(0.01)
        now = time.monotonic()
        worst, last = max(worst, now - last), now
    return worst


async def assert_unavailable(response, *, says: str | None = None, detail_shape: bool = False) -> str:
    body = await response.get_json()
    assert response.status_code == 503, body
    if detail_shape:  # the Agent Runtime API's own error shape
        assert set(body) == {"detail"}
        message = body["detail"]
    else:
        assert body["status"] == 503 and body["error"]["code"] == "database_unavailable", body
        message = body["error"]["message"]
    assert message.startswith("database unavailable: ") and message.endswith("; try again later")
    if says:
        assert says in message, message
    return message


async def assert_degraded(client, *, says: str | None = None) -> None:
    response, seconds = await timed(client.get("/healthz"), 5)
    body = await response.get_json()
    assert response.status_code == 503 and body["status"] == "degraded", body
    assert seconds < 2.0, f"/healthz took {seconds:.2f} s"
    assert body["checks"]["database"].startswith("error: ")
    if says:
        assert says in body["checks"]["database"], body


async def eventually_healthy(client, within: float = 10) -> None:
    deadline = time.monotonic() + within
    while True:
        response = await client.get("/healthz")
        if response.status_code == 200:
            return
        assert time.monotonic() < deadline, await response.get_json()
        await asyncio.sleep(0.2)


# --- SQLite ---------------------------------------------------------------------------

@pytest.fixture
def sqlite_settings(settings) -> Settings:
    return settings.replace(database_timeout_seconds=TIMEOUT)


def db_file(settings: Settings) -> Path:
    return Path(settings.database_url.removeprefix("sqlite://"))


class WriteLock:
    """Another connection holding the database's write lock, as a backup tool or a
    `sqlite3` shell inside a transaction does."""

    def __init__(self, path: Path):
        self.other = sqlite3.connect(path, isolation_level=None)

    def take(self) -> None:
        self.other.execute("BEGIN IMMEDIATE")

    def give_back(self) -> None:
        self.other.execute("ROLLBACK")

    def close(self) -> None:
        self.other.close()


async def test_sqlite_locked_by_another_connection(sqlite_settings):
    with contextlib.closing(WriteLock(db_file(sqlite_settings))) as lock:
        await _locked_by_another_connection(sqlite_settings, lock)


async def _locked_by_another_connection(sqlite_settings, lock: WriteLock):
    async with serving(sqlite_settings) as client:
        lock.take()
        try:
            # The write waits for the lock on SQLite's worker thread, never on the event
            # loop's: meanwhile the server goes on with everything else.
            writing = asyncio.ensure_future(timed(client.post("/v1/agents", json=AGENT), TIMEOUT + 10))
            stalled = await longest_stall(writing)
            assert stalled < TIMEOUT / 2, f"the event loop was blocked for {stalled:.2f} s"
            response, seconds = await writing
            await assert_unavailable(response, says="locked by another connection")
            assert TIMEOUT - 0.1 < seconds < TIMEOUT + SLACK
            assert (await client.get("/v1/agents")).status_code == 200  # WAL: reading still works
            hook = {"session_id": "s1", "session_name": "n"}
            response, _ = await timed(client.post("/sessions", json=hook), TIMEOUT + 10)
            await assert_unavailable(response, says="locked", detail_shape=True)
            await assert_degraded(client)  # its write probe cannot take the lock either
        finally:
            lock.give_back()
        await eventually_healthy(client)
        assert (await client.post("/v1/agents", json=AGENT)).status_code == 201


def _chattr_works(folder: Path) -> bool:
    probe = folder / "chattr-probe"
    probe.write_text("x")
    try:
        if subprocess.run(["chattr", "+i", str(probe)], capture_output=True).returncode != 0:
            return False
        subprocess.run(["chattr", "-i", str(probe)], check=True)
        return True
    except FileNotFoundError:
        return False
    finally:
        probe.unlink(missing_ok=True)


@contextlib.contextmanager
def immutable(*paths: Path):
    """The kernel refuses every write to these files (chattr +i; root only). It stands
    for a disk that stopped taking writes: a file system remounted read-only after an
    error (EROFS), a failing disk (EIO). SQLite reports each of them the same way, as
    SQLITE_IOERR_WRITE "disk I/O error", so this is the error path an operator sees.
    (A real read-only remount is refused while the server has the file open for
    writing; the -shm file is left alone because it is memory-mapped, and a write to
    an immutable mapping kills the process.)"""
    subprocess.run(["chattr", "+i", *map(str, paths)], check=True)
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", *map(str, paths)], check=True)


async def test_sqlite_file_that_refuses_writes(sqlite_settings, tmp_path):
    if not _chattr_works(tmp_path):
        pytest.skip("chattr +i is not available here (needs root and a file system that has it)")
    path = db_file(sqlite_settings)
    async with serving(sqlite_settings) as client:
        assert (await client.post("/v1/agents", json=AGENT)).status_code == 201
        assert (await client.get("/healthz")).status_code == 200
        with immutable(path, path.with_name(path.name + "-wal")):
            response, seconds = await timed(client.post("/v1/agents", json=AGENT), TIMEOUT + 10)
            await assert_unavailable(response, says="disk I/O error")
            assert seconds < SLACK  # an error at once: nothing to wait for
            listing = await (await client.get("/v1/agents")).get_json()
            assert listing["total"] == 1  # reads still work, the refused write left nothing
            await assert_degraded(client, says="disk I/O error")  # SELECT 1 alone said "ok" here
        await eventually_healthy(client)
        assert (await client.post("/v1/agents", json=AGENT)).status_code == 201


@contextlib.contextmanager
def small_tmpfs(folder: Path, size: str = "4m"):
    folder.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                                           capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root or CAP_SYS_ADMIN)")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def fill(folder: Path) -> Path:
    """Write until the file system is full."""
    filler = folder / "filler"
    with open(filler, "wb") as file:
        with contextlib.suppress(OSError):
            while True:
                file.write(b"\0" * 65536)
                file.flush()
    return filler


async def test_sqlite_on_a_full_disk(sqlite_settings, tmp_path):
    with small_tmpfs(tmp_path / "small") as disk:
        shutil.copy(db_file(sqlite_settings), disk / "db.sqlite3")
        settings = sqlite_settings.replace(database_url=f"sqlite://{disk}/db.sqlite3")
        async with serving(settings) as client:
            assert (await client.post("/v1/agents", json=AGENT)).status_code == 201
            filler = fill(disk)
            response, _ = await timed(client.post("/v1/agents", json={**AGENT, "system_prompt": "p" * 20000}),
                                      TIMEOUT + 10)
            await assert_unavailable(response, says="disk full")
            await assert_degraded(client, says="disk full")
            filler.unlink()
            await eventually_healthy(client)
            assert (await client.post("/v1/agents", json=AGENT)).status_code == 201


# --- PostgreSQL -----------------------------------------------------------------------

@pytest.fixture
def postgres_url(pg_copy) -> str:
    """A migrated copy of the test run's template database (dropped afterwards): migrating
    a new database through the proxy can outlast the test app's 6 s start-up limit on a
    loaded machine (the suite runs on two workers)."""
    return pg_copy


@pytest.fixture
def proxy(postgres_url):
    with TcpProxy("127.0.0.1", 5432) as proxy:
        yield proxy


@pytest.fixture
def proxied_settings(settings, postgres_url, proxy) -> Settings:
    return settings.replace(database_url=proxy.url(postgres_url), auto_migrate=True, database_timeout_seconds=TIMEOUT)


async def pg_admin(sql: str, *args) -> None:
    """On the admin database, straight to PostgreSQL (not through the proxy)."""
    connection = await asyncpg.connect(PG_ADMIN_URL.replace("postgres://", "postgresql://", 1))
    try:
        await connection.execute(sql, *args)
    finally:
        await connection.close()


async def terminate_backends(database: str) -> None:
    await pg_admin("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 "
                   "AND pid <> pg_backend_pid()", database)


def database_name(url: str) -> str:
    return url.rsplit("/", 1)[1]


async def test_postgres_stalled(proxied_settings, proxy):
    """Packets dropped: connections stay open and nothing comes back."""
    async with serving(proxied_settings) as client:
        assert (await client.post("/v1/agents", json=AGENT)).status_code == 201
        proxy.black_hole()
        try:
            await assert_degraded(client, says="no answer")
            for call in (client.get("/v1/agents"),  # a pooled connection that no longer answers
                         client.post("/v1/agents", json=AGENT),
                         client.post("/v1/llm-providers", json={  # a transaction
                             "name": "p", "provider_type": "openai", "api_key": "k"})):
                response, seconds = await timed(call, TIMEOUT + 10)
                await assert_unavailable(response, says=f"no answer within {TIMEOUT:g} s")
                assert seconds < TIMEOUT + SLACK
            # More calls than the pool has connections: none is kept by a call that gave up.
            responses = await asyncio.gather(*(timed(client.get("/v1/agents"), TIMEOUT * 3 + 10) for _ in range(8)))
            for response, seconds in responses:
                await assert_unavailable(response)
                assert seconds < 2 * TIMEOUT + SLACK  # waiting for a connection, then for its answer
            response, _ = await timed(client.get("/sessions"), TIMEOUT + 10)
            await assert_unavailable(response, detail_shape=True)
            await assert_degraded(client)
        finally:
            proxy.forward()
        await eventually_healthy(client)
        listing = await (await client.get("/v1/agents")).get_json()
        assert listing["total"] >= 1
        assert (await client.post("/v1/agents", json=AGENT)).status_code == 201


async def test_postgres_down_then_back(proxied_settings, proxy, postgres_url):
    async with serving(proxied_settings) as client:
        assert (await client.post("/v1/agents", json=AGENT)).status_code == 201
        proxy.refuse()  # the server is gone: its connections reset, its port refuses
        await terminate_backends(database_name(postgres_url))
        response, seconds = await timed(client.get("/v1/agents"), TIMEOUT + 10)
        await assert_unavailable(response, says="connection refused or lost")
        assert seconds < TIMEOUT + SLACK
        await assert_degraded(client, says="connection refused or lost")
        proxy.forward()
        await eventually_healthy(client)
        assert (await (await client.get("/v1/agents")).get_json())["total"] == 1


async def test_postgres_database_dropped(proxied_settings, postgres_url):
    async with serving(proxied_settings) as client:
        assert (await client.post("/v1/agents", json=AGENT)).status_code == 201
        await pg_admin(f'DROP DATABASE "{database_name(postgres_url)}" WITH (FORCE)')
        response, _ = await timed(client.get("/v1/agents"), TIMEOUT + 10)
        await assert_unavailable(response)
        response, _ = await timed(client.get("/v1/agents"), TIMEOUT + 10)  # on a new connection
        await assert_unavailable(response, says="the database does not exist")
        await assert_degraded(client, says="does not exist")


async def test_postgres_read_only(proxied_settings, postgres_url):
    """What a failover to a standby, or a hosted PostgreSQL with a nearly full disk
    (default_transaction_read_only), looks like: reads work, every write is refused."""
    name = database_name(postgres_url)
    async with serving(proxied_settings) as client:
        assert (await client.post("/v1/agents", json=AGENT)).status_code == 201
        await pg_admin(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
        await terminate_backends(name)  # new connections take the setting
        await client.get("/v1/agents")  # the pool notices its connections are gone
        response, _ = await timed(client.post("/v1/agents", json=AGENT), TIMEOUT + 10)
        await assert_unavailable(response, says="read-only")
        assert (await (await client.get("/v1/agents")).get_json())["total"] == 1
        await assert_degraded(client, says="read-only")  # SELECT 1 alone said "ok" here
        await pg_admin(f'ALTER DATABASE "{name}" RESET default_transaction_read_only')
        await terminate_backends(name)
        await eventually_healthy(client)
        assert (await client.post("/v1/agents", json=AGENT)).status_code == 201
