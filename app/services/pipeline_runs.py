"""Executing pipeline runs in this process.

Every step whose dependencies have completed starts at once (one asyncio task each), in
a new session of its agent; the run's stored `steps` are updated as each step starts
and ends, so status polling shows progress. A failed step fails the run; the steps that
depend on it (transitively) are skipped, independent ones still run.

Runs execute in background tasks of the runtime's `BackgroundTasks` (app/tasks.py), in a
group per pipeline: they outlive the request that started them, deleting the pipeline
stops its runs, and `Runtime.stop` stops them all at shutdown.
"""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from app.errors import ApiError, Conflict, ServiceUnavailable
from app.models import Message, Pipeline, PipelineRun
from app.models.enums import PipelineRunStatus
from app.runtime import pipeline_graph as graph
from app.services.sessions import create_session
from app.services.turns import start_turn
from app.timeutil import utcnow

if TYPE_CHECKING:
    from app.wiring import Runtime

log = logging.getLogger("app.pipelines")

STOP_WAIT_SECONDS = 5.0
PIPELINE_DELETED = "the pipeline was deleted"


def usage_dict(input_tokens: int = 0, output_tokens: int = 0) -> dict[str, int]:
    return {"input_tokens": input_tokens, "output_tokens": output_tokens, "total_tokens": input_tokens + output_tokens}


def describe_run(run: PipelineRun, pipeline_name: str) -> dict[str, Any]:
    """A run as the API shows it (run result, status, and the runs list share it)."""
    end = run.finished_at or utcnow()
    elapsed_ms = max(0, round((end - run.started_at).total_seconds() * 1000))
    return {
        "run_id": run.id, "pipeline": pipeline_name, "status": run.status, "steps": run.steps,
        "output": run.output, "usage": run.usage or usage_dict(), "started_at": run.started_at, "finished_at": run.finished_at,
        "elapsed_ms": elapsed_ms, "total_duration_ms": elapsed_ms,
    }


async def launch(runtime: Runtime, pipeline: Pipeline, run: PipelineRun) -> asyncio.Task:
    """Execute a stored run in a background task that outlives the request (or, in
    temporal mode, in a workflow on the workers); the task resolves with the finished
    run as `describe_run` shows it. In temporal mode the workflow is started before this
    returns: when Temporal does not take it, the run is deleted (the client is told it
    did not start; nothing would ever end it) and ServiceUnavailable is raised."""
    if runtime.settings.temporal:
        try:
            finished = await runtime.temporal_runner.start_pipeline_run(str(run.id))
        except ServiceUnavailable:
            await PipelineRun.filter(id=run.id).delete()
            raise
        run_it = _run_on_temporal(runtime, pipeline.name, run.id, finished)
    else:
        run_it = _RunExecution(runtime, pipeline, run).execute()
    return runtime.tasks.start(run_it, name=f"pipeline-run:{run.id}", group=_group(pipeline.id))


def _group(pipeline_id: uuid.UUID) -> tuple[str, uuid.UUID]:
    return ("pipeline-runs", pipeline_id)


async def _run_on_temporal(runtime: Runtime, pipeline_name: str, run_id: uuid.UUID,
                           workflow: asyncio.Task[bool]) -> dict[str, Any]:
    finished = await workflow
    run = await PipelineRun.get_or_none(id=run_id)
    if not finished or run is None:
        raise asyncio.CancelledError("the run was stopped")
    for entry in run.steps:  # counted here: the workers' own metrics are not scraped
        runtime.metrics.pipeline_steps.labels(entry["status"]).inc()
    return describe_run(run, pipeline_name)


async def running_run_ids(pipeline_id: uuid.UUID) -> list[uuid.UUID]:
    ids = await PipelineRun.filter(pipeline_id=pipeline_id, status=PipelineRunStatus.RUNNING).values_list("id", flat=True)
    return cast(list[uuid.UUID], ids)


async def stop_runs_of(runtime: Runtime, pipeline_id: uuid.UUID, reason: str) -> None:
    """Stop the pipeline's runs still going in this process (in temporal mode a DELETE
    cancels their workflows itself: app/services/pipelines.py)."""
    await runtime.tasks.stop(_group(pipeline_id), reason, STOP_WAIT_SECONDS)


async def wait_run(task: asyncio.Task) -> dict[str, Any]:
    """The finished run. The run does not end with the request: a client that goes away
    only stops waiting (shield); a run stopped meanwhile (pipeline deleted) is a 409."""
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if task.cancelled() and current is not None and not current.cancelling():
            raise Conflict("the run was stopped before it finished (the pipeline was deleted or the server is "
                           "shutting down)", code="run_stopped") from None
        raise


async def fail_interrupted_runs() -> int:
    """At start-up: a run still `running` lost its tasks when the server stopped."""
    runs = await PipelineRun.filter(status=PipelineRunStatus.RUNNING)
    for run in runs:
        for entry in run.steps:
            if entry["status"] == "running":  # when it stopped is not known: finished_at stays null
                entry.update(status="failed",
                             error={"code": "server_restarted", "message": "the server restarted while this step was running"})
            elif entry["status"] == "pending":
                entry["status"] = "skipped"
        await PipelineRun.filter(id=run.id).update(status=PipelineRunStatus.FAILED, steps=run.steps, output=None,
                                                   finished_at=utcnow())
    return len(runs)


