"""Pipeline runs on Temporal: a PipelineRunWorkflow per run schedules the graph (the same
rules as in process, app/runtime/pipeline_graph.py), and each step is an activity
that opens a session of the step's agent and has its session workflow answer the input.
A run survives restarts of API processes and workers like any turn does.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError

with workflow.unsafe.imports_passed_through():
    from app.runtime import pipeline_graph as graph
    from app.runtime.temporal.types import (
        DATABASE_UNAVAILABLE,
        PipelineStep,
        PipelineStepOutcome,
        RunPlan,
        RunProgress,
    )

from app.runtime.temporal.workflows import END_RETRIES, HEARTBEAT_TIMEOUT, INFRA_RETRIES, SHORT_TIMEOUT, record_end

STEP_TIMEOUT = timedelta(hours=2)


@workflow.defn
class PipelineRunWorkflow:
    @workflow.run
    async def run(self, run_id: str) -> str:
        # Read until the database answers (END_RETRIES): given up, the workflow would fail
        # and the run would stay `running` for good, as would one whose end is given up.
        plan: RunPlan | None = await workflow.execute_activity(
            "load_pipeline_run", run_id, result_type=RunPlan | None,  # type: ignore[arg-type]  # the converter takes unions
            start_to_close_timeout=SHORT_TIMEOUT, retry_policy=END_RETRIES)
        if plan is None:  # deleted with its pipeline before this began (services/pipelines.py)
            return "stopped"
        self.run_id, self.plan = run_id, plan
        self.defs = {s["name"]: s for s in plan.steps}
        self.entries = {e["name"]: e for e in plan.entries}
        steps: dict[asyncio.Task, str] = {}
        schedule = graph.Schedule(self.defs, self.entries)
        try:
            while True:
                for name in schedule.ready():
                    self.entries[name].update(status="running", started_at=self._now(), session_id=str(workflow.uuid4()))
                    steps[asyncio.create_task(self._step(name))] = name
                await self._save()
                if not steps:
                    break
                done, _ = await workflow.wait(list(steps), return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    name = steps.pop(task)
                    self._record(name, task.result())
                    schedule.done(name)
            status, output = graph.conclude(self.defs, self.entries)
            await self._save(status, output)
            return status
        except asyncio.CancelledError:
            for task in steps:
                task.cancel()
            if steps:
                await workflow.wait(list(steps))
            graph.abort_entries(self.entries, "cancelled", "the run was stopped (the pipeline was deleted)",
                                self._now(), self._duration_so_far)
            await self._save(*graph.conclude(self.defs, self.entries))
            raise

    async def _step(self, name: str) -> PipelineStepOutcome:
        step, entry = self.defs[name], self.entries[name]
        request = PipelineStep(self.run_id, name, step["agent"], graph.input_for(step, self.entries, self.plan.input),
                               f"{self.plan.pipeline_name} / {name}", entry["session_id"], str(workflow.uuid4()),
                               self.plan.owner_id)
        try:
            return await workflow.execute_activity(
                "pipeline_step", request, result_type=PipelineStepOutcome, start_to_close_timeout=STEP_TIMEOUT,
                heartbeat_timeout=HEARTBEAT_TIMEOUT, retry_policy=INFRA_RETRIES,
                cancellation_type=workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED)
        except ActivityError as exc:  # retries exhausted, or refused (the agent is gone)
            cause = exc.cause
            if isinstance(cause, ApplicationError) and cause.non_retryable:
                return PipelineStepOutcome("failed", error={"code": cause.type or "internal_error", "message": cause.message})
            if isinstance(cause, ApplicationError) and cause.type == DATABASE_UNAVAILABLE:  # retries used up
                return PipelineStepOutcome("failed", error={
                    "code": DATABASE_UNAVAILABLE, "message": f"the step stopped because {cause.message}; run the pipeline again"})
            return PipelineStepOutcome("failed", error={"code": "internal_error",
                                                        "message": "the step could not be run on the workers; see their logs"})

    def _record(self, name: str, outcome: PipelineStepOutcome) -> None:
        entry = self.entries[name]
        graph.step_result(entry, outcome.status, outcome.output, outcome.usage, outcome.error, self._now(),
                          self._duration_so_far(entry))

    async def _save(self, status: str | None = None, output: str | None = None) -> None:
        """Write the run's progress, or its end (`status`). The end is tried until the
        database takes it: given up, the run would stay `running` for good (record_end:
        a failure not the database's has bounded tries, then a fallback end). Progress that
        the database refuses past its retries is skipped: each save writes every step,
        so the next one (the end at the latest) brings it up to date."""
        progress = RunProgress(self.run_id, [self.entries[name] for name in self.defs], status, output)
        if status is not None:  # an end that cannot be written (not for the database) still ends the run, failed
            if not await record_end("save_pipeline_run", progress) and not await record_end("fallback_run_end",
                                                                                            self.run_id):
                workflow.logger.error("pipeline run %s: neither its end nor the fallback end could be written; "
                                      "see the workers' log", self.run_id)
            return
        try:
            await workflow.execute_activity("save_pipeline_run", progress, start_to_close_timeout=SHORT_TIMEOUT,
                                            retry_policy=INFRA_RETRIES)
        except ActivityError as exc:
            if isinstance(exc.cause, CancelledError):  # the run was stopped meanwhile
                raise asyncio.CancelledError from exc
            workflow.logger.warning("pipeline run %s: its progress was not saved, the next save brings it: %s",
                                    self.run_id, exc.cause)

    @staticmethod
    def _now() -> str:
        return workflow.now().isoformat()

    @staticmethod
    def _duration_so_far(entry: dict) -> int | None:
        if not entry.get("started_at"):
            return None
        from datetime import datetime

        return round((workflow.now() - datetime.fromisoformat(entry["started_at"])).total_seconds() * 1000)
