"""Pipeline runs on Temporal (app/runtime/temporal/pipelines.py) when the database or
Temporal itself is gone: a run always ends with a stored status, never stays `running`;
one that Temporal cannot take is a 503 and is not kept.

A database fault is an activity refusing, as a database that went away does (app/db.py
DatabaseUnavailable); `short_retries` (tests/conftest.py) makes an outage outlast the
activities' retries in seconds."""

from __future__ import annotations

import asyncio
import time

from app.main import create_app
from app.runtime.temporal import workflows
from app.runtime.temporal.pipeline_activities import PipelineActivities
from app.runtime.temporal.types import PipelineStep, RunProgress, pipeline_workflow_id
from tests.conftest import temporal_app_serving
from tests.fakes import Hang, Text
from tests.helpers import make_chat, refuse_activity, session, until
from tests.tcp_proxy import TcpProxy


async def one_step_pipeline(client, fake_llm) -> None:
    await make_chat(client, fake_llm)  # the fake provider, its model and the agent "Helper"
    response = await client.post("/v1/pipelines", json={"name": "flow", "steps": [{"name": "A", "agent": "Helper"}]})
    assert response.status_code == 201, await response.get_json()


async def start(client) -> str:
    response = await client.post("/v1/pipelines/flow/run", json={"input": "the topic", "wait": False})
    assert response.status_code == 202, await response.get_json()
    return (await response.get_json())["run_id"]


async def run_status(client, run_id: str) -> dict:
    response = await client.get(f"/v1/pipelines/flow/status?run_id={run_id}")
    assert response.status_code == 200, await response.get_json()
    return await response.get_json()


async def ended(client, run_id: str, timeout: float = 15) -> dict:
    """The run once its status is no longer `running` (the test fails if it stays so)."""
    async def has_ended() -> bool:
        return (await run_status(client, run_id))["status"] != "running"

    await until(has_ended, timeout)
    return await run_status(client, run_id)


async def refused_past_the_retries(refused, temporal_address: str, run_id: str) -> None:
    """Until `refused()` (a count of refused calls) is more than INFRA_RETRIES allows, or
    the run's workflow ended."""
    from temporalio.client import Client, WorkflowExecutionStatus
    from temporalio.service import RPCError

    handle = (await Client.connect(temporal_address)).get_workflow_handle(pipeline_workflow_id(run_id))
    async with asyncio.timeout(20):
        while refused() <= workflows.INFRA_RETRIES.maximum_attempts:
            try:
                if (await handle.describe()).status != WorkflowExecutionStatus.RUNNING:
                    return
            except RPCError:  # not started yet
                pass
            await asyncio.sleep(0.1)



async def test_a_run_whose_database_is_gone_past_the_retries_ends_failed_once_it_is_back(
        temporal_settings, fake_llm, short_retries, monkeypatch):
    """Reported: with the database gone for longer than the activities' retries, the step
    failed, and so did saving the run's progress: the PipelineRunWorkflow failed and the
    run stayed `running` for good. The run now ends `failed`, its step failed with
    `database_unavailable`, once the database is back: its end is tried until the
    database takes it."""
    refused: list = []
    box: list = [refused]
    refuse_activity(monkeypatch, PipelineActivities, "pipeline_step", box)
    refuse_activity(monkeypatch, PipelineActivities, "save_pipeline_run", box)
    async with temporal_app_serving(temporal_settings) as app:
        client = app.test_client()
        await one_step_pipeline(client, fake_llm)
        run_id = await start(client)
        # The step's attempts, then the run's end (its final save) past as many.
        await refused_past_the_retries(lambda: sum(isinstance(r, RunProgress) and r.status is not None
                                                   for r in refused), temporal_settings.temporal_address, run_id)
        box[0] = None  # the database is back

        run = await ended(client, run_id)
        assert run["status"] == "failed" and run["finished_at"] is not None
        (step,) = run["steps"]
        assert step["status"] == "failed" and step["output"] is None and step["finished_at"] is not None
        assert step["error"]["code"] == "database_unavailable"
        assert step["error"]["message"] == ("the step stopped because the database was unavailable "
                                            "(connection refused or lost); run the pipeline again")
        assert sum(isinstance(r, PipelineStep) for r in refused) == workflows.INFRA_RETRIES.maximum_attempts
        assert fake_llm.requests == []  # the step never reached its turn


