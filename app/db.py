"""Database set-up: Tortoise config, migrations, and connection life cycle."""

from __future__ import annotations

import logging
from typing import Any

from tortoise import Tortoise
from tortoise.backends.base.config_generator import expand_db_url
from tortoise.backends.base.executor import EXECUTOR_CACHE
from tortoise.migrations.api import migrate

from app.config import Settings

log = logging.getLogger("app.db")

APP_LABEL = "models"


def tortoise_config(database_url: str) -> dict[str, Any]:
    return {
        "connections": {"default": connection_config(database_url)},
        "apps": {
            APP_LABEL: {
                "models": ["app.models"],
                "default_connection": "default",
                "migrations": "migrations",
            }
        },
        "use_tz": True,
        "timezone": "UTC",
    }


def connection_config(url: str) -> str | dict[str, Any]:
    """Tortoise's config for the URL, on our backends: app/db_sqlite.py for SQLite,
    app/db_postgres.py for PostgreSQL through asyncpg."""
    if url.startswith("sqlite://"):
        config = expand_db_url(with_sqlite_pragmas(url))
        config["engine"] = "app.db_sqlite"
        return config
    config = expand_db_url(url)
    if config["engine"] == "tortoise.backends.asyncpg":
        config["engine"] = "app.db_postgres"
    return config


def with_sqlite_pragmas(url: str) -> str:
    """SQLite runs in WAL mode (Tortoise's default); with synchronous=NORMAL a commit no
    longer waits for fsync, which makes each event write ~3x faster. A crash of the
    process loses nothing; a power failure may lose the last moments of writes."""
    if not url.startswith("sqlite://") or ":memory:" in url or "synchronous=" in url:
        return url
    return url + ("&" if "?" in url else "?") + "synchronous=NORMAL"


def _prepare(settings: Settings) -> str:
    url = settings.effective_database_url
    if url.startswith("sqlite://") and settings.database_url == "":
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    return url


async def apply_migrations(settings: Settings) -> None:
    """Bring the schema up to date with the files in migrations/ (idempotent)."""
    await migrate(config=tortoise_config(_prepare(settings)))
    await Tortoise.close_connections()


async def open_db(settings: Settings) -> None:
    # Tortoise caches each model's INSERT statement by connection name, not by database
    # kind: a process that opens SQLite and later PostgreSQL (tests of both runner modes)
    # would send SQLite's "?" placeholders to PostgreSQL. Start each opening afresh.
    EXECUTOR_CACHE.clear()
    # Hypercorn runs lifespan start-up in a different task than the requests, so the
    # Tortoise context must fall back to the global one or requests see no connection.
    await Tortoise.init(config=tortoise_config(_prepare(settings)), _enable_global_fallback=True)


async def close_db() -> None:
    await Tortoise.close_connections()


# For the `tortoise` CLI (`make makemigrations`), configured in pyproject.toml.
TORTOISE_ORM = tortoise_config(Settings.from_env().effective_database_url)
