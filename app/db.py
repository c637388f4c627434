"""Database set-up: Tortoise config, migrations, and connection life cycle."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from tortoise import Tortoise
from tortoise.backends.base.config_generator import expand_db_url
from tortoise.backends.base.executor import EXECUTOR_CACHE
from tortoise.exceptions import BaseORMException, OperationalError
from tortoise.migrations.api import migrate
from tortoise.migrations.executor import MigrationExecutor

from app.config import ConfigError, Settings
from app.resources import require_database_driver
from app.secrets import make_data_dir

try:
    import asyncpg
except ImportError:  # no `postgres` extra: SQLite only (require_database_driver says so)
    asyncpg = None

log = logging.getLogger("app.db")

APP_LABEL = "models"
# The repository's migrations/ folder, packaged as app.migrations (setup.py). An editable
# install maps the name onto the repository's folder, so `make makemigrations` writes there.
MIGRATIONS = "app.migrations"


class DatabaseUnavailable(OperationalError):
    """The database cannot serve this call now: it is down, unreachable, too slow
    (DATABASE_TIMEOUT_SECONDS), read-only or full. Not the request's fault and not a bug,
    so the API answers 503 database_unavailable (app/errors.py), /healthz reports it, and
    a turn records its failure once the database is back (app/runtime/turn.py).

    `reason` is a short fixed phrase, safe to show to anyone (no host names, paths or SQL);
    the driver's own error is the __cause__, for the log."""

    def __init__(self, reason: str):
        super().__init__(f"database unavailable: {reason}; try again later")
        self.reason = reason


# SQLite primary result codes (https://sqlite.org/rescode.html) that mean the file cannot
# be used now, with what to tell people. Others (constraint, misuse, corruption) keep
# their own handling: a constraint is a 409, the rest are bugs or need an operator.
_SQLITE_REASONS = {
    5: "locked by another connection",  # SQLITE_BUSY, once the wait is over
    6: "locked by another connection",  # SQLITE_LOCKED
    8: "read-only, so nothing can be saved",  # SQLITE_READONLY: opened or made read-only
    10: "disk I/O error (a read-only or failing disk)",  # SQLITE_IOERR: EROFS, EIO, EPERM on write
    13: "disk full, so nothing can be saved",  # SQLITE_FULL
    14: "cannot open the database file",  # SQLITE_CANTOPEN: e.g. a read-only directory for the WAL
}


