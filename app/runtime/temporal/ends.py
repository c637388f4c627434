"""The fallback ends: what a workflow writes when the activity recording a turn's end
(`finish_turn`) or a pipeline run's (`save_pipeline_run` with its status) failed other
than on the database past its bounded tries (END_FAILED, workflows.py `record_end`).
No session or run stays `running` for good: the least that ends it is written, with
none of the code or values the failed end used, and retried like any end while the
database is gone (END_RETRIES).
"""

from __future__ import annotations

import logging

from temporalio import activity

from app.db import DatabaseUnavailable
from app.errors import SessionGone
from app.events.log import EventLog
from app.metrics import Metrics
from app.models import Message, PipelineRun, Session
from app.models.enums import PipelineRunStatus, SessionStatus
from app.runtime import waits
from app.runtime.outcome import find_terminal
from app.runtime.temporal.activities import bounded_end, ends_if_deleted
from app.runtime.temporal.types import FinishInput
from app.timeutil import utcnow

log = logging.getLogger("app.runtime.temporal")

# The in-process runner's internal error (app/runtime/turn.py) says "see the server log".
TURN_END_FAILED = "internal error while recording the end of the turn; see the workers' log"
RUN_END_FAILED = {"code": "internal_error",
                  "message": "internal error while recording the end of the run; see the workers' log"}


class FallbackEnds:
    def __init__(self, events: EventLog, metrics: Metrics):
        self.events = events
        self.metrics = metrics

    @activity.defn(name="fallback_turn_end")
    async def fallback_turn_end(self, finish: FinishInput) -> None:
        """The turn ends `failed` with `internal_error`, one `session.failed`, as a turn
        that fails on an internal error in process; unless the failed end got as far as
        its terminal event (it writes the status first), so readers see one end."""
        sid = finish.session_id
        with bounded_end(f"the fallback end of the turn in session {sid}"), ends_if_deleted(sid):
            if finish.message_id is None:  # a cancel that dropped queued messages: their waiters learn it
                if finish.dropped and await find_terminal(sid, finish.dropped[0]) is None:
                    await self.events.append(sid, "session.cancelled", {
                        "reason": finish.message, "message_id": None, "dropped_message_ids": finish.dropped})
                return
            message = await Message.get_or_none(id=finish.message_id)
            if message is None:  # deleted with its session
                raise SessionGone(sid)
            if await find_terminal(sid, finish.message_id, message.sequence) is not None:
                return
            try:
                await waits.cancel_open(sid)  # calls still waiting can no longer be answered
            except DatabaseUnavailable:
                raise
            except Exception:  # the end matters more than these
                log.exception("session %s: the waiting tool calls of its turn could not be cancelled", sid)
            await Session.filter(id=sid).update(status=SessionStatus.FAILED, last_error=TURN_END_FAILED,
                                                updated_at=utcnow())
            self.events.notify_session("session_updated", sid)
            await self.events.append(sid, "session.failed", {"error": TURN_END_FAILED, "code": "internal_error",
                                                             "message_id": finish.message_id})
        self.metrics.turns.labels("failed").inc()
        self.metrics.errors.labels("turn", "internal_error").inc()

    @activity.defn(name="fallback_run_end")
    async def fallback_run_end(self, run_id: str) -> None:
        """The run ends `failed`, its steps as last saved: one still running failed (its
        outcome was in the end that could not be written), one pending skipped."""
        with bounded_end(f"the fallback end of pipeline run {run_id}"):
            run = await PipelineRun.get_or_none(id=run_id)
            if run is None or run.status != PipelineRunStatus.RUNNING:  # deleted, or ended after all
                return
            for entry in run.steps:
                if entry.get("status") == "running":
                    entry.update(status="failed", error=dict(RUN_END_FAILED))
                elif entry.get("status") == "pending":
                    entry["status"] = "skipped"
            await PipelineRun.filter(id=run_id, status=PipelineRunStatus.RUNNING).update(
                status=PipelineRunStatus.FAILED, steps=run.steps, output=None, finished_at=utcnow())

    def all(self) -> list:
        return [self.fallback_turn_end, self.fallback_run_end]