async def test_a_run_whose_start_the_database_refuses_past_the_retries_runs_once_it_is_back(
        temporal_settings, fake_llm, short_retries, monkeypatch):
    """Reported: the run's workflow first reads the run (`load_pipeline_run`). With the
    database gone for longer than that read's retries, the workflow failed and the run
    stayed `running` for good, never started. It now waits for the database."""
    refused: list = []
    box: list = [refused]
    refuse_activity(monkeypatch, PipelineActivities, "load_pipeline_run", box)
    async with temporal_app_serving(temporal_settings) as app:
        client = app.test_client()
        await one_step_pipeline(client, fake_llm)
        fake_llm.script(Text(["done"]))
        run_id = await start(client)
        await refused_past_the_retries(lambda: len(refused), temporal_settings.temporal_address, run_id)
        box[0] = None  # the database is back
        run = await ended(client, run_id)
        assert run["status"] == "completed" and run["output"] == "done"
        assert len(refused) > workflows.INFRA_RETRIES.maximum_attempts


async def test_a_run_started_while_temporal_is_down_is_a_503_in_seconds_and_not_kept(temporal_settings,
                                                                                     temporal_server, fake_llm):
    """Reported: a run's workflow was started in a background task, after the answer,
    with the SDK's 10 s of retries. With Temporal down, `wait: false` answered 202 and the
    run stayed `running` for good; `wait: true` answered 500 `internal_error`. Both now
    answer 503 `runner_unavailable` within about 1.5 s, as a message does (decision
    193), and the run is not kept: the client was told it did not start."""
    with TcpProxy("127.0.0.1", temporal_server.port) as proxy:
        app = create_app(temporal_settings.replace(temporal_address=f"127.0.0.1:{proxy.port}"))
        async with app.test_app():
            client = app.test_client()
            await one_step_pipeline(client, fake_llm)
            first = await start(client)  # connected; its workflow waits for a worker
            proxy.refuse()  # Temporal goes away
            for wait in (False, True):
                started = time.monotonic()
                response = await client.post("/v1/pipelines/flow/run", json={"input": "the topic", "wait": wait})
                took, body = time.monotonic() - started, await response.get_json()
                assert response.status_code == 503 and body["error"]["code"] == "runner_unavailable", (wait, body)
                assert body["error"]["message"] == "the runner (Temporal) cannot be reached; try again"
                assert took < 2.5, f"the 503 took {took:.1f} s"
            runs = await (await client.get("/v1/pipelines/flow/runs")).get_json()
            assert runs["total"] == 1 and [r["run_id"] for r in runs["data"]] == [first]
            assert fake_llm.requests == []


async def test_a_caller_waiting_for_a_run_outlasts_temporal_going_away(temporal_settings, temporal_server, fake_llm):
    """Reported: with `wait: true`, Temporal going away while the run went on made the
    wait fail after the SDK's ~10 s of retries: a 500 `internal_error` and an ERROR
    traceback, though the run itself went on in Temporal. The caller now waits on, and
    gets the run once Temporal is back."""
    with TcpProxy("127.0.0.1", temporal_server.port) as proxy:
        settings = temporal_settings.replace(temporal_address=f"127.0.0.1:{proxy.port}")
        async with temporal_app_serving(settings, worker_address=temporal_settings.temporal_address) as app:
            client = app.test_client()
            await one_step_pipeline(client, fake_llm)
            fake_llm.script(Text(["slow ", "answer"], delay=1.0))
            waiting = asyncio.ensure_future(client.post("/v1/pipelines/flow/run",
                                                        json={"input": "the topic", "wait": True}))
            await until(lambda: bool(fake_llm.requests))  # the step runs on the worker
            proxy.refuse()  # the API's Temporal goes away; the worker's stays
            await asyncio.sleep(12)  # past the SDK's retries of the API's wait
            assert not waiting.done() or (await waiting).status_code == 200, await (await waiting).get_json()
            proxy.forward()
            response = await asyncio.wait_for(waiting, 20)
            body = await response.get_json()
            assert response.status_code == 200 and body["status"] == "completed", body
            assert body["output"] == "slow answer"


