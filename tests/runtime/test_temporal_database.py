"""Temporal mode when the database is gone for longer than Temporal's retries (the
activities' INFRA_RETRIES): every turn still ends once, once the database is back, and
the session's workflow goes on to its next messages (decisions 181-186).

PostgreSQL goes away through a TCP proxy (tests/tcp_proxy.py) for the API and the
worker alike; a fault at one exact write is the event log or an activity refusing, as
a database that went away does (app/db.py DatabaseUnavailable)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta

from app.db import DatabaseUnavailable
from app.runtime.outcome import TERMINAL
from app.runtime.temporal import workflows
from app.runtime.temporal.types import workflow_id
from tests.conftest import temporal_app_serving
from tests.fakes import Hang, Text, ToolCalls
from tests.helpers import (
    approval_chat,
    events,
    make_chat,
    messages,
    refuse_activity,
    say,
    session,
    wait_for_event,
    wait_turns,
    waiting,
)
from tests.tcp_proxy import TcpProxy


async def end_tried(temporal_address: str, session_id: str) -> int | None:
    """Once the session's workflow has tried to record a turn's end (`finish_turn`) more
    often than INFRA_RETRIES allows: how often; None if the workflow ended instead."""
    from temporalio.client import Client, WorkflowExecutionStatus

    handle = (await Client.connect(temporal_address)).get_workflow_handle(workflow_id(session_id))
    async with asyncio.timeout(20):
        while True:
            description = await handle.describe()
            if description.status != WorkflowExecutionStatus.RUNNING:
                return None
            for pending in description.raw_description.pending_activities:
                if pending.activity_type.name == "finish_turn" and pending.attempt > workflows.INFRA_RETRIES.maximum_attempts:
                    return pending.attempt
            await asyncio.sleep(0.1)


@contextlib.asynccontextmanager
async def a_streamed_turn_through_an_outage(temporal_settings, pg_copy, fake_llm) -> AsyncIterator[tuple]:
    """A chat whose streamed answer loses PostgreSQL (for the API and the worker alike)
    until the workflow has tried the turn's end past INFRA_RETRIES (the model step gave up
    first); then the database is back and the turn has ended. Yields (settings, client,
    chat, the posted message, the workflow's run id from before the outage, how often the
    end was tried: None if the workflow ended instead)."""
    with TcpProxy("127.0.0.1", 5432) as proxy:
        settings = temporal_settings.replace(database_url=proxy.url(pg_copy))
        async with temporal_app_serving(settings) as app:
            client = app.test_client()
            chat = await make_chat(client, fake_llm)
            fake_llm.script(Text(["Hel", "lo ", "wor", "ld"], delay=0.5))
            posted = await say(client, chat["id"], "hi")
            await wait_for_event(client, chat["id"], "message.delta")
            run_id = (await workflow_run(settings.temporal_address, chat["id"])).run_id
            proxy.refuse()
            try:
                tried = await end_tried(settings.temporal_address, chat["id"])
            finally:
                proxy.forward()
            await wait_turns(client, chat["id"], timeout=15)
            yield settings, client, chat, posted, run_id, tried


async def workflow_run(temporal_address: str, session_id: str):
    from temporalio.client import Client

    return await (await Client.connect(temporal_address)).get_workflow_handle(workflow_id(session_id)).describe()


async def ended_once(client, session_id: str, message_id: str, type: str) -> dict:
    """The log is numbered without gaps and ends with the turn's one terminal event."""
    log = await events(client, session_id)
    assert [e["sequence"] for e in log] == list(range(1, len(log) + 1))
    terminal = [e for e in log if e["type"] in TERMINAL]
    assert [e["type"] for e in terminal] == [type] and terminal[0]["data"]["message_id"] == message_id
    assert log[-1] == terminal[0]
    return terminal[0]


