"""A turn whose database fails part way ends `failed`, with exactly one terminal event
that live SSE clients get, as soon as the database is back: without a restart, and
without holding up other sessions. (In process; a Temporal worker's activity is retried
by Temporal instead.)"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from app.db import DatabaseUnavailable
from app.models import Event
from app.runtime.outcome import TERMINAL
from tests.fakes import Hang, Text, ToolCalls
from tests.helpers import (
    approval_chat,
    events,
    make_chat,
    messages,
    say,
    session,
    wait_for_event,
    wait_turns,
    waiting,
)
from tests.tcp_proxy import TcpProxy
from tests.test_db_faults import TIMEOUT, WriteLock, db_file, serving


@dataclass
class Fault:
    settings: object
    break_: Callable[[], None]
    restore: Callable[[], None]


@pytest.fixture(params=["sqlite", "postgres"])
def fault(request, settings):
    """sqlite: another process holds the write lock (every write waits DATABASE_TIMEOUT_SECONDS,
    then fails; reads still work). postgres: the server goes away (connections reset,
    new ones refused) and comes back."""
    settings = settings.replace(database_timeout_seconds=TIMEOUT)
    if request.param == "sqlite":
        with contextlib.closing(WriteLock(db_file(settings))) as lock:
            yield Fault(settings, lock.take, lock.give_back)
        return
    postgres_url = request.getfixturevalue("postgres_url")
    with TcpProxy("127.0.0.1", 5432) as proxy:
        yield Fault(settings.replace(database_url=proxy.url(postgres_url), auto_migrate=True),
                    proxy.refuse, proxy.forward)


async def read_until(sse, event_type: str, buffer: bytearray, timeout: float) -> list[str]:
    """Read the SSE response until a frame of `event_type` came; the event types so far."""
    marker = f"event: {event_type}\n".encode()
    async with asyncio.timeout(timeout):
        while marker not in buffer:
            buffer += await sse.receive()
    return [line[7:] for line in buffer.decode().splitlines() if line.startswith("event: ")]


RETRYING = "cannot record the end of the turn yet"  # app/runtime/turn.py's warning


class Recorded(logging.Handler):
    """What a logger said, for a test to wait on."""

    def __init__(self, name: str):
        super().__init__(logging.WARNING)
        self.logger, self.said = logging.getLogger(name), []

    def emit(self, record: logging.LogRecord) -> None:
        self.said.append(record.getMessage())

    async def wait_for(self, text: str, timeout: float) -> None:
        async with asyncio.timeout(timeout):
            while not any(text in said for said in self.said):  # noqa: ASYNC110 (log records arrive from a logging handler)
                await asyncio.sleep(0.05)

    def __enter__(self) -> Recorded:
        self.logger.addHandler(self)
        return self

    def __exit__(self, *exc) -> None:
        self.logger.removeHandler(self)


async def test_turn_fails_with_the_database_and_ends_once_it_is_back(fault, fake_llm):
    with Recorded("app.runtime.turn") as turn_log:
        await _turn_fails_and_ends(fault, fake_llm, turn_log)


async def _turn_fails_and_ends(fault, fake_llm, turn_log: Recorded):
    async with serving(fault.settings) as client:
        chat = await make_chat(client, fake_llm)
        other = await (await client.post(f"/v1/agents/{chat['agent_id']}/sessions", json={})).get_json()
        fake_llm.script(Text(["Hel", "lo ", "wor", "ld"], delay=0.5))
        async with client.request(f"/v1/sessions/{chat['id']}/events", method="GET",
                                  headers={"Accept": "text/event-stream"}) as sse:
            await sse.send_complete()
            try:
                received = bytearray()
                posted = await say(client, chat["id"], "hi")
                await read_until(sse, "message.delta", received, 10)
                fault.break_()
                try:
                    # The turn's next write fails, and so does recording that it failed
                    # (each waits up to TIMEOUT on SQLite); the turn keeps trying.
                    with contextlib.suppress(TimeoutError):
                        await turn_log.wait_for(RETRYING, 1 + 3 * TIMEOUT)
                    assert not any(f"event: {t}".encode() in received for t in TERMINAL)
                finally:
                    fault.restore()
                # Another session is not held up by the one still recording its failure.
                fake_llm.script(Text(["fine"]))
                await say(client, other["id"], "and you?")
                types = await read_until(sse, "session.failed", received, 15)
            finally:
                await sse.disconnect()  # the stream itself never ends

        assert any(RETRYING in said for said in turn_log.said)  # the outage outlasted the first try
        assert types.count("session.failed") == 1 and not set(types) & {"session.completed", "session.cancelled"}
        log = await events(client, chat["id"])
        assert [e["sequence"] for e in log] == list(range(1, len(log) + 1))
        terminal = [e for e in log if e["type"] in TERMINAL]
        assert len(terminal) == 1 and terminal[0]["type"] == "session.failed"
        assert terminal[0]["data"]["code"] == "database_unavailable"
        assert terminal[0]["data"]["message_id"] == posted["id"]
        assert log[-1] == terminal[0]
        after = await session(client, chat["id"])
        assert after["status"] == "failed" and "database was unavailable" in after["last_error"]
        kept = (await messages(client, chat["id"]))[-1]  # what was streamed before the failure
        assert kept["role"] == "assistant" and kept["content"]["text"].startswith("Hel")
        created = [e for e in log if e["type"] == "message.created" and e["data"]["message_id"] == kept["id"]]
        assert len(created) == 1

        other_log = await wait_turns(client, other["id"])
        assert other_log[-1]["type"] == "session.completed"
        # The session takes messages again.
        fake_llm.script(Text(["back"]))
        await say(client, chat["id"], "again")
        assert (await wait_turns(client, chat["id"], count=2))[-1]["type"] == "session.completed"
        assert (await session(client, chat["id"]))["status"] == "pending"



# SQLite: the cancel reads the session, then its writes fail (PostgreSQL down refuses
# the cancel itself with 503: nothing is cancelled, and the client can send it again).
@pytest.mark.parametrize("fault", ["sqlite"], indirect=True)
async def test_a_cancel_while_the_database_is_down_ends_the_turn_once_it_is_back(fault, fake_llm):
    """Reported: a cancel whose writes the database refused left the turn with no terminal
    event and the session `running` until the next restart. The cancel is written, once,
    as soon as the database takes writes again, with the text streamed before it."""
    with Recorded("app.runtime.turn") as turn_log:
        async with serving(fault.settings) as client:
            chat = await make_chat(client, fake_llm)
            fake_llm.script(Hang(["Hello "], seconds=30))  # streams, then nothing: the turn writes nothing
            async with client.request(f"/v1/sessions/{chat['id']}/events", method="GET",
                                      headers={"Accept": "text/event-stream"}) as sse:
                await sse.send_complete()
                try:
                    received = bytearray()
                    posted = await say(client, chat["id"], "hi")
                    await read_until(sse, "message.delta", received, 10)
                    fault.break_()
                    try:
                        cancelling = asyncio.ensure_future(client.post(f"/v1/sessions/{chat['id']}/cancel"))
                        with contextlib.suppress(TimeoutError):
                            await turn_log.wait_for(RETRYING, 1 + 3 * TIMEOUT)
                        assert not any(f"event: {t}".encode() in received for t in TERMINAL)
                    finally:
                        fault.restore()
                    types = await read_until(sse, "session.cancelled", received, 15)
                    assert (await cancelling).status_code == 202
                finally:
                    await sse.disconnect()

            assert any(RETRYING in said for said in turn_log.said)  # the outage outlasted the first try
            assert types.count("session.cancelled") == 1 and not set(types) & {"session.completed", "session.failed"}
            await _ended_once(client, chat["id"], posted["id"], "session.cancelled")
            after = await session(client, chat["id"])
            assert after["status"] == "pending" and after["last_error"] is None
            kept = (await messages(client, chat["id"]))[-1]  # what was streamed before the cancel
            assert kept["role"] == "assistant" and kept["content"]["text"] == "Hello "
            fake_llm.script(Text(["back"]))
            await say(client, chat["id"], "again")
            assert (await wait_turns(client, chat["id"], count=2))[-1]["type"] == "session.completed"


# SQLite: the cancel reads the session, then its writes fail (PostgreSQL down refuses
# the cancel itself with 503: nothing is cancelled, and the client can send it again).
@pytest.mark.parametrize("fault", ["sqlite"], indirect=True)
async def test_a_cancel_of_a_waiting_turn_while_the_database_is_down(fault, fake_llm):
    """The same for a turn waiting for an approval: it was left `waiting_for_approval`
    with its call still open; a restart would have waited for the call again."""
    with Recorded("app.runtime.turn") as turn_log:
        async with serving(fault.settings) as client:
            chat = await approval_chat(client, fake_llm)
            fake_llm.script(ToolCalls([("c1", "get_current_time", {})]))
            posted = await say(client, chat["id"], "time?")
            await waiting(client, chat["id"])
            fault.break_()
            try:
                cancelling = asyncio.ensure_future(client.post(f"/v1/sessions/{chat['id']}/cancel"))
                with contextlib.suppress(TimeoutError):
                    await turn_log.wait_for(RETRYING, 1 + 3 * TIMEOUT)
            finally:
                fault.restore()
            assert (await cancelling).status_code == 202
            await wait_turns(client, chat["id"], timeout=15)
            assert any(RETRYING in said for said in turn_log.said)
            await _ended_once(client, chat["id"], posted["id"], "session.cancelled")
            assert (await session(client, chat["id"]))["status"] == "pending"
            late = await client.post(f"/v1/sessions/{chat['id']}/tool-calls/c1/approve")
            assert late.status_code == 409 and "cancelled" in (await late.get_json())["error"]["message"]


async def _ended_once(client, session_id: str, message_id: str, type: str) -> None:
    """The log is numbered without gaps and ends with the turn's one terminal event."""
    log = await events(client, session_id)
    assert [e["sequence"] for e in log] == list(range(1, len(log) + 1))
    terminal = [e for e in log if e["type"] in TERMINAL]
    assert len(terminal) == 1 and terminal[0]["type"] == type and terminal[0]["data"]["message_id"] == message_id
    assert log[-1] == terminal[0]

