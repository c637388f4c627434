"""The pipeline run workflow's activities: read the run, run one step, save progress.

A step opens its session and stores its input under ids the workflow chose, so a step
retried after a worker died finds them and waits for the same turn instead of starting
another one.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError
from tortoise.transactions import in_transaction

from app.auth.principal import ANONYMOUS_ADMIN, SCOPES, USER_SCOPES, Principal, set_principal
from app.errors import ApiError
from app.events.log import EventLog
from app.events.messages import record_message
from app.models import Agent, Message, Pipeline, PipelineRun, Session, User
from app.models.enums import UserRole
from app.runtime import pipeline_graph as graph
from app.runtime.outcome import await_outcome
from app.runtime.temporal.activities import bounded_end, heartbeating
from app.runtime.temporal.types import (
    PipelineStep,
    PipelineStepOutcome,
    RunPlan,
    RunProgress,
    SessionState,
    TurnRequest,
    workflow_id,
)
from app.timeutil import utcnow

# Looks an active agent up by id or name, as its owner would (raises ApiError if none).
FindAgent = Callable[[str], Awaitable[Agent]]


class PipelineActivities:
    def __init__(self, events: EventLog, find_agent: FindAgent):
        self.events = events
        self.find_agent = find_agent

    @activity.defn(name="load_pipeline_run")
    async def load_pipeline_run(self, run_id: str) -> RunPlan | None:
        """None: the run was deleted with its pipeline before its workflow began. A DELETE
        of the pipeline going on is waited for: it may have asked Temporal to cancel this
        workflow before it was started, and its delete is not committed yet
        (services/pipelines.py `_delete_with_runs` holds the pipeline's row): read before
        that commit, the run would go on after it."""
        found = await PipelineRun.get_or_none(id=run_id)
        if found is None:
            return None
        async with in_transaction():
            # FOR NO KEY UPDATE: waits for the DELETE's FOR UPDATE, not for runs being stored.
            pipeline = await Pipeline.filter(id=found.pipeline_id).select_for_update(no_key=True).first()
            run = await PipelineRun.get_or_none(id=run_id)
        if pipeline is None or run is None:
            return None
        return RunPlan(pipeline.name, pipeline.steps, run.steps, run.input, str(run.owner_id) if run.owner_id else None)

    @activity.defn(name="save_pipeline_run")
    async def save_pipeline_run(self, progress: RunProgress) -> None:
        if progress.status is None:  # progress: a save that fails is skipped (PipelineRunWorkflow._save)
            await write_run(progress)
            return
        with bounded_end(f"the end of pipeline run {progress.run_id}"):
            await write_run(progress)

    @activity.defn(name="pipeline_step")
    async def pipeline_step(self, step: PipelineStep) -> PipelineStepOutcome:
        await _act_as(step.owner_id)
        async with heartbeating():
            if not await Session.exists(id=step.session_id):
                try:
                    agent = await self.find_agent(step.agent)
                except ApiError as exc:  # the agent is gone, archived or ambiguous now
                    raise ApplicationError(exc.message, type=exc.code, non_retryable=True) from None
                await Session.create(id=step.session_id, agent=agent, owner_id=step.owner_id, title=step.title)
                self.events.notify_session("session_created", step.session_id)
            message = await Message.get_or_none(id=step.message_id)
            if message is None:
                message = await record_message(self.events, step.session_id, "user", {"text": step.text},
                                               message_id=uuid.UUID(step.message_id))
            subscription = self.events.bus.subscribe(step.session_id)  # before the turn can end
            try:
                await activity.client().start_workflow(
                    "SessionWorkflow", SessionState(step.session_id), id=workflow_id(step.session_id),
                    task_queue=activity.info().task_queue, start_signal="submit",
                    start_signal_args=[TurnRequest(step.message_id, None, message.sequence)])
            except BaseException:
                subscription.close()
                raise
            try:
                outcome = await await_outcome(subscription, step.session_id, step.message_id, poll_seconds=1.0,
                                              after=message.sequence)
            except BaseException:
                details = activity.cancellation_details()
                if details is not None and details.cancel_requested:  # the run was stopped: so is its turn
                    handle = activity.client().get_workflow_handle(workflow_id(step.session_id))
                    await handle.execute_update("cancel", "the pipeline run was stopped", result_type=bool)
                raise
        return PipelineStepOutcome(outcome.status, outcome.output, outcome.usage, outcome.error)

    def all(self) -> list:
        return [self.load_pipeline_run, self.save_pipeline_run, self.pipeline_step]


async def write_run(progress: RunProgress) -> None:
    """An update, not a save: a run whose pipeline was deleted meanwhile writes nothing."""
    fields: dict[str, Any] = {"steps": progress.entries,
                              "usage": graph.total_usage({e["name"]: e for e in progress.entries})}
    if progress.status is not None:
        fields.update(status=progress.status, output=progress.output, finished_at=utcnow())
    await PipelineRun.filter(id=progress.run_id).update(**fields)


async def _act_as(owner_id: str | None) -> None:
    """Look agents up as the run's owner would (their agents, or all for an admin)."""
    if owner_id is None:
        set_principal(ANONYMOUS_ADMIN)
        return
    user = await User.get_or_none(id=owner_id)
    admin = user is not None and user.role == UserRole.ADMIN
    set_principal(Principal(uuid.UUID(owner_id), UserRole.ADMIN if admin else UserRole.USER,
                            frozenset(SCOPES) if admin else USER_SCOPES, "worker"))