async def test_a_turn_whose_database_is_gone_past_the_retries_ends_once_it_is_back(temporal_settings, pg_copy,
                                                                                   fake_llm, short_retries):
    """Reported: the turn's activities gave up after INFRA_RETRIES (10 attempts, about 30 s),
    and so did the one recording its end. The session workflow failed: the session stayed
    `running` with no terminal event, for good. The end is now tried until the database
    takes it, and the workflow goes on to the session's next message."""
    async with a_streamed_turn_through_an_outage(temporal_settings, pg_copy, fake_llm) as outage:
        settings, client, chat, posted, run_id, tried = outage
        assert tried is not None
        failed = await ended_once(client, chat["id"], posted["id"], "session.failed")
        assert failed["data"]["code"] == "database_unavailable"
        reason = "the turn stopped because the database was unavailable (connection refused or lost)"
        assert failed["data"]["error"] == f"{reason}; send the message again"
        after = await session(client, chat["id"])
        assert after["status"] == "failed" and after["last_error"] == failed["data"]["error"]

        fake_llm.script(Text(["back"]))  # the session takes messages again, on the same workflow
        await say(client, chat["id"], "again")
        assert (await wait_turns(client, chat["id"], count=2))[-1]["type"] == "session.completed"
        assert (await session(client, chat["id"]))["status"] == "pending"
        assert (await workflow_run(settings.temporal_address, chat["id"])).run_id == run_id
        assert len(fake_llm.requests) == 2  # no model call while the database was gone


async def test_a_turn_failed_by_the_database_keeps_the_text_it_streamed(temporal_settings, pg_copy, fake_llm,
                                                                       short_retries):
    """Reported: a turn that ended `failed` (`database_unavailable`) after an outage kept
    none of the text it had streamed, although docs/api.md §4.3 keeps it for any failure
    and the in-process runner does. Clients that showed the deltas held text that was not
    in the conversation. The streamed text is now kept, from the log's deltas, when the
    turn's end is recorded once the database is back."""
    async with a_streamed_turn_through_an_outage(temporal_settings, pg_copy, fake_llm) as outage:
        _, client, chat, posted, _, tried = outage
        assert tried is not None
        failed = await ended_once(client, chat["id"], posted["id"], "session.failed")
        assert failed["data"]["code"] == "database_unavailable"
        log = await events(client, chat["id"])
        deltas = [e["data"] for e in log if e["type"] == "message.delta"]
        streamed = "".join(d["delta"] for d in deltas)
        assert streamed and streamed != "Hello world"  # cut off by the outage
        conversation = await messages(client, chat["id"])
        assert [(m["role"], m["content"]) for m in conversation] == [("user", {"text": "hi"}),
                                                                    ("assistant", {"text": streamed})]
        assert conversation[1]["id"] == deltas[0]["message_id"]  # the message the deltas announced
        (created,) = [e for e in log if e["type"] == "message.created" and e["data"]["role"] == "assistant"]
        assert created["data"]["message_id"] == conversation[1]["id"] and created["sequence"] < failed["sequence"]


def refusing(events, monkeypatch, type: str, times: int) -> list[int]:
    """The event log refuses the first `times` appends of `type` as a database that went
    away would (app/db.py); the list holds how many are left to refuse."""
    left, append = [times], events.append

    async def refusing_append(session_id, event_type, data=None):
        if event_type == type and left[0]:
            left[0] -= 1
            raise DatabaseUnavailable("connection refused or lost")
        return await append(session_id, event_type, data)

    monkeypatch.setattr(events, "append", refusing_append)
    return left


async def test_an_answer_whose_end_the_database_refuses_past_the_retries_completes(temporal_settings, fake_llm,
                                                                                   short_retries, monkeypatch):
    """Reported: the model step records the turn's end itself. When the database refused
    it for longer than the step's retries, the turn ended `failed`, its answer stored
    and shown. The end is now recorded as `completed`, once, when the database takes it."""
    async with temporal_app_serving(temporal_settings) as app:
        client = app.test_client()
        chat = await make_chat(client, fake_llm)
        left = refusing(app.extensions["runtime"].events, monkeypatch, "session.completed",
                        workflows.INFRA_RETRIES.maximum_attempts + 2)
        fake_llm.script(Text(["done"]))
        posted = await say(client, chat["id"], "hi")
        await wait_turns(client, chat["id"], timeout=15)
        completed = await ended_once(client, chat["id"], posted["id"], "session.completed")
        assert left == [0] and completed["data"]["reason"] == "completed"
        assert (await session(client, chat["id"]))["status"] == "pending"
        assert [m["role"] for m in await messages(client, chat["id"])] == ["user", "assistant"]
        assert len(fake_llm.requests) == 1  # the answer was not asked for again
        fake_llm.script(Text(["more"]))
        await say(client, chat["id"], "again")
        assert (await wait_turns(client, chat["id"], count=2))[-1]["type"] == "session.completed"


