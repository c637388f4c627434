"""Activities called as a retry or a late cancel would call them: a turn keeps exactly one
terminal event, messages a cancel dropped still get theirs, and a retried pause logs
nothing twice."""

from __future__ import annotations

from app.events.messages import record_message
from app.runtime.temporal.activities import TurnActivities
from app.runtime.temporal.types import FinishInput, PauseInput
from app.runtime.turn import TurnDeps
from tests.fakes import Text, ToolCalls
from tests.helpers import approval_chat, events, make_chat, say, wait_turns, waiting


async def test_a_cancel_after_the_turn_ended_writes_only_the_dropped_messages_end(temporal_app, fake_llm):
    client = temporal_app.test_client()
    runtime = temporal_app.extensions["runtime"]
    activities = TurnActivities(TurnDeps(runtime.settings, runtime.events, runtime.clients, runtime.metrics,
                                         runtime.models))
    chat = await make_chat(client, fake_llm)
    fake_llm.script(Text(["done"]))
    answered = await say(client, chat["id"], "first")
    await wait_turns(client, chat["id"])
    queued = await record_message(runtime.events, chat["id"], "user", {"text": "queued, then dropped"})

    # The cancel reached the workflow just after the model step had completed the turn.
    late_cancel = FinishInput(chat["id"], answered["id"], "cancelled", message="cancelled by request",
                              dropped=[str(queued.id)])
    await activities.finish_turn(late_cancel)
    await activities.finish_turn(late_cancel)  # and Temporal retried the activity
    terminal = [e for e in await events(client, chat["id"]) if e["type"].startswith("session.") and
                e["type"] != "session.started"]
    assert [e["type"] for e in terminal] == ["session.completed", "session.cancelled"]
    assert terminal[0]["data"]["message_id"] == answered["id"]
    assert terminal[1]["data"]["message_id"] is None
    assert terminal[1]["data"]["dropped_message_ids"] == [str(queued.id)]


async def test_a_retried_pause_logs_its_requests_and_the_wait_once(temporal_app, fake_llm):
    """Temporal runs `pause_step` again when its first answer was lost (a worker died after
    the writes): the calls are stored once, and so are their events."""
    client = temporal_app.test_client()
    runtime = temporal_app.extensions["runtime"]
    activities = TurnActivities(TurnDeps(runtime.settings, runtime.events, runtime.clients, runtime.metrics,
                                         runtime.models))
    chat = await approval_chat(client, fake_llm)
    fake_llm.script(ToolCalls([("c1", "get_current_time", {})]), Text(["It is now."]))
    asked = await say(client, chat["id"], "time?")
    wait = (await waiting(client, chat["id"]))[0]
    logged = await events(client, chat["id"])
    started = next(e for e in logged if e["type"] == "session.started")
    await activities.pause_step(PauseInput(
        chat["id"], asked["id"], wait["step_id"], 1, started["sequence"],
        [{"id": "c1", "name": "get_current_time", "arguments": "{}"}], ["approval"], [None]))
    again = await events(client, chat["id"])
    assert [e["type"] for e in again] == [e["type"] for e in logged]  # nothing logged twice
    assert [e["data"]["step_id"] for e in again if e["type"] == "session.waiting"] == [wait["step_id"]]
    await client.post(f"/v1/sessions/{chat['id']}/tool-calls/c1/approve")
    assert (await wait_turns(client, chat["id"]))[-1]["type"] == "session.completed"
