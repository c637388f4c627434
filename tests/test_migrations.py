"""Migrating an empty database gives exactly the schema the models describe."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from tortoise import Tortoise
from tortoise.migrations.autodetector import MigrationAutodetector

from app.config import Settings
from app.db import APP_LABEL, apply_migrations, tortoise_config
from tests.live_server import NOT_INHERITED, ROOT


async def _pending_changes(url: str) -> list:
    config = tortoise_config(url)
    await Tortoise.init(config=config)
    try:
        detector = MigrationAutodetector(Tortoise.apps, config["apps"])
        return await detector.changes()
    finally:
        await Tortoise.close_connections()


def _sqlite_schema(path) -> dict[str, set[tuple]]:
    with sqlite3.connect(path) as db:
        tables = [r[0] for r in db.execute("select name from sqlite_master where type='table'")]
        return {
            t: {(c[1], c[2].upper(), c[3], c[5]) for c in db.execute(f"pragma table_info('{t}')")}
            for t in tables if not t.startswith(("sqlite_", "tortoise_migrations"))
        }


def _sqlite_indexes(path) -> set[tuple]:
    """(table, columns, unique) of every index, whatever its name."""
    with sqlite3.connect(path) as db:
        tables = [r[0] for r in db.execute("select name from sqlite_master where type='table'")]
        return {
            (t, tuple(c[2] for c in db.execute(f"pragma index_info('{i[1]}')")), i[2])
            for t in tables if not t.startswith(("sqlite_", "tortoise_migrations"))
            for i in db.execute(f"pragma index_list('{t}')")
        }


async def test_migration_files_match_the_models(tmp_path):
    assert await _pending_changes(f"sqlite://{tmp_path}/x.sqlite3") == []


async def test_migrated_sqlite_equals_generated_schema(tmp_path):
    migrated = tmp_path / "migrated.sqlite3"
    await apply_migrations(Settings(data_dir=tmp_path, database_url=f"sqlite://{migrated}"))

    generated = tmp_path / "generated.sqlite3"
    await Tortoise.init(config=tortoise_config(f"sqlite://{generated}"))
    await Tortoise.generate_schemas()
    await Tortoise.close_connections()

    assert _sqlite_schema(migrated) == _sqlite_schema(generated)
    # Indexes too: a table rebuilt by a migration on SQLite had lost its db_index ones.
    assert _sqlite_indexes(migrated) == _sqlite_indexes(generated)
    assert ("sessions", ("created_at",), 0) in _sqlite_indexes(migrated)
    assert {"agents", "sessions", "messages", "events", "llm_providers", "llm_models"} <= set(_sqlite_schema(migrated))


async def test_migrations_are_idempotent_and_recorded(tmp_path):
    settings = Settings(data_dir=tmp_path, database_url=f"sqlite://{tmp_path}/db.sqlite3")
    await apply_migrations(settings)
    await apply_migrations(settings)  # a second run applies nothing and does not fail
    with sqlite3.connect(tmp_path / "db.sqlite3") as db:
        applied = [r[0] for r in db.execute("select name from tortoise_migrations where app = ?", (APP_LABEL,))]
    on_disk = sorted(p.stem for p in (Path(__file__).parents[1] / "migrations").glob("0*.py"))
    assert applied == on_disk and on_disk[0] == "0001_initial"


async def test_migrations_on_postgres(postgres_url, tmp_path):
    await apply_migrations(Settings(data_dir=tmp_path, database_url=postgres_url))
    assert await _pending_changes(postgres_url) == []


async def test_upgrade_keeps_rows_written_by_an_older_schema(tmp_path):
    """A database made at 0001, with data in it, migrates to the latest schema."""
    db = tmp_path / "old.sqlite3"
    settings = Settings(data_dir=tmp_path, database_url=f"sqlite://{db}")
    await Tortoise.init(config=tortoise_config(settings.database_url))
    from tortoise.migrations.api import migrate

    await Tortoise.close_connections()
    await migrate(config=tortoise_config(settings.database_url), target="models.0001_initial")
    await Tortoise.close_connections()
    with sqlite3.connect(db) as conn:
        conn.execute("insert into agents (id, name, system_prompt, tags, capability_ids, status, created_at, updated_at)"
                     " values ('6f0c4a56-0b5e-4c53-9d55-2f7f3c3a5b10', 'old', 'p', '[]', '[]', 'active', '2025-01-01', '2025-01-01')")
        conn.execute("insert into sessions (id, agent_id, tags, status, usage, message_seq, event_seq, created_at, updated_at)"
                     " values ('s-old', '6f0c4a56-0b5e-4c53-9d55-2f7f3c3a5b10', '[]', 'pending', '{}', 0, 0, '2025-01-01', '2025-01-01')")
    await apply_migrations(settings)
    with sqlite3.connect(db) as conn:
        assert conn.execute("select kind, owner_id from sessions where id = 's-old'").fetchone() == ("agent", None)


async def test_turns_are_counted_for_sessions_stored_before_0015(tmp_path):
    """0015 counts the user messages already stored, and from then on the database counts
    every one, whoever writes it (here another connection with plain SQL)."""
    db = tmp_path / "old.sqlite3"
    settings = Settings(data_dir=tmp_path, database_url=f"sqlite://{db}")
    from tortoise.migrations.api import migrate

    await migrate(config=tortoise_config(settings.database_url), target="models.0014_message_reply_to")
    await Tortoise.close_connections()
    message = ("insert into messages (id, session_id, sequence, role, content, created_at) "
               "values (?, ?, ?, ?, '{}', '2025-01-01')")
    with sqlite3.connect(db) as conn:
        for sid in ("two", "none"):
            conn.execute("insert into sessions (id, tags, status, usage, created_at, updated_at, kind) "
                         f"values ('{sid}', '[]', 'idle', '{{}}', '2025-01-01', '2025-01-01', 'agent')")
        for n, role in enumerate(("user", "assistant", "user", "tool"), start=1):
            conn.execute(message, (f"m{n}", "two", n, role))
        conn.execute(message, ("m5", "none", 1, "assistant"))
    await apply_migrations(settings)
    with sqlite3.connect(db) as conn:
        assert dict(conn.execute("select id, turns from sessions")) == {"two": 2, "none": 0}
        conn.execute(message, ("m6", "none", 2, "user"))
        conn.execute("delete from messages where id = 'm1'")
        assert dict(conn.execute("select id, turns from sessions")) == {"two": 1, "none": 1}


def test_api_processes_started_together_migrate_one_at_a_time(postgres_url, tmp_path):
    """Replicas started at once on an empty PostgreSQL database: each `python -m app
    migrate` succeeds (one applies the migrations while the others wait for its lock)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(NOT_INHERITED)}
    env |= {"DATABASE_URL": postgres_url, "DATA_DIR": str(tmp_path)}
    processes = [subprocess.Popen([sys.executable, "-m", "app", "migrate"], cwd=ROOT, env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for _ in range(3)]
    outputs = [process.communicate(timeout=120)[0].decode() for process in processes]
    assert [process.returncode for process in processes] == [0, 0, 0], "\n".join(outputs)