def unavailable(exc: BaseException, timeout: float | None = None) -> DatabaseUnavailable | None:
    """The DatabaseUnavailable a driver error means, or None for an error that is not
    about the database being usable (the caller re-raises it as it is). `timeout`: the
    limit the call had, named when it ran out."""
    if isinstance(exc, DatabaseUnavailable):
        return exc
    if isinstance(exc, TimeoutError):
        return DatabaseUnavailable(f"no answer within {timeout:g} s" if timeout else "no answer")
    if isinstance(exc, sqlite3.Error):
        reason = _SQLITE_REASONS.get((getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF)
        return DatabaseUnavailable(reason) if reason else None
    if asyncpg is not None and (reason := _postgres_reason(exc)):
        return DatabaseUnavailable(reason)
    if isinstance(exc, BaseORMException):
        # Tortoise wraps some driver errors in its own (DBConnectionError for a database
        # that does not exist, OperationalError for a sqlite3 error): judge the driver's.
        inner = exc.__cause__ or exc.__context__
        return unavailable(inner, timeout) if inner is not None else None
    if isinstance(exc, OSError):  # the server's address refused or reset the connection
        return DatabaseUnavailable("connection refused or lost")
    return None


def _postgres_reason(exc: BaseException) -> str | None:
    """unavailable()'s reason for an asyncpg error (the `postgres` extra is installed)."""
    if isinstance(exc, asyncpg.ReadOnlySQLTransactionError):  # default_transaction_read_only, or a standby
        return "read-only, so nothing can be saved"
    if isinstance(exc, asyncpg.DiskFullError):
        return "disk full, so nothing can be saved"
    if isinstance(exc, (asyncpg.InvalidCatalogNameError, asyncpg.exceptions.DatabaseDroppedError)):
        return "the database does not exist"
    if isinstance(exc, (asyncpg.PostgresConnectionError, asyncpg.InsufficientResourcesError,
                        asyncpg.exceptions.OperatorInterventionError, asyncpg.exceptions.PostgresSystemError,
                        asyncpg.InvalidAuthorizationSpecificationError)):
        # Connection lost or refused, server shutting down or starting up, a backend
        # terminated, out of connections, I/O trouble, statement_timeout, login refused.
        return "connection refused or lost"
    if isinstance(exc, asyncpg.InterfaceError) and "closed" in str(exc):
        return "connection refused or lost"  # not a misuse: the connection died
    return None


def tortoise_config(database_url: str, timeout: float | None = None) -> dict[str, Any]:
    """`timeout`: DATABASE_TIMEOUT_SECONDS for the server's connections; None (migrations,
    the CLI) for no limit, as a migration may rightly run long."""
    return {
        "connections": {"default": connection_config(database_url, timeout)},
        "apps": {
            APP_LABEL: {
                "models": ["app.models"],
                "default_connection": "default",
                "migrations": MIGRATIONS,
            }
        },
        "use_tz": True,
        "timezone": "UTC",
    }


def connection_config(url: str, timeout: float | None = None) -> str | dict[str, Any]:
    """Tortoise's config for the URL, on our backends: app/db_sqlite.py for SQLite,
    app/db_postgres.py for PostgreSQL through asyncpg. Both take `database_timeout`.
    A PostgreSQL URL without its driver installed is a ConfigError saying how to get it."""
    require_database_driver(url)
    if url.startswith("sqlite://"):
        config = expand_db_url(with_sqlite_pragmas(url))
        config["engine"] = "app.db_sqlite"
        config["credentials"]["database_timeout"] = timeout
        return config
    config = expand_db_url(url)
    if config["engine"] == "tortoise.backends.asyncpg":
        config["engine"] = "app.db_postgres"
        config["credentials"]["database_timeout"] = timeout
    return config


# SQLite's WAL is truncated back to this size after each checkpoint. Tortoise sets 16 KB,
# so the file shrank after every checkpoint (every ~4 MB written) and each commit then
# grew it again: about a quarter of an event insert's time (issue 13). 64 MB lets the
# WAL be reused at its working size, while one that a long reader made large still
# shrinks back.
JOURNAL_SIZE_LIMIT = 64 * 1024 * 1024


def with_sqlite_pragmas(url: str) -> str:
    """SQLite runs in WAL mode (Tortoise's default); with synchronous=NORMAL a commit no
    longer waits for fsync, which makes each event write ~3x faster. A crash of the
    process loses nothing; a power failure may lose the last moments of writes. The
    WAL keeps its working size (JOURNAL_SIZE_LIMIT). A setting in the URL wins."""
    if not url.startswith("sqlite://") or ":memory:" in url:
        return url
    pragmas = [f"{name}={value}" for name, value in (("synchronous", "NORMAL"), ("journal_size_limit", JOURNAL_SIZE_LIMIT))
               if f"{name}=" not in url]
    if not pragmas:
        return url
    return url + ("&" if "?" in url else "?") + "&".join(pragmas)


def _prepare(settings: Settings) -> str:
    url = settings.effective_database_url
    if url.startswith("sqlite://") and settings.database_url == "":
        make_data_dir(settings.data_dir)
    return url


async def check_ready(settings: Settings) -> None:
    """Before a server starts serving: the database opens, and its schema is this
    version's: migrated here (AUTO_MIGRATE) or else already. What the operator must fix
    (a bad DATABASE_URL, a database that is down, migrations not applied) is a ConfigError,
    one line, rather than a traceback out of the server's start-up, or a server that
    starts and then fails every request that touches a new column."""
    url = settings.effective_database_url
    try:
        if settings.auto_migrate:
            await apply_migrations(settings)
            return
        await Tortoise.init(config=tortoise_config(_prepare(settings)))
        try:
            connection = Tortoise.get_connection("default")
            await connection.execute_query("SELECT 1")  # the plan below takes a database it cannot read for an empty one
            executor = MigrationExecutor(connection, tortoise_config(url)["apps"])
            pending = [step.migration.name for step in await executor.plan(None) if not step.backward]
        finally:
            await Tortoise.close_connections()
    except ConfigError:
        raise
    except CANNOT_OPEN as exc:
        raise ConfigError(f"cannot use the database at {_where(url)}: {_first_line(exc)}") from None
    if pending:
        names = ", ".join(pending[:3]) + (", …" if len(pending) > 3 else "")
        raise ConfigError(f"the database at {_where(url)} lacks {len(pending)} migration(s) of this version "
                          f"({names}), and AUTO_MIGRATE=false: run `python -m app migrate` first")


# What opening or migrating a database raises when it cannot be used as configured.
CANNOT_OPEN: tuple[type[BaseException], ...] = (OSError, sqlite3.Error, BaseORMException) + \
    ((asyncpg.PostgresError,) if asyncpg else ())


def _where(url: str) -> str:
    """The database URL without its credentials."""
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.rpartition('@')[2]}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


