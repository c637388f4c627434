"""Requests that race a DELETE of their session: whoever loses gets the 404 of a missing
session, never a 500 or a generic 409, and nothing runs on (or writes to) a deleted session.

Each race is forced deterministically, by deleting the row at the worst moment from a
hook, and once by timing, as the reports' scripts did (in process only: the hooks patch
the in-process runner).
"""

from __future__ import annotations

import asyncio
import gc
import logging

import pytest

from app.models import Event, Message, Session, raw_sql
from app.services import turns as turns_service
from app.wiring import current_runtime
from tests.fakes import Hang, Text
from tests.helpers import make_chat, say, wait_for_event


@pytest.fixture
async def agent(client):
    return await (await client.post("/v1/agents", json={"name": "race", "system_prompt": "x"})).get_json()


async def new_session(client, agent) -> str:
    return (await (await client.post(f"/v1/agents/{agent['id']}/sessions", json={})).get_json())["id"]


async def not_found(response, session_id: str) -> None:
    body = await response.get_json()
    assert response.status_code == 404, body
    assert body["error"] == {"code": "not_found", "message": f"session '{session_id}' not found"}, body


# --- cancel ------------------------------------------------------------------------

@pytest.fixture
def delete_during_cancel(app, monkeypatch):
    """The runner's cancel deletes the session's row as it ends: the DELETE that came in
    while the turn wound down."""
    runner = current_runtime(app).runner
    real_cancel = runner.cancel

    async def cancel_then_deleted(session_id: str, reason: str = "cancelled by request") -> bool:
        stopped = await real_cancel(session_id, reason)
        await Session.filter(id=session_id).delete()
        return stopped

    monkeypatch.setattr(runner, "cancel", cancel_then_deleted)


async def test_a_cancel_that_loses_to_a_delete_is_a_404(client, agent, delete_during_cancel):
    session_id = await new_session(client, agent)
    await not_found(await client.post(f"/v1/sessions/{session_id}/cancel"), session_id)
    nested = await new_session(client, agent)
    await not_found(await client.post(f"/v1/agents/{agent['id']}/sessions/{nested}/cancel"), nested)


async def test_a_stop_that_loses_to_a_delete_is_the_agent_runtime_404(client, agent, delete_during_cancel):
    session_id = await new_session(client, agent)
    response = await client.post(f"/sessions/{session_id}/stop")
    assert response.status_code == 404 and await response.get_json() == {"detail": "Session not found"}


async def test_cancel_racing_delete_never_answers_500(client, agent):
    """The report's script: DELETE and cancel sent together, 20 times."""
    seen = set()
    for _ in range(20):
        session_id = await new_session(client, agent)
        deleted, cancel = await asyncio.gather(client.delete(f"/v1/sessions/{session_id}"),
                                               client.post(f"/v1/sessions/{session_id}/cancel"))
        assert deleted.status_code == 204
        assert cancel.status_code in (202, 404), await cancel.get_json()
        if cancel.status_code == 404:
            await not_found(cancel, session_id)
        seen.add(cancel.status_code)
    assert 404 in seen


# --- messages ------------------------------------------------------------------------

@pytest.fixture
def problems(caplog):
    """What the server logged at WARNING and above, once pending tasks were collected (an
    exception nobody retrieved is logged then); INFO lines are fine."""
    caplog.set_level(logging.INFO)

    def collected() -> list[str]:
        gc.collect()
        return [f"{r.name} {r.levelname} {r.getMessage()}" for r in caplog.records if r.levelno >= logging.WARNING]

    return collected


async def stored_rows(session_id: str) -> tuple[int, int]:
    return await Message.filter(session_id=session_id).count(), await Event.filter(session_id=session_id).count()


async def turns_over(app, timeout: float = 5) -> None:
    runner = current_runtime(app).runner
    async with asyncio.timeout(timeout):
        while runner.active_sessions:  # noqa: ASYNC110 (the runner has no event to wait on)
            await asyncio.sleep(0.01)


def then_deleted(real):
    """`real`, and then the session it was called for deleted: a DELETE landing right after."""
    async def call(session_id: str, *args, **kwargs):
        result = await real(session_id, *args, **kwargs)
        await Session.filter(id=session_id).delete()
        return result
    return call


async def test_a_message_whose_session_goes_before_it_is_stored_is_a_404(app, client, agent, monkeypatch, problems):
    session_id = await new_session(client, agent)
    monkeypatch.setattr(turns_service, "get_session", then_deleted(turns_service.get_session))
    await not_found(await client.post(f"/v1/sessions/{session_id}/messages", json={"content": "race"}), session_id)
    assert await stored_rows(session_id) == (0, 0) and current_runtime(app).runner.active_sessions == 0
    assert problems() == []


async def test_a_message_stored_just_before_the_session_went_is_a_404_too(app, client, agent, monkeypatch, problems):
    """Stored, then its session (and with it the message) deleted before it was
    announced: the message is not there, so the client must not get a 201."""
    session_id = await new_session(client, agent)
    events = current_runtime(app).events
    monkeypatch.setattr(events, "insert_message", then_deleted(events.insert_message))
    await not_found(await client.post(f"/v1/sessions/{session_id}/messages", json={"content": "race"}), session_id)
    assert await stored_rows(session_id) == (0, 0) and current_runtime(app).runner.active_sessions == 0
    assert problems() == []