async def updates_accepted(temporal_address: str, session_id: str, count: int) -> None:
    """Until the session's workflow has taken `count` updates (cancels)."""
    from temporalio.client import Client

    handle = (await Client.connect(temporal_address)).get_workflow_handle(workflow_id(session_id))
    async with asyncio.timeout(10):
        while True:
            history = [event async for event in handle.fetch_history_events()]
            if sum(event.HasField("workflow_execution_update_accepted_event_attributes") for event in history) >= count:
                return
            await asyncio.sleep(0.1)


async def test_a_cancel_whose_end_the_database_refuses_is_recorded_despite_a_second_cancel(
        temporal_settings, fake_llm, short_retries, monkeypatch):
    """A cancel's end (the kept text, `pending`, `session.cancelled`) refused by the
    database past INFRA_RETRIES is recorded once it is back. Reported: a second cancel (a
    client's retry, a delete) while the first one's end was being retried cancelled that
    retry: the workflow failed on the cancellation, and the turn had no terminal event."""
    async with temporal_app_serving(temporal_settings) as app:
        client = app.test_client()
        address = temporal_settings.temporal_address
        chat = await make_chat(client, fake_llm)
        fake_llm.script(Hang(["Hello "], seconds=30))
        posted = await say(client, chat["id"], "hi")
        await wait_for_event(client, chat["id"], "message.delta")
        run_id = (await workflow_run(address, chat["id"])).run_id
        left = refusing(app.extensions["runtime"].events, monkeypatch, "session.cancelled", 1000)
        cancel = f"/v1/sessions/{chat['id']}/cancel"
        first = asyncio.ensure_future(client.post(cancel))
        assert await end_tried(address, chat["id"]) is not None
        second = asyncio.ensure_future(client.post(cancel))
        await updates_accepted(address, chat["id"], 2)
        left[0] = 0  # the database takes writes again
        answers = [await (await first).get_json(), await (await second).get_json()]
        assert [a["cancelled"] for a in answers] == [True, False]  # the second found the turn ending

        await wait_turns(client, chat["id"], timeout=15)
        await ended_once(client, chat["id"], posted["id"], "session.cancelled")
        after = await session(client, chat["id"])
        assert after["status"] == "pending" and after["last_error"] is None
        kept = (await messages(client, chat["id"]))[-1]
        assert kept["role"] == "assistant" and kept["content"]["text"] == "Hello "
        fake_llm.script(Text(["back"]))
        await say(client, chat["id"], "again")
        assert (await wait_turns(client, chat["id"], count=2))[-1]["type"] == "session.completed"
        assert (await workflow_run(address, chat["id"])).run_id == run_id


async def test_a_cancel_whose_step_cannot_keep_its_text_still_ends_cancelled(temporal_app, fake_llm, monkeypatch):
    """Reported: a cancelled model step keeps the text streamed so far; when the database
    refused that write, the step failed with it rather than as cancelled, and the turn
    ended `failed` (`database_unavailable`) although the client had cancelled it, and been
    told `cancelled: true`."""
    client = temporal_app.test_client()
    chat = await make_chat(client, fake_llm)
    fake_llm.script(Hang(["Hello "], seconds=30))
    posted = await say(client, chat["id"], "hi")
    await wait_for_event(client, chat["id"], "message.delta")
    left = refusing(temporal_app.extensions["runtime"].events, monkeypatch, "message.created", 1)
    answer = await (await client.post(f"/v1/sessions/{chat['id']}/cancel")).get_json()
    assert left == [0] and answer["cancelled"] is True and answer["status"] == "pending"
    cancelled = await ended_once(client, chat["id"], posted["id"], "session.cancelled")
    after = await session(client, chat["id"])
    assert after["status"] == "pending" and after["last_error"] is None
    # The kept text was stored, its announcement refused: the end of the turn announces it.
    kept = (await messages(client, chat["id"]))[-1]
    assert kept["role"] == "assistant" and kept["content"] == {"text": "Hello "}
    created = [e for e in await events(client, chat["id"]) if e["type"] == "message.created"]
    assert created[-1]["data"]["message_id"] == kept["id"] and created[-1]["sequence"] < cancelled["sequence"]


