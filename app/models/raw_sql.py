"""The hottest reads and the event insert as plain parameterized SQL, on either database.

Tortoise builds each query anew through its query builder (pypika): for a one-row lookup
that cost more than the database did, about a fifth of a `GET /sessions/{id}`, and
`Event.create` about a fifth of a `POST /sessions/{id}/events`. The statements here are
the ones the ORM would send, written once. Sessions still become model instances through
Tortoise's own `_init_from_db` (what its executor calls), so callers get the same objects
as from a QuerySet; pages of events and messages, which are only sent on, are decoded
straight from the rows. Everything else keeps using the ORM: only the request paths that
docs/performance.md measures belong here.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from datetime import UTC, datetime
from functools import cache
from typing import Any

import orjson
from tortoise import connections
from tortoise.models import Model

from app.models import Agent, Session
from app.models.sequences import SEQUENCE_MAX


@cache
def _dialect_sql(sql: str, dialect: str) -> str:
    """Statements are written with `?` (SQLite); asyncpg numbers its parameters."""
    if dialect != "postgres":
        return sql
    parts = sql.split("?")
    return "".join(f"{part}${n}" for n, part in enumerate(parts[:-1], start=1)) + parts[-1]


async def _rows(sql: str, params: list[Any]) -> list[Any]:
    connection = connections.get("default")
    if connection.capabilities.dialect == "sqlite":
        # Straight to the connection, under Tortoise's lock as its own path takes it: its
        # execute_query copies the statement (a replace() over 1.5 KB of SQL for a session
        # lookup), counts changes and formats a DEBUG line, about a third of a 24 µs lookup.
        # Errors that mean the file cannot be used still become DatabaseUnavailable
        # (app/db_sqlite.py); other driver errors are bugs either way.
        async with connection.acquire_connection() as sqlite:
            return await sqlite.execute_fetchall(sql, params)
    _, rows = await connection.execute_query(_dialect_sql(sql, connection.capabilities.dialect), params)
    return rows


@cache
def _field_names(model: type[Model]) -> tuple[str, ...]:
    return tuple(sorted(model._meta.db_fields))


def _columns(model: type[Model], alias: str) -> str:
    """The model's columns in _field_names' order: rows are read by position."""
    return ", ".join(f'{alias}."{c}"' for c in _field_names(model))


async def _one_session(sql: str, session_id: str, restrict_to_owner: bool, owner: uuid.UUID | None) -> list[Any]:
    """`sql` (selecting from `sessions s`, ending in WHERE s.id = ?) for one session,
    narrowed to `owner`'s row when `restrict_to_owner`; LIMIT 1, so SQLite runs it on the
    loop's thread (app/db_sqlite.py)."""
    condition, params = "", [session_id]
    if restrict_to_owner:
        condition = " AND s.owner_id IS NULL" if owner is None else " AND s.owner_id = ?"
        params += [] if owner is None else [str(owner)]
    return await _rows(_limited(sql, condition), [*params, 1])


@cache
def _limited(sql: str, condition: str) -> str:
    """One string per statement (built once): sqlite3 and asyncpg look their prepared
    statements up by the text."""
    return sql + condition + " LIMIT ?"


# Built on first use: Tortoise adds the foreign keys' `*_id` columns to a model's fields
# only when it initialises, after this module is imported.
@cache
def _session_with_agent_sql(agent_name_only: bool = False) -> str:
    agent = 'a."name"' if agent_name_only else _columns(Agent, "a")
    return (f"SELECT {_columns(Session, 's')}, {agent} "
            "FROM sessions s LEFT JOIN agents a ON a.id = s.agent_id WHERE s.id = ?")


async def session_to_show(session_id: str, restrict_to_owner: bool = False,
                          owner: uuid.UUID | None = None) -> tuple[Session | None, str | None]:
    """What a GET of one session shows: the session and its agent's name (None without an
    agent). Only the name is read of the agent: building a whole Agent took a twentieth
    of a `GET /sessions/{id}` (issue 13)."""
    rows = await _one_session(_session_with_agent_sql(agent_name_only=True), session_id, restrict_to_owner, owner)
    if not rows:
        return None, None
    values = tuple(rows[0])
    session_fields = _field_names(Session)
    session = Session._init_from_db(**dict(zip(session_fields, values[:len(session_fields)], strict=True)))
    return session, values[len(session_fields)]


async def session_with_agent(session_id: str, restrict_to_owner: bool = False,
                             owner: uuid.UUID | None = None) -> Session | None:
    """`Session.filter(id=...).select_related("agent").first()`, narrowed to `owner`'s
    rows when `restrict_to_owner` (app/auth/principal.py decides that)."""
    rows = await _one_session(_session_with_agent_sql(), session_id, restrict_to_owner, owner)
    if not rows:
        return None
    values = tuple(rows[0])  # by position, in _columns' order: no lookups by name (sqlite3.Row's are slow)
    session_fields, agent_fields = _field_names(Session), _field_names(Agent)
    split = len(session_fields)
    session = Session._init_from_db(**dict(zip(session_fields, values[:split], strict=True)))
    agent_values = values[split:split + len(agent_fields)]
    agent = None
    if agent_values[agent_fields.index("id")] is not None:
        agent = Agent._init_from_db(**dict(zip(agent_fields, agent_values, strict=True)))
    object.__setattr__(session, "_agent", agent)  # as select_related leaves it
    return session