async def test_append_once_finds_a_stored_event_and_publishes_it(app, client, fake_llm):
    """The retry after a write whose answer was lost: the event may be stored already,
    never published. It is not stored twice, and live listeners get it."""
    runtime = app.extensions["runtime"]
    chat = await make_chat(client, fake_llm)
    data = {"error": "e", "code": "database_unavailable", "message_id": "m1"}
    with runtime.bus.subscribe(chat["id"]) as live:
        row = await Event.create(session_id=chat["id"], sequence=1, type="session.failed",
                                 data={"session_id": chat["id"], **data})  # stored, not published
        found = await runtime.events.append_once(chat["id"], "session.failed", data)
        assert found.id == row.id and (await live.get(timeout=1)).id == row.id
        other = await runtime.events.append_once(chat["id"], "session.failed", {**data, "message_id": "m2"})
        assert other.sequence == 2 and (await live.get(timeout=1)).id == other.id
    assert await Event.filter(session_id=chat["id"]).count() == 2


async def test_turn_whose_end_cannot_be_written_completes_once_it_can(app, client, fake_llm, monkeypatch):
    """The database fails just as a turn that went well is ending: the end is written
    once the database takes it, as `completed`, once."""
    runtime = app.extensions["runtime"]
    chat = await make_chat(client, fake_llm)
    refusals, append = 3, runtime.events.append

    async def refusing_append(session_id, type, data=None):
        nonlocal refusals
        if type == "session.completed" and refusals:
            refusals -= 1
            raise DatabaseUnavailable(f"no answer within {TIMEOUT:g} s")  # as app/db.py says a stall
        return await append(session_id, type, data)

    monkeypatch.setattr(runtime.events, "append", refusing_append)
    fake_llm.script(Text(["done"]))
    await say(client, chat["id"], "hi")
    log = await wait_turns(client, chat["id"])
    assert refusals == 0 and [e["type"] for e in log].count("session.completed") == 1
    assert log[-1]["type"] == "session.completed" and log[-1]["data"]["reason"] == "completed"
    assert (await session(client, chat["id"]))["status"] == "pending"
    fake_llm.script(Text(["more"]))
    await say(client, chat["id"], "again")
    assert (await wait_turns(client, chat["id"], count=2))[-1]["type"] == "session.completed"


