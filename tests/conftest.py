"""Shared fixtures: an app on a fresh migrated SQLite file per test, a real server process,
and a throw-away PostgreSQL database when one is reachable."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import uuid
from dataclasses import replace
from pathlib import Path

import pytest

from app.config import Settings
from app.db import apply_migrations
from app.main import create_app
from tests.live_server import LiveServer
from tests.fakes import FakeLLM
from tests.helpers import FAKE_KEY

ROOT = Path(__file__).resolve().parents[1]
PG_ADMIN_URL = os.environ.get("TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test")


@pytest.fixture(scope="session")
def migrated_template(tmp_path_factory) -> Path:
    """Migrate one SQLite file per test run; each test gets a copy (fast and isolated)."""
    folder = tmp_path_factory.mktemp("template")
    settings = Settings(data_dir=folder, database_url=f"sqlite://{folder}/db.sqlite3")
    asyncio.run(apply_migrations(settings))
    return folder / "db.sqlite3"


@pytest.fixture
def settings(tmp_path, migrated_template) -> Settings:
    shutil.copy(migrated_template, tmp_path / "db.sqlite3")
    return Settings(
        data_dir=tmp_path,
        database_url=f"sqlite://{tmp_path}/db.sqlite3",
        log_level="WARNING",
        auto_migrate=False,
        llm_retry_backoff_seconds=0.01,
        llm_timeout_seconds=10,
    )


@pytest.fixture
async def app(settings):
    app = create_app(settings)
    async with app.test_app():  # runs the before/after serving hooks
        yield app


@pytest.fixture
def client(app):
    return app.test_client()


# --- the fake LLM provider ----------------------------------------------------------

@pytest.fixture(scope="session")
def fake_llm_server():
    with FakeLLM(api_key=FAKE_KEY) as fake:
        yield fake


@pytest.fixture
def fake_llm(fake_llm_server) -> FakeLLM:
    fake_llm_server.reset()
    return fake_llm_server


# --- a real server process -------------------------------------------------------

@pytest.fixture
def live_server_factory(tmp_path):
    servers: list[LiveServer] = []

    def start(env: dict[str, str] | None = None, data_dir: Path | None = None) -> LiveServer:
        server = LiveServer(env or {}, data_dir or tmp_path).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def live_server(live_server_factory) -> LiveServer:
    return live_server_factory()


# --- PostgreSQL ------------------------------------------------------------------

def _postgres_reachable() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.fixture
def postgres_url():
    """A new, empty PostgreSQL database for one test, dropped afterwards."""
    if not _postgres_reachable():
        pytest.skip("PostgreSQL is not listening on 127.0.0.1:5432 (set TEST_POSTGRES_URL)")
    import asyncpg

    name = f"rt_test_{uuid.uuid4().hex[:12]}"
    admin = PG_ADMIN_URL.replace("postgres://", "postgresql://", 1)

    async def run(sql: str) -> None:
        conn = await asyncpg.connect(admin)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run(f'CREATE DATABASE "{name}"'))
    yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    asyncio.run(run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def pg_settings(settings, postgres_url) -> Settings:
    return replace(settings, database_url=postgres_url, auto_migrate=True)
