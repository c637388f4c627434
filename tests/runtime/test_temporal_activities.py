"""The end-of-turn activity, called as a retry or a late cancel would call it: a turn keeps
exactly one terminal event, and messages a cancel dropped still get theirs."""

from __future__ import annotations

from app.events.messages import record_message
from app.runtime.temporal.activities import TurnActivities
from app.runtime.temporal.types import FinishInput
from app.runtime.turn import TurnDeps
from tests.fakes import Text
from tests.helpers import events, make_chat, say, wait_turns


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
