"""A Temporal activity whose session is deleted while it writes ends the workflow
(SESSION_GONE) instead of failing, being retried, and logging tracebacks. Called directly
on the in-process app: the activities only need the database."""

from __future__ import annotations

import pytest
from temporalio.exceptions import ApplicationError

from app.events.messages import record_message
from app.models import Session
from app.runtime import waits
from app.runtime.temporal.activities import TurnActivities
from app.runtime.temporal.types import SESSION_GONE, FinishInput
from app.runtime.turn import TurnDeps
from app.wiring import current_runtime
from tests.helpers import make_chat


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
