"""Requests that race a DELETE of their session: whoever loses gets the 404 of a missing
session, never a 500 or a generic 409, and nothing runs on (or writes to) a deleted session.

Each race is forced deterministically, by deleting the row at the worst moment from a
hook, and once by timing, as the reports' scripts did (in process only: the hooks patch
the in-process runner).
"""

from __future__ import annotations

import asyncio

import pytest

from app.models import Session
from app.wiring import current_runtime


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
