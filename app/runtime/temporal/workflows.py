"""SessionWorkflow: one long-lived workflow per session answers its messages one at a
time, in the order they were posted, whichever API process took them.

Deterministic code in Temporal's sandbox: no I/O, no clock, no settings. Every side
effect is an activity (app/runtime/temporal/activities.py). A crashed worker's activity
is retried on another worker (detected by missed heartbeats); the workflow itself is
replayed from its history wherever it continues.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError

with workflow.unsafe.imports_passed_through():
    from app.runtime.temporal.types import (
        DATABASE_UNAVAILABLE,
        END_FAILED,
        SESSION_GONE,
        EarlierInput,
        FinishInput,
        PauseInput,
        PauseResult,
        SessionState,
        StepInput,
        StepResult,
        ToolInput,
        ToolOutput,
        ToolResultsInput,
        TurnRequest,
        WaitInput,
    )

# A session with no message for this long ends its workflow; the next message starts
# a new one (signal-with-start). Idle workflows cost nothing but history.
IDLE_END = timedelta(minutes=10)
# Missed heartbeats for this long mean the worker is gone: the activity is retried
# elsewhere. The activities heartbeat several times a second (see activities.py).
HEARTBEAT_TIMEOUT = timedelta(seconds=2)
# Retries are for infrastructure (a worker killed mid-call, a database blip); provider
# errors were already retried inside the activity and arrive as non-retryable.
INFRA_RETRIES = RetryPolicy(initial_interval=timedelta(milliseconds=200), backoff_coefficient=2.0,
                            maximum_interval=timedelta(seconds=5), maximum_attempts=10)
# A turn's end (its terminal event and the session's status) is tried until the database
# takes it, however long the outage: given up, the session would stay `running` with no
# terminal event, and the workflow would fail with the messages queued behind the turn.
# Only the session's deletion (SESSION_GONE) ends the tries otherwise, and a failure that
# is not the database's has a bounded number of tries (record_end). The read that
# starts a workflow's first turn (_next) is retried the same way, for the same reason.
END_RETRIES = RetryPolicy(initial_interval=timedelta(milliseconds=200), backoff_coefficient=2.0,
                          maximum_interval=timedelta(seconds=5), maximum_attempts=0)  # 0: no limit
MODEL_CALL_TIMEOUT = timedelta(minutes=30)  # the whole step, provider retries included
SHORT_TIMEOUT = timedelta(minutes=2)
CANCEL_WAIT = timedelta(seconds=5)
LATE_SIGNAL_WAIT = timedelta(seconds=2)
# A tool call's answer arrives as a signal; should one be lost (an API process died
# between storing the answer and signalling), the database is asked at this interval.
ANSWER_POLL = timedelta(seconds=30)
TOOL_TIMEOUT = SHORT_TIMEOUT + timedelta(minutes=10)
# workflow.patched() id: a turn's end that found its session deleted ends the workflow.
GONE_ENDS_WORKFLOW = "session-gone-at-finish-ends-workflow"
# workflow.patched() id: an end that failed other than on the database is tried again, boundedly.
BOUNDED_END_TRIES = "end-failed-tried-boundedly-then-fallback"


async def record_end(activity: str, arg: Any) -> bool:
    """Run an activity that writes an end (a turn's, a pipeline run's). A database outage
    is retried within it without limit (END_RETRIES); a failure of another kind (a bug,
    a bad value: END_FAILED, non-retryable) gets as many tries as any activity has
    (INFRA_RETRIES), with its backoff. False once they are used up: the caller then writes
    its fallback end (app/runtime/temporal/ends.py). Only the END_FAILED tries add to the
    history, so an outage of any length costs one activity."""
    tries = INFRA_RETRIES
    attempts = tries.maximum_attempts or 1
    for attempt in range(1, attempts + 1):
        try:
            await workflow.execute_activity(activity, arg, start_to_close_timeout=SHORT_TIMEOUT,
                                            retry_policy=END_RETRIES)
            return True
        except ActivityError as exc:
            if not (isinstance(exc.cause, ApplicationError) and exc.cause.type == END_FAILED):
                raise
            if not workflow.patched(BOUNDED_END_TRIES):  # replayed from an older worker's history
                raise
            workflow.logger.warning("%s failed (try %d of %d): %s", activity, attempt, attempts, exc.cause.message)
            if attempt < attempts:
                wait = tries.initial_interval * tries.backoff_coefficient ** (attempt - 1)
                await workflow.sleep(min(wait, tries.maximum_interval or wait))
    return False


@workflow.defn
class SessionWorkflow:
    def __init__(self) -> None:
        self.queue: list[TurnRequest] = []
        self.current: TurnRequest | None = None
        self.turn_task: asyncio.Task | None = None
        self.cancel_reason: str | None = None
        self.dropped: list[str] = []
        self.seen: set[str] = set()  # every message queued in this run (bounded by continue-as-new)
        # Message numbers past the last turn started that this workflow knows: queued user
        # messages, and what its own turns stored. A number it does not know may be a
        # user message whose signal is still on the way (see _next).
        self.known: set[int] = set()
        self.answered: set[str] = set()  # tool call ids answered (signals) in the running turn
        # Set by a cancel of the running turn. Cancelling the turn's task is not enough: an
        # activity that completes in the same workflow task as the cancel returns its
        # result and the cancellation is gone (the SDK shields activity results). So the
        # turn also checks this flag after each activity (_stop_if_asked).
        self.stop_asked = False
        # Set once the running turn is recording its end (finish_turn). A cancel leaves it
        # alone then: cancelling it would abandon the end's retries (the session `running`,
        # no terminal event), and the CancelledError would fail the workflow.
        self.ending = False

    @workflow.run
    async def run(self, state: SessionState) -> None:
        self.session_id = state.session_id
        self.queue.extend(state.queue)
        self.seen.update(r.message_id for r in state.queue)
        self.last_started = state.last_started
        while True:
            try:
                await workflow.wait_condition(lambda: bool(self.queue) or bool(self.dropped), timeout=IDLE_END)
            except TimeoutError:
                if not self.queue:
                    return
            if self.dropped and not self.queue:  # cancelled while nothing ran
                if await self._finish(FinishInput(self.session_id, None, "cancelled", message=self.cancel_reason,
                                                  dropped=self._take_dropped())):
                    return
                continue
            self.current = await self._next()
            if self.current is None:
                continue
            self.last_started = max(self.last_started, self.current.sequence)
            self.cancel_reason, self.stop_asked, self.ending = None, False, False
            self.turn_task = asyncio.create_task(self._turn(self.current))
            gone = await self.turn_task
            self.current, self.turn_task = None, None
            if gone:
                return
            if workflow.info().is_continue_as_new_suggested():
                await workflow.wait_condition(workflow.all_handlers_finished)
                workflow.continue_as_new(SessionState(self.session_id, self.queue, self.last_started))

    @workflow.signal
    def submit(self, request: TurnRequest) -> None:
        if request.message_id not in self.seen:  # a signal delivered twice runs once
            self.seen.add(request.message_id)
            self.known.add(request.sequence)
            self.queue.append(request)

    @workflow.signal
    def tool_answered(self, call_id: str) -> None:
        """A waiting tool call was answered (the answer is in the database)."""
        self.answered.add(call_id)

    @workflow.update
    async def cancel(self, reason: str) -> bool:
        """Stop the running turn and drop the queued ones; True if there was any. Answers
        once the turn has ended (its partial text kept, the session `pending` again), as
        the in-process runner does, or after CANCEL_WAIT at most."""
        task = self.turn_task
        stopping = self._stop(reason)
        if task is not None and not task.done():  # stopping, or recording its end
            try:
                await workflow.wait_condition(lambda: task.done(), timeout=CANCEL_WAIT)
            except TimeoutError:
                pass
        return stopping or bool(self.dropped)

    @workflow.signal
    def cancel_requested(self, reason: str) -> None:
        """The cancel an API process sends when no worker took its `cancel` update in
        time (none running, or all restarting). Temporal stores a signal without a worker,
        so the cancel is not lost: it is acted on when a worker runs this workflow again."""
        self._stop(reason)

    def _stop(self, reason: str) -> bool:
        """Drop the queued turns and cancel the running one, unless it is recording its
        end already; whether it was cancelled."""
        self.dropped.extend(r.message_id for r in self.queue)
        self.queue.clear()
        task = self.turn_task
        stopping = task is not None and not task.done() and not self.ending
        if stopping or self.dropped:
            self.cancel_reason = reason
        if task is not None and stopping:
            self.stop_asked = True
            task.cancel()
        return stopping

    @workflow.query
    def pending(self) -> list[str]:
        """The running turn's message id first, then the queued ones (for tests and ops)."""
        return ([self.current.message_id] if self.current else []) + [r.message_id for r in self.queue]

    async def _next(self) -> TurnRequest | None:
        """The queued message with the lowest number. Two API processes can store two
        messages in one order and have their signals arrive in the other, so before a
        turn starts, messages numbered before it whose signals have not arrived yet are
        waited for (briefly: a message whose turn could not be queued never signals)."""
        first = min(self.queue, key=lambda r: r.sequence)
        if not self.known.issuperset(range(self.last_started + 1, first.sequence)):  # unknown numbers: ask
            # Asked until the database answers, as a turn's end is recorded: given up, the
            # workflow would fail and the queued messages would never be answered.
            earlier = await workflow.execute_local_activity(
                "earlier_messages", EarlierInput(self.session_id, self.last_started, first.sequence),
                result_type=list[str], start_to_close_timeout=SHORT_TIMEOUT, retry_policy=END_RETRIES)
            if set(earlier) - self.seen:
                try:
                    await workflow.wait_condition(lambda: self.seen >= set(earlier) or bool(self.dropped),
                                                  timeout=LATE_SIGNAL_WAIT)
                except TimeoutError:
                    pass
            if not self.queue:  # cancelled meanwhile
                return None
            first = min(self.queue, key=lambda r: r.sequence)
        self.queue.remove(first)
        self.known = {n for n in self.known if n > first.sequence}
        return first

    def _take_dropped(self) -> list[str]:
        dropped, self.dropped = self.dropped, []
        return dropped

    async def _turn(self, request: TurnRequest) -> bool:
        """Answer one message; True if the session is gone."""
        sid, mid = self.session_id, request.message_id
        started_at_seq: int | None = None
        iteration, limit = 0, None
        try:
            while limit is None or iteration < limit:
                iteration += 1
                step_id = str(workflow.uuid4())
                result: StepResult = await workflow.execute_activity(
                    "model_step", StepInput(sid, mid, request.variables, iteration, step_id, str(workflow.uuid4()),
                                            started_at_seq, request.sequence),
                    result_type=StepResult, start_to_close_timeout=MODEL_CALL_TIMEOUT,
                    heartbeat_timeout=HEARTBEAT_TIMEOUT, retry_policy=INFRA_RETRIES,
                    cancellation_type=workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED)
                if result.gone:
                    return True
                self._stop_if_asked()
                started_at_seq, limit = result.started_at_seq, result.max_iterations
                self.known.update(result.stored)
                if result.completed:  # the step ended the turn itself (no tools wanted)
                    return False
                if result.answered:  # the same, but the database refused the end: recorded until it takes it
                    return await self._finish(FinishInput(sid, mid, "completed",
                                                          outcome={"reason": "completed", "iterations": iteration}))
                if all(kind == "run" for kind in result.kinds):
                    outputs = await asyncio.gather(*(self._tool(ToolInput(sid, mid, step_id, call))
                                                     for call in result.tool_calls))
                else:
                    outputs = await self._with_waits(sid, mid, step_id, iteration, started_at_seq, result)
                self._stop_if_asked()
                stored = await workflow.execute_activity(
                    "record_tool_results", ToolResultsInput(sid, mid, step_id, result.tool_calls, list(outputs)),
                    result_type=list[int], start_to_close_timeout=SHORT_TIMEOUT, retry_policy=INFRA_RETRIES)
                self.known.update(stored)
                self._stop_if_asked()
            return await self._finish(FinishInput(sid, mid, "completed", outcome={"reason": "max_iterations"}))
        except asyncio.CancelledError:
            return await self._finish(FinishInput(sid, mid, "cancelled",
                                                  message=self.cancel_reason or "cancelled by request",
                                                  dropped=self._take_dropped()))
        except ActivityError as exc:
            cause = exc.cause
            if isinstance(cause, ApplicationError) and cause.type == SESSION_GONE:
                return True
            if isinstance(cause, CancelledError) or self.stop_asked:
                # Asked to stop, the activity may still fail otherwise as it winds down (its
                # kept text refused by the database): the turn ends as the client asked.
                return await self._finish(FinishInput(sid, mid, "cancelled",
                                                      message=self.cancel_reason or "cancelled by request",
                                                      dropped=self._take_dropped()))
            if isinstance(cause, ApplicationError) and cause.non_retryable:
                return await self._finish(FinishInput(sid, mid, "failed", code=cause.type or "internal_error",
                                                      message=cause.message))
            if isinstance(cause, ApplicationError) and cause.type == DATABASE_UNAVAILABLE:  # retries used up
                return await self._finish(FinishInput(
                    sid, mid, "failed", code=DATABASE_UNAVAILABLE,
                    message=f"the turn stopped because {cause.message}; send the message again"))
            return await self._finish(FinishInput(sid, mid, "failed", code="internal_error",
                                                  message="the turn could not be run on the workers; see their logs"))

    def _stop_if_asked(self) -> None:
        if self.stop_asked:
            raise asyncio.CancelledError

    async def _tool(self, request: ToolInput) -> ToolOutput:
        return await workflow.execute_activity(
            "run_tool", request, result_type=ToolOutput, start_to_close_timeout=TOOL_TIMEOUT,
            heartbeat_timeout=HEARTBEAT_TIMEOUT, retry_policy=INFRA_RETRIES,
            cancellation_type=workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED)

    async def _with_waits(self, sid: str, mid: str, step_id: str, iteration: int, started_at_seq: int,
                          result: StepResult) -> list[ToolOutput]:
        """A step some of whose calls wait for an approval or the client: the others run,
        the calls are stored and asked for, and the workflow waits (any time, durably)
        for the answers' signals; then the waited calls are settled."""
        calls, kinds = result.tool_calls, result.kinds
        ran = await asyncio.gather(*(self._tool(ToolInput(sid, mid, step_id, call))
                                     for call, kind in zip(calls, kinds, strict=True) if kind == "run"))
        by_call = iter(ran)
        outputs: list[ToolOutput | None] = [next(by_call) if kind == "run" else None for kind in kinds]
        self.answered = set()
        paused: PauseResult = await workflow.execute_activity(
            "pause_step", PauseInput(sid, mid, step_id, iteration, started_at_seq, calls, kinds, outputs),
            result_type=PauseResult, start_to_close_timeout=SHORT_TIMEOUT, retry_policy=INFRA_RETRIES)
        self._stop_if_asked()
        await self._answers(WaitInput(sid, mid, step_id), paused)
        await workflow.execute_activity("end_wait", WaitInput(sid, mid, step_id), start_to_close_timeout=SHORT_TIMEOUT,
                                        retry_policy=INFRA_RETRIES)
        waited = iter(await asyncio.gather(*(self._tool(ToolInput(sid, mid, step_id, call, waited=True))
                                             for call, kind in zip(calls, kinds, strict=True) if kind != "run")))
        return [out if out is not None else next(waited) for out in outputs]

    async def _answers(self, step: WaitInput, paused: PauseResult) -> None:
        """Until every waiting call is answered or APPROVAL_TIMEOUT_SECONDS passed."""
        waiting = set(paused.waiting)
        deadline = workflow.now() + timedelta(seconds=paused.timeout_seconds) if paused.timeout_seconds else None
        while not waiting <= self.answered:
            left = ANSWER_POLL if deadline is None else min(ANSWER_POLL, deadline - workflow.now())
            if left <= timedelta(0):
                return
            try:
                await workflow.wait_condition(lambda: waiting <= self.answered or self.stop_asked, timeout=left)
            except TimeoutError:
                self.answered |= waiting - set(await self._still_waiting(step, waiting))
            self._stop_if_asked()

    async def _still_waiting(self, step: WaitInput, waiting: set[str]) -> list[str]:
        """The calls the database says still wait. A read that still fails after its
        retries (the database gone) is skipped: the answers' signals come all the same,
        and the next poll asks again. Its error would otherwise fail the workflow: a
        local activity's failure is raised unwrapped (ApplicationError), which the
        turn's `except ActivityError` does not catch."""
        try:
            return await workflow.execute_local_activity(
                "still_waiting", step, result_type=list[str], start_to_close_timeout=SHORT_TIMEOUT,
                retry_policy=INFRA_RETRIES)
        except (ActivityError, ApplicationError):
            return list(waiting)

    async def _finish(self, finish: FinishInput) -> bool:
        """Record how the turn ended; True if the session is gone, and the workflow ends."""
        self.ending = True
        try:
            # An end that cannot be written (not for the database) still ends the turn, failed.
            if not await record_end("finish_turn", finish) and not await record_end("fallback_turn_end", finish):
                workflow.logger.error("session %s: neither the end of its turn nor the fallback end could be "
                                      "written; see the workers' log", self.session_id)
        except ActivityError as exc:
            if not (isinstance(exc.cause, ApplicationError) and exc.cause.type == SESSION_GONE):
                raise
            # Histories written before this rule went on waiting (idle) instead: replayed
            # as they were (Temporal's patch marker).
            return workflow.patched(GONE_ENDS_WORKFLOW)
        return False
