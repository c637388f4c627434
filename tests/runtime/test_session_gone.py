"""A Temporal activity whose session is deleted while it writes ends the workflow
(SESSION_GONE) instead of failing, being retried, and logging tracebacks. Called directly
on the in-process app: the activities only need the database."""

from __future__ import annotations

import asyncio
import gc
import logging

import pytest
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.exceptions import ApplicationError

from app.events.messages import record_message
from app.models import Session
from app.runtime import waits
from app.runtime.temporal.activities import TurnActivities
from app.runtime.temporal.types import SESSION_GONE, FinishInput, workflow_id
from app.runtime.turn import TurnDeps
from app.wiring import current_runtime
from tests.fakes import Hang, Text
from tests.helpers import make_chat, say, until, wait_for_event


async def test_finishing_a_turn_whose_session_was_just_deleted_ends_the_workflow(app, client, fake_llm, monkeypatch):
    runtime = current_runtime(app)
    activities = TurnActivities(TurnDeps(runtime.settings, runtime.events, runtime.clients, runtime.metrics,
                                         runtime.models))
    chat = await make_chat(client, fake_llm)
    message = await record_message(runtime.events, chat["id"], "user", {"text": "cancelled before it ran"})

    async def deleted_meanwhile(session_id: str) -> None:  # the DELETE lands as the turn winds down
        await Session.filter(id=session_id).delete()

    monkeypatch.setattr(waits, "cancel_open", deleted_meanwhile)
    with pytest.raises(ApplicationError) as raised:
        await activities.finish_turn(FinishInput(chat["id"], str(message.id), "cancelled", message="cancelled by request"))
    assert raised.value.type == SESSION_GONE and raised.value.non_retryable


def errors_logged(caplog) -> list[str]:
    gc.collect()  # an exception nobody retrieved is logged when collected
    return [f"{r.name} {r.getMessage()}" for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.mark.parametrize("runner_mode", ["temporal"], indirect=True)
async def test_on_temporal_a_cancel_that_finds_its_session_deleted_ends_the_workflow(app, client, fake_llm,
                                                                                   temporal_settings, monkeypatch,
                                                                                   caplog):
    """The DELETE lands while the cancelled turn winds down: the workflow's finish_turn
    finds the session gone, and the workflow ends. Before, it went back to waiting for
    messages of a session that no longer exists."""
    chat = await make_chat(client, fake_llm)
    fake_llm.script(Hang(["x"], seconds=30))
    await say(client, chat["id"], "first")
    await wait_for_event(client, chat["id"], "message.delta")

    async def deleted_meanwhile(session_id: str) -> None:
        await Session.filter(id=session_id).delete()

    monkeypatch.setattr(waits, "cancel_open", deleted_meanwhile)  # the worker runs in this process
    assert (await client.post(f"/v1/sessions/{chat['id']}/cancel")).status_code in (200, 404)
    handle = (await Client.connect(temporal_settings.temporal_address)).get_workflow_handle(workflow_id(chat["id"]))
    await asyncio.wait_for(handle.result(), 10)
    assert (await handle.describe()).status == WorkflowExecutionStatus.COMPLETED
    assert errors_logged(caplog) == []


@pytest.mark.parametrize("runner_mode", ["temporal"], indirect=True)
async def test_on_temporal_messages_racing_a_delete_leave_no_work_behind(app, client, fake_llm, temporal_settings,
                                                                         caplog):
    """The report's script (a turn hangs, then DELETE and a message at once), end to end
    on Temporal: each session's workflow has ended or has nothing left to run (a message
    that got in was dropped by the DELETE's cancel, or its turn found the session gone),
    and nothing was logged at ERROR."""
    chat = await make_chat(client, fake_llm)
    sessions = []
    for _ in range(4):
        session_id = (await (await client.post(f"/v1/agents/{chat['agent_id']}/sessions", json={})).get_json())["id"]
        sessions.append(session_id)
        fake_llm.script(Hang(["x"], seconds=30), Text(["late"], delay=0.05))
        await say(client, session_id, "first")
        await wait_for_event(client, session_id, "message.delta")
        deleted, posted = await asyncio.gather(client.delete(f"/v1/sessions/{session_id}"),
                                               client.post(f"/v1/sessions/{session_id}/messages", json={"content": "race"}))
        assert deleted.status_code == 204
        assert posted.status_code in (201, 404), await posted.get_json()
    temporal = await Client.connect(temporal_settings.temporal_address)

    async def settled(session_id: str) -> bool:
        handle = temporal.get_workflow_handle(workflow_id(session_id))
        if (await handle.describe()).status == WorkflowExecutionStatus.COMPLETED:
            return True
        return await handle.query("pending", result_type=list[str]) == []

    for session_id in sessions:
        await until(lambda: settled(session_id), timeout=15)  # noqa: B023 (awaited here)
    assert errors_logged(caplog) == []
