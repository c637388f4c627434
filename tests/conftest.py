"""Shared fixtures: an app on a fresh migrated SQLite file per test, a real server process,
and a throw-away PostgreSQL database when one is reachable."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import uuid
from functools import partial
from pathlib import Path

import pytest
from quart import Quart
from quart.testing.app import TestApp

from app.config import Settings
from app.db import apply_migrations
from app.main import create_app
from tests.fakes import FakeLLM
from tests.helpers import FAKE_KEY
from tests.live_server import LiveServer, accepts_tcp

ROOT = Path(__file__).resolve().parents[1]

# Quart's test app gives start-up and shutdown 6 s. A test that starts the app on a fresh
# database migrates it first, and on a loaded 2-core CI machine that once took longer
# (test_key_files, in a full run beside a Temporal cluster): a timeout of the machine, not
# a failure of the app. Tests that measure start-up time do so themselves.
Quart.test_app_class = partial(TestApp, startup_timeout=60, shutdown_timeout=60)  # type: ignore[assignment]
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
        llm_timeout_seconds=10,
    )


@pytest.fixture
def runner_mode(request) -> str:
    """inprocess, or both modes in modules marked `both_modes` (see pytest_generate_tests)."""
    return getattr(request, "param", "inprocess")


def pytest_generate_tests(metafunc):
    """Modules marked `pytestmark = pytest.mark.both_modes` run every test that uses the
    app in both runner modes: in process, and on Temporal (PostgreSQL, Redis, a worker)."""
    if metafunc.definition.get_closest_marker("both_modes") and "runner_mode" in metafunc.fixturenames:
        metafunc.parametrize("runner_mode", ["inprocess", "temporal"], indirect=True)


@pytest.fixture
async def app(request, settings, runner_mode):
    if runner_mode == "temporal":
        async with temporal_app_serving(request.getfixturevalue("temporal_settings")) as app:
            yield app
        return
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

def _run_async(coroutine):
    """asyncio.run, also from a fixture that an async fixture asked for (its loop runs)."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def _pg_admin(sql: str) -> None:
    """Run one statement (CREATE/DROP DATABASE) on the admin database; skip the test when
    PostgreSQL is not there. Works from fixtures that async fixtures ask for as well."""
    if not accepts_tcp("127.0.0.1", 5432):
        pytest.skip("PostgreSQL is not listening on 127.0.0.1:5432 (set TEST_POSTGRES_URL)")
    import asyncpg

    async def run() -> None:
        conn = await asyncpg.connect(PG_ADMIN_URL.replace("postgres://", "postgresql://", 1))
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    _run_async(run())


def _pg_url(name: str) -> str:
    return PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"


@pytest.fixture
def postgres_url():
    """A new, empty PostgreSQL database for one test, dropped afterwards."""
    name = f"rt_test_{uuid.uuid4().hex[:12]}"
    _pg_admin(f'CREATE DATABASE "{name}"')
    yield _pg_url(name)
    _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg_settings(settings, postgres_url) -> Settings:
    return settings.replace(database_url=postgres_url, auto_migrate=True)


# --- Temporal and Redis (RUNNER_MODE=temporal) --------------------------------------

@pytest.fixture(scope="session")
def temporal_server(tmp_path_factory):
    """One Temporal dev server (tests/temporal_server.py) for the whole test run, on free
    loopback ports with its own SQLite file; `.address` is "127.0.0.1:PORT"."""
    from tests.temporal_server import TemporalDevServer, TemporalNotFound, temporal_binary

    try:
        binary = temporal_binary()
    except TemporalNotFound as error:
        pytest.skip(f"no Temporal dev server: {error}")
    server = TemporalDevServer(tmp_path_factory.mktemp("temporal"), binary=binary).start()
    yield server
    server.stop()


@pytest.fixture
def redis_url():
    """redis://127.0.0.1:6379/<n> (or TEST_REDIS_URL) when something listens there: database
    1 + the xdist worker's number, so the two test workers' servers stay apart, as
    deployments sharing a Redis do (the live-event channel is named after the database;
    a /ws client of one test would otherwise see another's sessions)."""
    from urllib.parse import urlsplit

    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    url = os.environ.get("TEST_REDIS_URL", f"redis://127.0.0.1:6379/{1 + int(worker) if worker.isdigit() else 1}")
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 6379
    if not accepts_tcp(host, port):
        pytest.skip(f"Redis is not listening on {host}:{port} (set TEST_REDIS_URL)")
    yield url