@pytest.mark.parametrize("ended_by", ["the delete", "its own refused write"])
async def test_a_turn_started_while_its_session_is_deleted_ends_quietly(app, client, fake_llm, monkeypatch, problems,
                                                                       ended_by):
    """The report's case: a turn runs, DELETE cancels it, and a message posted while it
    winds down (201: the session was still there) starts the next turn just before the
    row goes. That turn must end without an ERROR traceback or a write into nothing."""
    chat = await make_chat(client, fake_llm)
    fake_llm.script(Hang(["x"], seconds=30), Text(["late answer"], delay=0.2))
    await say(client, chat["id"], "first")
    await wait_for_event(client, chat["id"], "message.delta")
    runner = current_runtime(app).runner
    real_cancel, posted = runner.cancel, []

    async def cancel_then_a_message_arrives(session_id: str, reason: str = "cancelled by request") -> bool:
        stopped = await real_cancel(session_id, reason)
        if not posted:
            posted.append(await client.post(f"/v1/sessions/{session_id}/messages", json={"content": "race"}))
        return stopped

    monkeypatch.setattr(runner, "cancel", cancel_then_a_message_arrives)
    if ended_by == "its own refused write":  # as on Temporal, where the next activity finds out
        monkeypatch.setattr(runner, "session_deleted", lambda session_id: asyncio.sleep(0), raising=False)
    assert (await client.delete(f"/v1/sessions/{chat['id']}")).status_code == 204
    assert posted[0].status_code == 201
    await turns_over(app)
    assert await stored_rows(chat["id"]) == (0, 0)
    assert problems() == []


async def test_messages_racing_delete_get_201_or_404_and_log_no_errors(app, client, fake_llm, problems):
    """The report's script (t_race2 msgrun): a turn hangs, then DELETE and a message at once."""
    chat = await make_chat(client, fake_llm)
    agent_id = chat["agent_id"]
    for _ in range(12):
        session_id = await new_session(client, {"id": agent_id})
        fake_llm.script(Hang(["x"], seconds=30), Text(["late"], delay=0.05))
        await say(client, session_id, "first")
        await wait_for_event(client, session_id, "message.delta")
        deleted, posted = await asyncio.gather(
            client.delete(f"/v1/sessions/{session_id}"),
            client.post(f"/v1/sessions/{session_id}/messages", json={"content": "race"}))
        assert deleted.status_code == 204
        assert posted.status_code in (201, 404), await posted.get_json()
        if posted.status_code == 404:
            await not_found(posted, session_id)
    await turns_over(app)
    assert problems() == []


# --- Agent Runtime hook events ---------------------------------------------------------

def hook(event_type: str, session_id: str) -> dict:
    return {"event_type": event_type, "session_id": session_id, "session_name": "x",
            "timestamp": "2025-01-01T00:00:00Z"}


@pytest.mark.parametrize(("event_type", "status"), [("pre_tool", "running"), ("session_stop", "finished")])
async def test_an_event_whose_session_is_deleted_before_it_is_stored_creates_it_again(client, monkeypatch,
                                                                                    event_type, status):
    """Found, then deleted before the insert: as for any event of an unknown session (§6.2),
    the session is created (implicit) and the event stored, not lost to a 409."""
    assert (await client.post("/sessions", json={"session_id": "ext-1", "session_name": "x"})).status_code == 200
    real_exists, real_with_agent = raw_sql.session_exists, raw_sql.session_with_agent

    async def deleted_after(found):
        if found:
            await Session.filter(id="ext-1").delete()
        return found

    monkeypatch.setattr(raw_sql, "session_exists", lambda *a: deleted_after_once(real_exists(*a)))
    monkeypatch.setattr(raw_sql, "session_with_agent", lambda *a: deleted_after_once(real_with_agent(*a)))
    done = []

    async def deleted_after_once(lookup):
        found = await lookup
        if not done:
            done.append(await deleted_after(found))
        return found

    response = await client.post("/sessions/ext-1/events", json=hook(event_type, "ext-1"))
    body = await response.get_json()
    assert response.status_code == 200 and body["ok"] is True and isinstance(body["id"], int), body
    session = (await (await client.get("/sessions/ext-1")).get_json())["session"]
    assert session["implicit"] is True and session["status"] == status and session["kind"] == "external"
    events = (await (await client.get("/sessions/ext-1/events")).get_json())["events"]
    assert [e["event_type"] for e in events] == [event_type]


async def test_an_event_whose_session_another_event_creates_meanwhile_goes_into_it(client, monkeypatch):
    """Two first events of one session at once: the one that finds the id taken by the
    other's create stores itself in that session instead of answering 409."""
    real_exists, other = raw_sql.session_exists, {}

    async def created_by_another_event(session_id, *restriction):
        found = await real_exists(session_id, *restriction)
        if "response" not in other:
            other["response"] = None  # that event's own check passes through
            other["response"] = await client.post(f"/sessions/{session_id}/events", json=hook("pre_tool", session_id))
        return found

    monkeypatch.setattr(raw_sql, "session_exists", created_by_another_event)
    response = await client.post("/sessions/ext-2/events", json=hook("post_tool", "ext-2"))
    assert response.status_code == 200 and other["response"].status_code == 200, await response.get_json()
    events = (await (await client.get("/sessions/ext-2/events")).get_json())["events"]
    assert sorted(e["event_type"] for e in events) == ["post_tool", "pre_tool"]


async def test_events_racing_delete_are_never_lost(client):
    """The report's script (t_race4): an external session's event and its DELETE at once."""
    for i in range(12):
        session_id = f"race-ext-{i}"
        await client.post("/sessions", json={"session_id": session_id, "session_name": "x"})
        posted, deleted = await asyncio.gather(client.post(f"/sessions/{session_id}/events",
                                                           json=hook("pre_tool", session_id)),
                                               client.delete(f"/sessions/{session_id}"))
        assert posted.status_code == 200, await posted.get_json()
        assert deleted.status_code in (200, 404)
