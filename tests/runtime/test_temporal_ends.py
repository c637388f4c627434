"""Temporal mode: a turn's end, or a pipeline run's, that fails for another reason than
the database (a bug, a bad value in the write) is tried a bounded number of times, and
then the turn or run still ends, once, through a fallback end. A database outage keeps
being retried without limit (tests/runtime/test_temporal_database.py).

The fault is the end's write raising TypeError, as a bug in it would, on a real worker.
`short_retries` (tests/conftest.py) makes the bounded tries take a fraction of a second."""

from __future__ import annotations

import time

from app.runtime.temporal import pipeline_activities, workflows
from app.runtime.temporal.activities import TurnActivities
from tests.conftest import temporal_app_serving
from tests.fakes import Error, Text
from tests.helpers import make_chat, say, session, wait_turns
from tests.runtime.test_temporal_database import ended_once
from tests.runtime.test_temporal_pipelines import ended, one_step_pipeline, start

# A bounded end: INFRA_RETRIES' tries (3 with short_retries), then the fallback. Seconds,
# with the dev server's timers; before the fix the end was tried for good.
ENDS_WITHIN = 20


async def test_a_turn_whose_end_fails_with_a_bug_still_ends_once(temporal_settings, fake_llm, short_retries,
                                                                 monkeypatch):
    """Reported: a turn's end (`finish_turn`) was retried without limit on any error, so
    that a database outage could not lose it. A bug in it was retried for good too: the
    session stayed `running` with no terminal event, and its workflow took no further
    message. A failure that is not the database's now has INFRA_RETRIES' tries; then the
    turn ends `failed` (`internal_error`) with one terminal event, as in process, and the
    session's next message runs normally."""
    tried: list = []

    async def broken_end(self, finish):  # a bug in the end's write
        tried.append(finish)
        raise TypeError("unsupported operand type(s) for +: 'int' and 'NoneType'")

    monkeypatch.setattr(TurnActivities, "_finish_turn", broken_end)
    async with temporal_app_serving(temporal_settings) as app:
        client = app.test_client()
        chat = await make_chat(client, fake_llm)
        fake_llm.script(Error(400, "bad request"))  # the turn fails: its end is finish_turn's
        began = time.monotonic()
        posted = await say(client, chat["id"], "hi")
        await wait_turns(client, chat["id"], timeout=ENDS_WITHIN)
        took = time.monotonic() - began

        failed = await ended_once(client, chat["id"], posted["id"], "session.failed")
        assert failed["data"]["code"] == "internal_error"
        assert failed["data"]["error"] == "internal error while recording the end of the turn; see the workers' log"
        after = await session(client, chat["id"])
        assert after["status"] == "failed" and after["last_error"] == failed["data"]["error"]
        assert len(tried) == workflows.INFRA_RETRIES.maximum_attempts, took

        fake_llm.script(Text(["back"]))  # the session's workflow takes the next message
        again = await say(client, chat["id"], "again")
        log = await wait_turns(client, chat["id"], count=2)
        assert log[-1]["type"] == "session.completed" and log[-1]["data"]["message_id"] == again["id"]
        assert (await session(client, chat["id"]))["status"] == "pending"


async def test_a_pipeline_run_whose_end_fails_with_a_bug_still_ends(temporal_settings, fake_llm, short_retries,
                                                                    monkeypatch):
    """Reported with the turn's: a run's end (`save_pipeline_run` with its status) was
    retried for good on a bug, and the run stayed `running`. It now ends `failed` after
    INFRA_RETRIES' tries, its steps as they were last saved, and the next run is not
    held up."""
    tried: list = []
    write = pipeline_activities.write_run

    async def broken_end(progress):
        if progress.status is None:  # progress saves work; the end's write has a bug
            return await write(progress)
        tried.append(progress)
        raise TypeError("Object of type Decimal is not JSON serializable")

    monkeypatch.setattr(pipeline_activities, "write_run", broken_end)
    async with temporal_app_serving(temporal_settings) as app:
        client = app.test_client()
        await one_step_pipeline(client, fake_llm)
        fake_llm.script(Text(["done"]), Text(["again"]))
        run = await ended(client, await start(client), timeout=ENDS_WITHIN)
        assert run["status"] == "failed" and run["finished_at"] is not None and run["output"] is None
        (step,) = run["steps"]
        assert step["status"] == "completed" and step["output"] == "done"  # as last saved
        assert len(tried) == workflows.INFRA_RETRIES.maximum_attempts

        monkeypatch.setattr(pipeline_activities, "write_run", write)
        run = await ended(client, await start(client))
        assert run["status"] == "completed" and run["output"] == "again"
