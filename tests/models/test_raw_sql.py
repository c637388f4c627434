"""app/models/raw_sql.py against the ORM it stands in for, on SQLite and PostgreSQL: the
same rows, the same owner rule, the same errors."""

from __future__ import annotations

import uuid

import pytest
from tortoise.exceptions import IntegrityError

from app.db import apply_migrations, close_db, open_db
from app.events.bus import EventBus
from app.events.log import EventLog, LoggedEvent
from app.json_encoding import dumpb
from app.models import Agent, Event, Message, Session, User, raw_sql


@pytest.fixture(params=["sqlite", "postgres"])
async def database(request, settings):
    if request.param == "postgres":
        settings = settings.replace(database_url=request.getfixturevalue("postgres_url"))
        await apply_migrations(settings)
    await open_db(settings)
    try:
        yield request.param
    finally:
        await close_db()


async def test_a_session_reads_as_the_orm_reads_it(database):
    agent = await Agent.create(name="helper", system_prompt="p")
    await Session.create(id="with-agent", agent=agent, title="t", tags=["x"], metadata={"k": 1}, status="running")
    await Session.create(id="external", kind="external", title="ext")
    for key in ("with-agent", "external"):
        orm = await Session.filter(id=key).select_related("agent").first()
        raw = await raw_sql.session_with_agent(key)
        shown, agent_name = await raw_sql.session_to_show(key)
        columns = {f: getattr(orm, f) for f in Session._meta.db_fields}
        assert {f: getattr(raw, f) for f in Session._meta.db_fields} == columns
        assert {f: getattr(shown, f) for f in Session._meta.db_fields} == columns
        assert (raw._agent.name if raw._agent else None) == (orm._agent.name if orm._agent else None) == agent_name
    assert await raw_sql.session_with_agent("missing") is None
    assert await raw_sql.session_to_show("missing") == (None, None)
    assert await raw_sql.session_exists("external") and not await raw_sql.session_exists("missing")


async def test_owner_restriction_is_the_visible_rule(database):
    alice = await User.create(email="a@example.com", password_hash="x")
    bob = await User.create(email="b@example.com", password_hash="x")
    await Session.create(id="alices", owner=alice)
    await Session.create(id="nobodys")
    assert (await raw_sql.session_with_agent("alices", True, alice.id)).id == "alices"
    assert await raw_sql.session_with_agent("alices", True, bob.id) is None
    assert await raw_sql.session_with_agent("nobodys", True, alice.id) is None
    assert await raw_sql.session_exists("alices", True, alice.id)
    assert not await raw_sql.session_exists("alices", True, bob.id)
    assert (await raw_sql.session_with_agent("nobodys", False)).id == "nobodys"


async def test_turns_count_user_messages(database):
    """The database counts them (migration 0015's triggers), however a message is stored
    or deleted: the ORM here, raw SQL on the hot paths, a cascade."""
    await Session.create(id="chat")
    log = EventLog(EventBus(), on_postgres=database == "postgres")  # the hot path's insert, per database
    for n, role in enumerate(("user", "assistant", "user", "tool"), start=1):
        await log.insert_message("chat", uuid.uuid4(), role, {"text": str(n)})
    session, agent_name = await raw_sql.session_to_show("chat")
    assert session.id == "chat" and agent_name is None and session.turns == 2
    assert await raw_sql.turn_count("chat") == 2
    await Message.create(id=uuid.uuid4(), session_id="chat", sequence=9, role="user", content={"text": "9"})
    assert await raw_sql.turn_count("chat") == 3
    await Message.filter(session_id="chat", sequence=1).delete()
    assert await raw_sql.turn_count("chat") == 2
    await Session.create(id="other")
    await Message.create(id=uuid.uuid4(), session_id="other", sequence=1, role="user", content={"text": "x"})
    assert (await raw_sql.turn_count("chat"), await raw_sql.turn_count("other")) == (2, 1)
    assert await raw_sql.session_to_show("missing") == (None, None)
    assert await raw_sql.turn_count("missing") == 0


async def test_event_pages_and_totals(database):
    await Session.create(id="log")
    log = EventLog(EventBus(), on_postgres=database == "postgres")
    for i in range(10):
        await log.append("log", "message.delta" if i % 2 else "step.started", {"i": i, "text": "é ✓"})
    page = await EventLog.read("log", after=3, limit=4)
    orm = await Event.filter(session_id="log", sequence__gt=3).order_by("sequence").limit(4)
    assert [e.to_json() for e in page] == [LoggedEvent.from_row(r).to_json() for r in orm]
    assert [e.data["i"] for e in page] == [3, 4, 5, 6] and page[0].data["text"] == "é ✓"
    deltas, total = await log.page("log", 0, 100, {"message.delta"}, None)
    assert [e.sequence for e in deltas] == [2, 4, 6, 8, 10] and total == 5
    others, total = await log.page("log", 2, 2, None, {"message.delta"})
    assert [e.sequence for e in others] == [3, 5] and total == 5
    everything, total = await log.page("log", 8, 100, None, None)
    assert [e.sequence for e in everything] == [9, 10] and total == 10 == await Event.filter(session_id="log").count()
    assert await raw_sql.event_total("missing") == 0


async def test_message_pages_are_the_rows(database):
    await Session.create(id="chat")
    for n in range(1, 6):
        await Message.create(id=uuid.uuid4(), session_id="chat", sequence=n, role="user", content={"text": f"m{n}"})
    page = await raw_sql.message_dicts("chat", offset=1, limit=3)
    orm = await Message.filter(session_id="chat").order_by("sequence").offset(1).limit(3)
    expected = [{"id": m.id, "session_id": "chat", "sequence": m.sequence, "role": m.role, "content": m.content,
                 "created_at": m.created_at} for m in orm]
    assert dumpb(page) == dumpb(expected)  # as sent: ids are text on SQLite, UUIDs from asyncpg
    assert await raw_sql.message_count("chat") == 5 and await raw_sql.message_count("missing") == 0
    assert [m["sequence"] for m in await raw_sql.message_dicts("chat", offset=4, limit=3)] == [5]
    assert await raw_sql.message_dicts("chat", offset=5, limit=3) == []
    # An offset past any sequence number (they are 32-bit): an empty page, not PostgreSQL's
    # "value out of int32 range" for the comparison (schemathesis: offset=2**63-2, a 500).
    assert await raw_sql.message_dicts("chat", offset=2**63 - 2, limit=3) == []


async def test_a_taken_event_number_or_a_missing_session_is_an_integrity_error(settings):
    """insert_event is SQLite's path (PostgreSQL numbers and inserts in one statement,
    app/models/sequences.py)."""
    await open_db(settings)
    try:
        session = await Session.create(id="s")
        assert await raw_sql.insert_event("s", 1, "x", "{}", session.created_at) > 0
        with pytest.raises(IntegrityError):
            await raw_sql.insert_event("s", 1, "x", "{}", session.created_at)
        with pytest.raises(IntegrityError):
            await raw_sql.insert_event("missing", 1, "x", "{}", session.created_at)
    finally:
        await close_db()
