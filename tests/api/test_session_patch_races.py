"""A PATCH of a session writes only what it changes.

Both PATCH routes (`/v1/sessions/{id}` and the Agent Runtime `/sessions/{id}/metadata`)
read the session, then saved the whole row: every column as it was read. A write that
landed in between was undone. A status that a turn or a reporter's `session_stop` set went
back, and on PostgreSQL the session's event counter (`event_seq`, app/models/sequences.py)
went back too, so every later event of the session collided with one already stored and
failed with a 500. The tests put a write into that window, as a turn or another process
would: the PATCH's read of the session is wrapped.
"""

from __future__ import annotations

import pytest

from app.models import Agent, Session
from app.services import agent_runtime as ar_service
from app.services import sessions as sessions_service


@pytest.fixture(params=["sqlite", "postgres"])
def settings(request, settings):
    if request.param == "sqlite":
        return settings
    return settings.replace(database_url=request.getfixturevalue("pg_copy"), auto_migrate=False)


def write_in_between(monkeypatch, app, module, status: str):
    """After the PATCH reads the session, and before it saves: another writer appends an
    event to the session and changes its status."""
    events = app.extensions["runtime"].events
    read = module.get_session

    async def get_session(session_id, *args, **kwargs):
        session = await read(session_id, *args, **kwargs)
        await events.append(session_id, "post_tool", {"tool_name": "Bash", "tool_output": "ok"})
        await Session.filter(id=session_id).update(status=status)
        return session

    monkeypatch.setattr(module, "get_session", get_session)


async def report(client, session_id: str, n: int) -> None:
    for i in range(n):
        response = await client.post(f"/sessions/{session_id}/events", json={
            "event_type": "pre_tool", "session_id": session_id, "session_name": "s",
            "timestamp": "2026-12-01T00:00:00Z", "tool_name": "Bash", "tool_input": {"command": f"ls {i}"}})
        assert response.status_code in (200, 201), await response.get_json()


async def sequences(client, session_id: str) -> list[int]:
    response = await client.get(f"/sessions/{session_id}/events?all=true")
    assert response.status_code == 200
    return [e["sequence"] for e in (await response.get_json())["events"]]


async def test_agent_runtime_metadata_patch_keeps_a_concurrent_write(client, app, monkeypatch):
    response = await client.post("/sessions", json={"session_id": "race-ar", "session_name": "before"})
    assert response.status_code in (200, 201)
    await report(client, "race-ar", 2)
    write_in_between(monkeypatch, app, ar_service, status="finished")

    response = await client.patch("/sessions/race-ar/metadata", json={"session_name": "after"})
    assert response.status_code == 200, await response.get_json()

    shown = (await (await client.get("/sessions/race-ar")).get_json())["session"]
    assert (shown["session_name"], shown["status"]) == ("after", "finished")  # the stop was kept
    monkeypatch.undo()
    await report(client, "race-ar", 2)  # numbered on from the event written in between
    assert await sequences(client, "race-ar") == [1, 2, 3, 4, 5]


async def test_v1_session_patch_keeps_a_concurrent_write(client, app, monkeypatch):
    agent = (await (await client.post("/v1/agents", json={"name": "a", "system_prompt": "hi"})).get_json())
    session = await (await client.post(f"/v1/agents/{agent['id']}/sessions", json={})).get_json()
    write_in_between(monkeypatch, app, sessions_service, status="failed")

    response = await client.patch(f"/v1/sessions/{session['id']}", json={"title": "renamed"})
    assert response.status_code == 200, await response.get_json()

    shown = await (await client.get(f"/v1/sessions/{session['id']}")).get_json()
    assert (shown["title"], shown["status"]) == ("renamed", "failed")
    monkeypatch.undo()
    appended = await app.extensions["runtime"].events.append(session["id"], "session.started", {})
    assert appended.sequence == 2  # after the event written in between, not a collision with it


async def test_agent_patch_keeps_a_concurrent_archive(client, monkeypatch):
    """The same for agents: an archive between a PATCH's read and its save was undone
    (the agent active again, open to new sessions)."""
    from app.services import agents as agents_service

    agent = await (await client.post("/v1/agents", json={"name": "a", "system_prompt": "hi"})).get_json()
    read = agents_service.get_agent

    async def get_agent(agent_id, *args, **kwargs):
        found = await read(agent_id, *args, **kwargs)
        await Agent.filter(id=found.id).update(status="archived")  # a DELETE from another client
        return found

    monkeypatch.setattr(agents_service, "get_agent", get_agent)
    response = await client.patch(f"/v1/agents/{agent['id']}", json={"system_prompt": "changed"})
    assert response.status_code == 200, await response.get_json()
    monkeypatch.undo()
    shown = await (await client.get(f"/v1/agents/{agent['id']}")).get_json()
    assert (shown["system_prompt"], shown["status"]) == ("changed", "archived")