@dataclass
class _RunExecution:
    runtime: Runtime
    pipeline: Pipeline
    run: PipelineRun
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    workers: dict[asyncio.Task, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.defs = {s["name"]: s for s in self.pipeline.steps}
        self.entries = {e["name"]: e for e in self.run.steps}

    async def execute(self) -> dict[str, Any]:
        if not await PipelineRun.exists(id=self.run.id):
            # Stored just before its pipeline was deleted, and launched after that delete
            # looked for runs to stop: it must not begin (delete_pipeline).
            raise asyncio.CancelledError(PIPELINE_DELETED)
        try:
            await self._run_graph()
        except asyncio.CancelledError as exc:
            reason = exc.args[0] if exc.args else "the run was cancelled"
            await asyncio.shield(self._abort(reason))
            raise
        except Exception:
            log.exception("pipeline run %s failed unexpectedly", self.run.id)
            await self._abort("internal error while running the pipeline; see the server log", "internal_error")
        return describe_run(self.run, self.pipeline.name)

    async def _run_graph(self) -> None:
        schedule = graph.Schedule(self.defs, self.entries)
        while True:
            for name in schedule.ready():
                self.entries[name]["status"] = "running"
                self.workers[asyncio.create_task(self._run_step(self.defs[name]), name=f"pipeline-step:{name}")] = name
            if not self.workers:
                break
            done, _ = await asyncio.wait(self.workers, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()  # _run_step handles its own errors
                schedule.done(self.workers.pop(task))
        await self._finish()

    async def _run_step(self, step: dict[str, Any]) -> None:
        entry = self.entries[step["name"]]
        entry["started_at"] = utcnow().isoformat()
        started = time.monotonic()
        await self._save()
        try:
            session = await create_session(self.runtime.events, step["agent"],
                                           {"title": f"{self.pipeline.name} / {step['name']}"})
            entry["session_id"] = session.id
            await self._save()
            text = graph.input_for(step, self.entries, self.run.input)
            _, future = await start_turn(self.runtime, session, text, require_variables=False)
            outcome = await future
        except asyncio.CancelledError:
            raise
        except ApiError as exc:  # the agent is gone, archived or ambiguous now
            self._end(entry, started, "failed", error={"code": exc.code, "message": exc.message})
        except Exception:
            log.exception("pipeline run %s: step '%s' crashed", self.run.id, step["name"])
            self._end(entry, started, "failed",
                      error={"code": "internal_error", "message": "internal error while running the step; see the server log"})
        else:
            graph.step_result(entry, outcome.status, outcome.output, outcome.usage, outcome.error, utcnow().isoformat(),
                              _ms_since(started))
        await self._save()

    @staticmethod
    def _end(entry: dict[str, Any], started: float, status: str, *, output: str | None = None,
             error: dict[str, str] | None = None) -> None:
        graph.end_step(entry, status, utcnow().isoformat(), _ms_since(started), output=output, error=error)

    async def _save(self, **fields: Any) -> None:
        """Write the run's progress. Serialised, so the last write holds the latest state;
        an update (not save) so a run whose pipeline was deleted meanwhile writes nothing."""
        async with self.lock:
            self.run.usage = graph.total_usage(self.entries)
            await PipelineRun.filter(id=self.run.id).update(steps=copy.deepcopy(self.run.steps), usage=self.run.usage,
                                                            **fields)

    async def _finish(self) -> None:
        status, self.run.output = graph.conclude(self.defs, self.entries)
        self.run.status = PipelineRunStatus(status)
        self.run.finished_at = utcnow()
        await self._save(status=self.run.status, output=self.run.output, finished_at=self.run.finished_at)
        for entry in self.run.steps:
            self.runtime.metrics.pipeline_steps.labels(entry["status"]).inc()

    async def _abort(self, reason: str, code: str = "cancelled") -> None:
        """Stop the steps still running (and their turns); the run ends failed."""
        workers = list(self.workers)
        for task in workers:
            task.cancel()
        for entry in self.run.steps:
            if entry["status"] == "running" and entry["session_id"]:
                await self.runtime.runner.cancel(entry["session_id"], reason)
        if workers:
            await asyncio.wait(workers, timeout=STOP_WAIT_SECONDS)
        self.workers.clear()
        try:
            await self._keep_partial_texts()
            graph.abort_entries(self.entries, code, reason, utcnow().isoformat(), duration_so_far)
            await self._finish()
        except Exception:  # e.g. the database is already gone
            log.exception("pipeline run %s: could not record its end", self.run.id)

    async def _keep_partial_texts(self) -> None:
        """A stopped step's `output` is the text its turn had streamed, as for a step whose
        turn is cancelled through its session: the cancel above made the turn store it
        in the step's session, whose only turn this step is, but the step's task was
        cancelled before it could read its turn's outcome."""
        for entry in self.run.steps:
            if entry["status"] == "running" and entry["session_id"]:
                last = await Message.filter(session_id=entry["session_id"], role="assistant").order_by("-sequence").first()
                entry["output"] = (last.content.get("text") or None) if last is not None else None


def _ms_since(started: float) -> int:
    return round((time.monotonic() - started) * 1000)


def duration_so_far(entry: dict[str, Any]) -> int | None:
    """A running step's duration until now, from its stored start."""
    if not entry["started_at"]:
        return None
    return round((utcnow() - dt.datetime.fromisoformat(entry["started_at"])).total_seconds() * 1000)