async def test_a_caller_waiting_for_the_turn_is_answered_while_its_end_waits(settings, fake_llm):
    """AgentSpec `continue` waits for the turn: it gets the failure at once, not when the
    database is back (the end is written then)."""
    settings = settings.replace(database_timeout_seconds=TIMEOUT)
    with contextlib.closing(WriteLock(db_file(settings))) as lock:
        await _answered_while_its_end_waits(settings, lock, fake_llm)


async def _answered_while_its_end_waits(settings, lock: WriteLock, fake_llm):
    async with serving(settings) as client:
        chat = await make_chat(client, fake_llm)
        fake_llm.script(Text(["Hel", "lo ", "wor", "ld"], delay=0.5))
        waiting = asyncio.ensure_future(client.post(f"/v1/agents/{chat['agent_id']}/sessions/{chat['id']}/continue",
                                                    json={"input": "hi"}))
        await wait_for_event(client, chat["id"], "message.delta")
        lock.take()
        try:
            response = await asyncio.wait_for(waiting, 3 * TIMEOUT + 5)
            body = await response.get_json()
            assert body["error"]["code"] == "database_unavailable", body
            # (SQLite: reading goes on while another connection holds the write lock.)
            assert not [e for e in await events(client, chat["id"]) if e["type"] in TERMINAL]
            assert (await session(client, chat["id"]))["status"] == "running"
        finally:
            lock.give_back()
        log = await wait_turns(client, chat["id"])
        assert [e["type"] for e in log if e["type"] in TERMINAL] == ["session.failed"]