async def apply_migrations(settings: Settings) -> None:
    """Bring the schema up to date with the files in migrations/ (idempotent)."""
    url = _prepare(settings)
    async with _one_migrator_at_a_time(url):
        await migrate(config=tortoise_config(url))
        await Tortoise.close_connections()


# pg_advisory_lock's key for migrations: any constant no other lock of ours uses.
MIGRATION_LOCK_KEY = 7_243_105_001


@asynccontextmanager
async def _one_migrator_at_a_time(url: str) -> AsyncIterator[None]:
    """On PostgreSQL, hold an advisory lock while migrating: API processes started together
    (the replicas of a deployment, `make run-cluster`) would otherwise apply the same
    migration at once, and all but one fail at start-up ("relation ... already exists").
    The others wait, then find nothing left to do. The lock lives on a connection of its
    own and ends with it, even if this process dies."""
    if url.startswith("sqlite://") or asyncpg is None:
        yield
        return
    credentials = expand_db_url(url)["credentials"]
    connection = await asyncpg.connect(
        host=credentials.get("host"), port=credentials.get("port"), user=credentials.get("user"),
        password=credentials.get("password"), database=credentials.get("database"), ssl=credentials.get("ssl"))
    try:
        await connection.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_KEY)
        yield
    finally:
        await connection.close()


async def open_db(settings: Settings) -> None:
    # Tortoise caches each model's INSERT statement by connection name, not by database
    # kind: a process that opens SQLite and later PostgreSQL (tests of both runner modes)
    # would send SQLite's "?" placeholders to PostgreSQL. Start each opening afresh.
    EXECUTOR_CACHE.clear()
    # Hypercorn runs lifespan start-up in a different task than the requests, so the
    # Tortoise context must fall back to the global one or requests see no connection.
    config = tortoise_config(_prepare(settings), settings.database_timeout_seconds)
    await Tortoise.init(config=config, _enable_global_fallback=True)


async def close_db() -> None:
    await Tortoise.close_connections()


def cli_config() -> dict[str, Any]:
    """For the `tortoise` CLI (`make makemigrations`, run at the top of the repository),
    configured in pyproject.toml as app.db.TORTOISE_ORM. It names the migrations by their
    folder, `migrations`, which the CLI imports from the current folder: given the dotted
    name app.migrations, Tortoise 1.1's CLI would create an empty app/migrations/ package
    beside the code and write there."""
    config = tortoise_config(Settings.from_env().effective_database_url)
    config["apps"][APP_LABEL]["migrations"] = "migrations"
    return config


def __getattr__(name: str) -> Any:
    # TORTOISE_ORM is built when the CLI asks for it, not at import: importing the app
    # reads no environment (create_app(settings) may be given settings of its own).
    if name == "TORTOISE_ORM":
        return cli_config()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