@pytest.fixture
def task_queue() -> str:
    """A Temporal task queue no other test uses."""
    return f"test-{uuid.uuid4().hex[:16]}"


# --- an app in RUNNER_MODE=temporal ------------------------------------------------

@pytest.fixture(scope="session")
def pg_template(tmp_path_factory):
    """One migrated PostgreSQL database per test run; each temporal-mode test gets a copy
    (CREATE DATABASE ... TEMPLATE is much faster than migrating)."""
    name = f"rt_tmpl_{uuid.uuid4().hex[:12]}"
    _pg_admin(f'CREATE DATABASE "{name}"')
    _run_async(apply_migrations(Settings(data_dir=tmp_path_factory.mktemp("pgtmpl"), database_url=_pg_url(name))))
    yield name
    _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg_copy(pg_template):
    name = f"rt_test_{uuid.uuid4().hex[:12]}"
    _pg_admin(f'CREATE DATABASE "{name}" TEMPLATE "{pg_template}"')
    yield _pg_url(name)
    _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def temporal_settings(settings, pg_copy, redis_url, temporal_server, task_queue) -> Settings:
    return settings.replace(runner_mode="temporal", database_url=pg_copy, redis_url=redis_url,
                            temporal_address=temporal_server.address, temporal_task_queue=task_queue)


@contextlib.asynccontextmanager
async def temporal_app_serving(temporal_settings, worker_address: str | None = None):
    """The app in temporal mode with a Temporal worker in this process (the same code
    `python -m app worker` runs), sharing the app's database, bus and provider clients.
    `worker_address`: the worker's Temporal, when not the app's (one of them behind a
    tests/tcp_proxy.py, to cut it alone)."""
    from temporalio.client import Client

    from app.runtime.temporal.worker import build_worker
    from app.runtime.toolbox import Toolbox
    from app.runtime.turn import TurnDeps
    from app.services.agents import get_active_agent

    app = create_app(temporal_settings)
    async with app.test_app():
        runtime = app.extensions["runtime"]
        deps = TurnDeps(temporal_settings, runtime.events, runtime.clients, runtime.metrics, runtime.models,
                        Toolbox(runtime.mcp))  # the app's MCP sessions serve the test's worker too
        client = await Client.connect(worker_address or temporal_settings.temporal_address)  # a worker's may not be lazy
        async with build_worker(client, temporal_settings, deps, get_active_agent):
            yield app


@pytest.fixture
async def temporal_app(temporal_settings):
    async with temporal_app_serving(temporal_settings) as app:
        yield app


@pytest.fixture
def short_retries(monkeypatch):
    """INFRA_RETRIES cut to 3 attempts, and Temporal's retry intervals to 50 ms (the dev
    server's timers fire about once a second): an outage outlasts INFRA_RETRIES in a few
    seconds. END_RETRIES keeps its attempts (no limit). The workflows' package is
    passed through the sandbox (which otherwise imports the workflows module afresh for
    every workflow run), so the worker's workflows see the patched policies."""
    from dataclasses import replace
    from datetime import timedelta

    from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

    from app.runtime.temporal import pipelines, worker, workflows

    assert workflows.INFRA_RETRIES.maximum_attempts == 10 and workflows.END_RETRIES.maximum_attempts == 0
    production = worker.workflow_runner
    monkeypatch.setattr(worker, "workflow_runner", lambda: SandboxedWorkflowRunner(
        restrictions=production().restrictions.with_passthrough_modules("app.runtime.temporal")))
    fast = {"initial_interval": timedelta(milliseconds=50), "maximum_interval": timedelta(milliseconds=50)}
    monkeypatch.setattr(workflows, "INFRA_RETRIES", replace(workflows.INFRA_RETRIES, maximum_attempts=3, **fast))
    monkeypatch.setattr(workflows, "END_RETRIES", replace(workflows.END_RETRIES, **fast))
    for name in ("INFRA_RETRIES", "END_RETRIES"):  # pipeline runs use the same policies
        monkeypatch.setattr(pipelines, name, getattr(workflows, name))