async def test_a_delete_while_temporal_is_down_is_a_503_in_seconds_and_deletes_nothing(temporal_settings,
                                                                                      temporal_server, fake_llm):
    """Reported: with Temporal unreachable, a DELETE of a pipeline with a run going
    deleted the rows, then tried to cancel the run's workflow for the SDK's 10 s and
    answered 500; the run went on once Temporal was back, for a pipeline that no longer
    existed. The runs' workflows are now cancelled before the delete is committed: the
    DELETE answers 503 `runner_unavailable` in about 1.5 s, as a message does, and
    nothing is deleted, so that the client can send it again."""
    with TcpProxy("127.0.0.1", temporal_server.port) as proxy:
        settings = temporal_settings.replace(temporal_address=f"127.0.0.1:{proxy.port}")
        async with temporal_app_serving(settings, worker_address=temporal_settings.temporal_address) as app:
            client = app.test_client()
            await one_step_pipeline(client, fake_llm)
            fake_llm.script(Hang(["..."], seconds=30))
            run_id = await start(client)
            await until(lambda: bool(fake_llm.requests))  # its step's turn runs on the worker
            (step,) = (await run_status(client, run_id))["steps"]

            proxy.refuse()  # the API's Temporal goes away
            started = time.monotonic()
            response = await client.delete("/v1/pipelines/flow")
            took, body = time.monotonic() - started, await response.get_json()
            assert response.status_code == 503 and body["error"]["code"] == "runner_unavailable", body
            assert body["error"]["message"] == "the runner (Temporal) cannot be reached; try again"
            assert took < 2.5, f"the 503 took {took:.1f} s"
            assert (await client.get("/v1/pipelines/flow")).status_code == 200  # nothing deleted
            assert (await run_status(client, run_id))["status"] == "running"
            assert (await session(client, step["session_id"]))["status"] == "running"

            proxy.forward()  # Temporal is back: the client sends the DELETE again
            assert (await client.delete("/v1/pipelines/flow")).status_code == 204
            assert (await client.get("/v1/pipelines/flow")).status_code == 404
            assert (await session(client, step["session_id"]))["status"] == "pending"  # its turn was cancelled
            assert len(fake_llm.requests) == 1


async def test_a_run_whose_workflow_starts_during_a_delete_never_begins(temporal_settings, fake_llm, monkeypatch):
    """A DELETE cancels its runs' workflows before it commits (so that a 503 deletes
    nothing). A `/run` that stored its run just before the DELETE may start its workflow
    after that cancel (which found none), while the delete is not committed yet: that
    workflow's first read waits for the DELETE, finds its run gone, and ends without a
    step. The window is held open here: the run's start waits for the DELETE's cancel,
    and the DELETE waits for the workflow to read its run."""
    from temporalio.api.enums.v1 import PendingActivityState
    from temporalio.client import Client

    async with temporal_app_serving(temporal_settings) as app:
        client = app.test_client()
        await one_step_pipeline(client, fake_llm)
        fake_llm.script(Text(["done"]))
        runner = app.extensions["runtime"].temporal_runner
        start_run, cancel_runs = runner.start_pipeline_run, runner.cancel_pipeline_runs
        stored, cancelled, started = asyncio.Event(), asyncio.Event(), []

        async def start_after_the_cancel(run_id):  # the run is stored; its workflow not started yet
            started.append(run_id)
            stored.set()
            await cancelled.wait()
            return await start_run(run_id)

        async def cancel_then_let_the_run_read(run_ids):
            await cancel_runs(run_ids)
            assert run_ids == started  # the run was found: its cancel found no workflow
            cancelled.set()
            handle = (await Client.connect(temporal_settings.temporal_address)).get_workflow_handle(
                pipeline_workflow_id(run_ids[0]))

            async def reading() -> bool:  # its first read runs (waits on the DELETE, once fixed)
                try:
                    pending = (await handle.describe()).raw_description.pending_activities
                except Exception:  # not started yet
                    return False
                return any(p.activity_type.name != "load_pipeline_run"
                           or p.state == PendingActivityState.PENDING_ACTIVITY_STATE_STARTED for p in pending)

            await until(reading)
            await asyncio.sleep(0.5)  # a read not held by the DELETE would be over by now

        monkeypatch.setattr(runner, "start_pipeline_run", start_after_the_cancel)
        monkeypatch.setattr(runner, "cancel_pipeline_runs", cancel_then_let_the_run_read)
        running = asyncio.ensure_future(client.post("/v1/pipelines/flow/run", json={"input": "x", "wait": True}))
        await asyncio.wait_for(stored.wait(), 10)
        assert (await client.delete("/v1/pipelines/flow")).status_code == 204
        response = await asyncio.wait_for(running, 15)
        body = await response.get_json()
        assert response.status_code == 409 and body["error"]["code"] == "run_stopped", body
        await asyncio.sleep(1)  # a step that began would have asked the provider by now
        assert fake_llm.requests == []