async def session_exists(session_id: str, restrict_to_owner: bool = False, owner: uuid.UUID | None = None) -> bool:
    return bool(await _one_session("SELECT 1 FROM sessions s WHERE s.id = ?", session_id, restrict_to_owner, owner))


# Columns in LoggedEvent's order (app/events/log.py reads the rows by position).
EVENTS_AFTER = ("SELECT id, session_id, sequence, type, data, created_at FROM events "
                "WHERE session_id = ? AND sequence > ?")


async def event_rows(session_id: str, after: int, limit: int | None, types: Collection[str] | None = None,
                     exclude: Collection[str] | None = None) -> list[Any]:
    """A session's events after `after`, oldest first, as rows (id, session_id, sequence,
    type, data, created_at): a range scan of the unique (session_id, sequence) index, so a
    page costs the same however long the log is."""
    sql, params = EVENTS_AFTER, [session_id, after]
    filters, extra = _type_filters(types, exclude)
    sql, params = sql + filters + " ORDER BY sequence", params + extra
    if limit is not None:
        sql, params = sql + " LIMIT ?", params + [limit]
    return await _rows(sql, params)


# The size of an event's data in bytes, as text (PostgreSQL stores jsonb, SQLite text).
DATA_BYTES = {"postgres": "OCTET_LENGTH(CAST(data AS TEXT))", "sqlite": "LENGTH(CAST(data AS BLOB))"}


@cache
def _small_rows_sql(dialect: str) -> str:
    return ("SELECT id, session_id, sequence, type, "
            f"CASE WHEN {DATA_BYTES.get(dialect, DATA_BYTES['sqlite'])} <= ? THEN data END, created_at FROM events "
            "WHERE session_id = ? AND sequence > ?")


async def small_event_rows(session_id: str, after: int, limit: int, max_each: int,
                           types: Collection[str] | None = None) -> list[Any] | None:
    """event_rows(), unless one of the events has more than `max_each` bytes of data: None
    then, and no such event's data is read out. So a page is at most `limit * max_each`
    of data, for about a fifth more than event_rows (SQLite, 100 small events: 110 against
    91 µs; event_batch's sizing, exact for any size, 216 µs)."""
    filters, extra = _type_filters(types, None)
    sql = _small_rows_sql(connections.get("default").capabilities.dialect) + filters + " ORDER BY sequence LIMIT ?"
    rows = await _rows(sql, [max_each, session_id, after, *extra, limit])
    return None if any(row[4] is None for row in rows) else rows  # data is NOT NULL: None is a large one


@cache
def _event_batch_sql(dialect: str, type_count: int = 0) -> str:
    """The next `limit` events (of `type_count` types, when it is not 0), sized in the
    database so that only those within the byte budget are read out: the first, and the
    others while the total stays within it. Only sequence numbers and sizes are summed, so
    the database does not hold a page of large events either; then the events up to the
    last that fits are one range of the index."""
    types = f" AND type IN ({', '.join('?' * type_count)})" if type_count else ""
    return (
        "WITH page AS (SELECT sequence, "
        f"{DATA_BYTES.get(dialect, DATA_BYTES['sqlite'])} AS size FROM events "
        f"WHERE session_id = ? AND sequence > ?{types} ORDER BY sequence LIMIT ?), "
        "sized AS (SELECT sequence, ROW_NUMBER() OVER w AS n, SUM(size) OVER w AS running FROM page "
        "WINDOW w AS (ORDER BY sequence ROWS UNBOUNDED PRECEDING)) "
        "SELECT id, session_id, sequence, type, data, created_at, (SELECT COUNT(*) FROM page) FROM events "
        f"WHERE session_id = ? AND sequence > ?{types} "
        "AND sequence <= (SELECT MAX(sequence) FROM sized WHERE n = 1 OR running <= ?) ORDER BY sequence")


async def event_batch(session_id: str, after: int, limit: int, max_bytes: int,
                      types: Collection[str] | None = None) -> tuple[list[Any], bool]:
    """A session's events after `after` (only those of `types`, if given) as event_rows
    gives them, at most `limit` and no more than `max_bytes` of data (always one, however
    large), and whether the log may hold more after them (it does when the budget cut the
    batch short)."""
    kinds = list(types or ())
    sql = _event_batch_sql(connections.get("default").capabilities.dialect, len(kinds))
    rows = await _rows(sql, [session_id, after, *kinds, limit, session_id, after, *kinds, max_bytes])
    fetched = rows[0][6] if rows else 0
    return [tuple(row)[:6] for row in rows], fetched == limit or len(rows) < fetched