async def refused_past_the_retries(refused: list, temporal_address: str, session_id: str) -> None:
    """Until a read was refused more often than INFRA_RETRIES allows, or the session's
    workflow ended."""
    from temporalio.client import WorkflowExecutionStatus

    async with asyncio.timeout(20):
        while len(refused) <= workflows.INFRA_RETRIES.maximum_attempts:
            if (await workflow_run(temporal_address, session_id)).status != WorkflowExecutionStatus.RUNNING:
                return
            await asyncio.sleep(0.1)


async def test_a_message_to_an_idle_session_waits_for_the_database_to_start(temporal_settings, fake_llm,
                                                                            short_retries, monkeypatch):
    """A session's workflow ends when the session is idle; the next message starts a new
    one, which first reads the session's earlier messages (`earlier_messages`). Reported:
    with the database gone for longer than that read's retries, the new workflow failed
    and the message was never answered, with no terminal event. It now waits for the
    database and then answers the message."""
    from temporalio.client import Client

    from app.runtime.temporal.activities import TurnActivities

    refused: list = [None]
    refuse_activity(monkeypatch, TurnActivities, "earlier_messages", refused)
    monkeypatch.setattr(workflows, "IDLE_END", timedelta(seconds=1))
    async with temporal_app_serving(temporal_settings) as app:
        client = app.test_client()
        address = temporal_settings.temporal_address
        chat = await make_chat(client, fake_llm)
        await say(client, chat["id"], "first")  # the session's first message: nothing to read before it
        await wait_turns(client, chat["id"])
        idle = (await Client.connect(address)).get_workflow_handle(workflow_id(chat["id"]))
        await asyncio.wait_for(idle.result(), 10)  # idle: its workflow ends

        refused[0] = []
        posted = await say(client, chat["id"], "second")
        await refused_past_the_retries(refused[0], address, chat["id"])
        refused[0] = None  # the database is back
        log = await wait_turns(client, chat["id"], count=2, timeout=15)
        assert log[-1]["type"] == "session.completed" and log[-1]["data"]["message_id"] == posted["id"]
        assert (await session(client, chat["id"]))["status"] == "pending"


async def test_a_turn_waiting_for_an_approval_outlasts_a_database_gone_past_the_retries(
        temporal_settings, fake_llm, short_retries, monkeypatch):
    """A turn waiting for an approval also asks the database for answers now and then, in
    case a signal was lost (`still_waiting`, every ANSWER_POLL). Reported: with the
    database gone for longer than that read's retries, its error failed the session
    workflow. The session stayed `waiting_for_approval`, and the approval sent once the
    database was back was taken (200) but never acted on. A read that fails is now
    skipped, and the turn goes on waiting."""
    from app.runtime.temporal.activities import TurnActivities

    refused: list = [[]]
    refuse_activity(monkeypatch, TurnActivities, "still_waiting", refused)
    monkeypatch.setattr(workflows, "ANSWER_POLL", timedelta(seconds=1))
    async with temporal_app_serving(temporal_settings) as app:
        client = app.test_client()
        chat = await approval_chat(client, fake_llm)
        fake_llm.script(ToolCalls([("c1", "get_current_time", {})]), Text(["It is now."]))
        posted = await say(client, chat["id"], "time?")
        await waiting(client, chat["id"])
        await refused_past_the_retries(refused[0], temporal_settings.temporal_address, chat["id"])
        refused[0] = None  # the database is back
        approved = await client.post(f"/v1/sessions/{chat['id']}/tool-calls/c1/approve")
        assert approved.status_code == 200, await approved.get_json()
        await wait_turns(client, chat["id"], timeout=15)
        await ended_once(client, chat["id"], posted["id"], "session.completed")
        assert (await session(client, chat["id"]))["status"] == "pending"