async def event_total(session_id: str, types: Collection[str] | None = None,
                      exclude: Collection[str] | None = None) -> int:
    """How many events the session has (of these types). Unfiltered, that is its last
    sequence number, since numbers run 1, 2, 3 ... without gaps: read from the index's
    end, where a COUNT would read all of a long log."""
    if not types and not exclude:
        rows = await _rows("SELECT MAX(sequence) AS n FROM events WHERE session_id = ?", [session_id])
    else:
        filters, extra = _type_filters(types, exclude)
        rows = await _rows("SELECT COUNT(*) AS n FROM events WHERE session_id = ?" + filters, [session_id, *extra])
    return rows[0][0] or 0


def _type_filters(types: Collection[str] | None, exclude: Collection[str] | None) -> tuple[str, list[Any]]:
    params: list[Any]
    sql, params = "", []
    if types:
        sql, params = sql + f" AND type IN ({', '.join('?' * len(types))})", params + list(types)
    if exclude:
        sql, params = sql + f" AND type NOT IN ({', '.join('?' * len(exclude))})", params + list(exclude)
    return sql, params


# A session's messages are numbered 1, 2, 3 ... without gaps (app/models/sequences.py)
# and never deleted one by one: the page at `offset` is the messages after sequence
# `offset`, a range of the (session_id, sequence) index, as cheap at any depth, where
# OFFSET read and skipped every message before it. Their count is the last number.
MESSAGES_PAGE = ("SELECT id, session_id, sequence, role, content, created_at FROM messages "
                 "WHERE session_id = ? AND sequence > ? ORDER BY sequence LIMIT ?")


async def message_dicts(session_id: str, offset: int, limit: int) -> list[dict[str, Any]]:
    """A page of a session's messages as JSON-ready dicts (the API's MessageOut fields),
    decoded straight from the rows: no Message instances for a list that is only sent."""
    after = min(offset, SEQUENCE_MAX)  # past it no message is: PostgreSQL refuses to compare a 32-bit column with more
    return [{"id": message_id, "session_id": sid, "sequence": sequence, "role": role, "content": decode_json(content),
             "created_at": decode_timestamp(created_at)}
            for message_id, sid, sequence, role, content, created_at in await _rows(MESSAGES_PAGE, [session_id, after, limit])]


def decode_json(value: Any) -> Any:
    """A JSON column's value: text on SQLite (and from asyncpg without a codec)."""
    return orjson.loads(value) if isinstance(value, (str, bytes)) else value


def decode_timestamp(value: Any) -> datetime:
    """A timestamp column's value: text on SQLite, a datetime from asyncpg; UTC when stored
    without an offset, as Tortoise reads it."""
    if not isinstance(value, datetime):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


EVENT_INSERT = "INSERT INTO events (session_id, sequence, type, data, created_at) VALUES (?, ?, ?, ?, ?)"


async def insert_event(session_id: str, sequence: int, type: str, data_json: str, created_at: datetime) -> int:
    """Store one event with the number the caller chose (SQLite's path: on PostgreSQL
    app/models/sequences.py numbers and inserts in one statement); returns its id. A
    taken number or a missing session raises IntegrityError, as Event.create does."""
    connection = connections.get("default")
    return await connection.execute_insert(EVENT_INSERT, [session_id, sequence, type, data_json, created_at])


MESSAGE_INSERT = ("INSERT INTO messages (id, session_id, sequence, role, content, created_at, reply_to) "
                  "VALUES (?, ?, ?, ?, ?, ?, ?)")


async def insert_message(message_id: uuid.UUID, session_id: str, sequence: int, role: str, content_json: str,
                         created_at: datetime, reply_to: uuid.UUID | None) -> None:
    """Store one message with the number the caller chose (SQLite's path, as insert_event;
    Message.create cost about as much in Tortoise as in SQLite). IntegrityError as
    Message.create raises it."""
    await connections.get("default").execute_insert(MESSAGE_INSERT, [
        str(message_id), session_id, sequence, role, content_json, created_at, None if reply_to is None else str(reply_to)])


async def message_count(session_id: str) -> int:
    """A session's messages: the last number (see MESSAGES_PAGE), read from the index's
    end (LIMIT 1: SQLite runs it on the loop's thread) rather than counted, which read
    every message of a long conversation on each page."""
    return (await _rows("SELECT MAX(sequence) FROM messages WHERE session_id = ? LIMIT ?", [session_id, 1]))[0][0] or 0


async def turn_count(session_id: str) -> int:
    """A session's user messages, as its row counts them (migrations/0015_session_turns.py)."""
    rows = await _rows("SELECT turns FROM sessions WHERE id = ? LIMIT ?", [session_id, 1])
    return rows[0][0] if rows else 0
