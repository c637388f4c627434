"""The session workflow's activities: the turn's side effects, run on worker processes.

They drive the same Turn as the in-process runner (app/runtime/turn.py), one piece at a
time, and read what they need from the database (payloads carry ids only). Each is
safe to run again after a worker died in the middle of it:
- a model step whose output is already stored returns it without calling the model;
- a model step run again says so first (`step.retried`), and its deltas carry the
  attempt, so readers drop the partial text of the abandoned attempt;
- tool results already stored are not stored twice.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError
from temporalio.worker import ActivityInboundInterceptor, ExecuteActivityInput, Interceptor
from tortoise.exceptions import IntegrityError

from app.db import DatabaseUnavailable
from app.errors import SessionGone
from app.events.messages import MessageRow
from app.models import Message, Session, ToolCallWait
from app.runtime import waits
from app.runtime.outcome import find_terminal, last_turn_start, unfinished_step
from app.runtime.providers.base import ProviderError, ToolCall
from app.runtime.resolution import NoModel
from app.runtime.temporal.types import (
    DATABASE_UNAVAILABLE,
    END_FAILED,
    SESSION_GONE,
    EarlierInput,
    FinishInput,
    PauseInput,
    PauseResult,
    StepInput,
    StepResult,
    ToolInput,
    ToolOutput,
    ToolResultsInput,
    WaitInput,
)
from app.runtime.toolbox import kind_of
from app.runtime.turn import Turn, TurnDeps

log = logging.getLogger("app.runtime.temporal")

# Heartbeats are how a worker's death is noticed (HEARTBEAT_TIMEOUT in workflows.py)
# and how a cancel reaches a running activity, so they go often: the worker sends at
# most one per max_heartbeat_throttle_interval (see worker.py).
HEARTBEAT_EVERY = 0.25
# Why a model step runs again. Its new attempt cannot tell which of these stopped the last
# one: Temporal saw no heartbeat (the worker died, or lost the Temporal server), or the
# attempt failed on the database.
RETRIED_REASON = ("the previous attempt of this model call did not finish (its worker stopped or lost contact with "
                  "the Temporal server, or a write to the database failed); the call is made again, and the text "
                  "streamed so far for this message_id is replaced")


@asynccontextmanager
async def heartbeating():
    async def beat() -> None:
        while True:
            activity.heartbeat()
            await asyncio.sleep(HEARTBEAT_EVERY)

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()


def _gone(session_id: str) -> ApplicationError:
    return ApplicationError(f"session '{session_id}' no longer exists", type=SESSION_GONE, non_retryable=True)


@contextmanager
def ends_if_deleted(session_id: str) -> Iterator[None]:
    """The session was deleted during the activity (the event log said SessionGone): the
    workflow ends, rather than retrying writes the database will refuse."""
    try:
        yield
    except SessionGone:
        raise _gone(session_id) from None


@contextmanager
def bounded_end(what: str) -> Iterator[None]:
    """For the activities that write an end (a turn's, a pipeline run's), which the
    workflow retries without limit (END_RETRIES) so that a database outage cannot lose
    it: any other failure (a bug, a bad value in the write) is raised as a non-retryable
    END_FAILED, which the workflow tries a bounded number of times (record_end in
    workflows.py) before it ends the turn or run with a fallback. A database failure
    stays retryable (DatabaseFailures names it), as do a deleted session (SESSION_GONE,
    already non-retryable) and a timeout (a worker lost mid-call)."""
    try:
        yield
    except (DatabaseUnavailable, ApplicationError):
        raise
    except Exception as exc:
        # One ERROR line: the traceback comes with the activity's failure, which the SDK logs.
        log.error("%s could not be written (not the database's fault): %s: %s", what, type(exc).__name__, exc)
        raise ApplicationError(f"{what} could not be written: {type(exc).__name__}", type=END_FAILED,
                               non_retryable=True) from exc


class DatabaseFailures(Interceptor):
    """An activity that failed because the database was unavailable says so, with the
    reason (safe to show: app/db.py), as a retryable DATABASE_UNAVAILABLE: Temporal
    retries it as any other failure, and a workflow whose retries ran out can tell the
    session why its turn stopped."""

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _NamingDatabaseFailures(next)


class _NamingDatabaseFailures(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        try:
            return await self.next.execute_activity(input)
        except DatabaseUnavailable as exc:
            raise ApplicationError(f"the database was unavailable ({exc.reason})", type=DATABASE_UNAVAILABLE) from exc


class TurnActivities:
    def __init__(self, deps: TurnDeps):
        self.deps = deps

    async def _turn(self, session_id: str, message_id: str | None, variables: dict[str, Any] | None = None):
        """A Turn for the message, with its session and agent; SESSION_GONE if deleted."""
        message = await Message.get_or_none(id=message_id) if message_id else None
        if message_id and message is None:
            raise _gone(session_id)
        turn = Turn(self.deps, session_id, message or _NoMessage(), variables)
        loaded = await turn.load()
        if loaded is None:
            raise _gone(session_id)
        return turn, *loaded

    @activity.defn(name="model_step")
    async def model_step(self, step: StepInput) -> StepResult:
        limit = self.deps.settings.max_iterations
        # The conversation and the session are read at once (the first token waits for
        # both); the user message is in the conversation, so it is not read on its own.
        rows_read = asyncio.ensure_future(self.deps.events.messages.of(step.session_id))
        turn = Turn(self.deps, step.session_id, MessageRow(uuid.UUID(step.message_id), step.message_sequence, "user", {}),
                    step.variables)
        attempt = activity.info().attempt
        if step.iteration == 1 and attempt == 1:
            # The turn's opening events are written while the session is read: the first
            # delta waits for them (Turn._write_behind). A session deleted meanwhile
            # refuses them, and they are dropped below.
            turn.begin()
        try:
            loaded = await turn.load()
            rows = await rows_read
        except BaseException:
            rows_read.cancel()
            await turn.drop_pending_writes()
            raise
        current = next((row for row in rows if str(row.id) == step.message_id), None)
        if loaded is None or current is None:
            await turn.drop_pending_writes()
            return StepResult(gone=True)
        session, agent = loaded
        turn.message = current
        stored = await _stored_step(step, limit) if attempt > 1 else None  # a first attempt stored nothing
        if stored is not None:
            if not stored.tool_calls:
                ended = await _turn_ended(step.session_id, step.message_id, current.sequence) \
                    or await self._end_turn(turn, step)
                stored.completed, stored.answered = ended, not ended
            return stored
        async with heartbeating():
            try:
                if step.iteration == 1 and attempt > 1 and not await _turn_started(step):
                    turn.begin()
                if attempt > 1:
                    await self.deps.events.append(step.session_id, "step.retried", {
                        "step_id": step.step_id, "message_id": step.step_message_id, "attempt": attempt,
                        "reason": RETRIED_REASON})
                context = await turn.prepare(session, agent)
                finished, started_at_seq = await turn.model_step(
                    context, step.iteration, step.started_at_seq, step.step_id, uuid.UUID(step.step_message_id), attempt,
                    rows)
                await turn.settle()
            except asyncio.CancelledError:
                details = activity.cancellation_details()
                if details is not None and details.cancel_requested:  # a user's cancel: keep what was said
                    await turn.keep_partial_text()
                    await turn.settle(quiet=True)
                # Otherwise this worker is shutting down or lost the activity: it runs
                # again elsewhere, and stores nothing here that the retry would repeat.
                raise
            except (NoModel, ProviderError) as exc:
                code, message = ("no_model_configured", str(exc)) if isinstance(exc, NoModel) else (exc.code, exc.message)
                await turn.keep_partial_text()
                await turn.settle(quiet=True)
                raise ApplicationError(message, type=code, non_retryable=True) from None
            except SessionGone:
                await turn.drop_pending_writes()  # each would be refused too
                raise _gone(step.session_id) from None
            except IntegrityError:
                if not await Session.exists(id=step.session_id):
                    raise _gone(step.session_id) from None
                raise
        calls = [{"id": c.id, "name": c.name, "arguments": c.arguments} for c in finished.tool_calls]
        ended = not calls and await self._end_turn(turn, step)  # the answer: the turn ends here
        return StepResult(started_at_seq, calls, limit, stored=turn.stored_sequences, completed=ended,
                          kinds=[kind_of(context.tools.get(c.name)) for c in finished.tool_calls],
                          answered=not calls and not ended)

    async def _end_turn(self, turn: Turn, step: StepInput) -> bool:
        """The step answered: it records the turn's end itself, saving an activity. False
        when the database refused: the answer is stored, and the workflow records the end
        with `finish_turn`, whose retries outlast any outage (this activity's run out)."""
        try:
            with ends_if_deleted(step.session_id):
                await turn.completed({"reason": "completed", "iterations": step.iteration})
        except DatabaseUnavailable as exc:
            log.warning("session %s: the answer is stored, the end of its turn not yet (%s); it is recorded once "
                        "the database takes it", step.session_id, exc.reason)
            return False
        self._count(turn)
        return True

    @activity.defn(name="run_tool")
    async def run_tool(self, request: ToolInput) -> ToolOutput:
        turn, _, agent = await self._turn(request.session_id, request.message_id)
        turn.step_id = request.step_id
        tools = await self.deps.toolbox.for_agent(agent)
        async with heartbeating():
            with ends_if_deleted(request.session_id):
                if request.waited:
                    row = await ToolCallWait.get(session_id=request.session_id, step_id=request.step_id,
                                                 call_id=request.call["id"])
                    result, error = await turn.settle_waited(tools, row)
                else:
                    result, error = await turn.run_tool(tools, ToolCall(**request.call))
        return ToolOutput(result, error)

    @activity.defn(name="pause_step")
    async def pause_step(self, request: PauseInput) -> PauseResult:
        """Store the step's calls and ask for the answers (runtime/waits.py)."""
        turn, _, _ = await self._turn(request.session_id, request.message_id)
        turn.step_id = request.step_id
        outputs = [(out.result, out.error) for out in request.outputs if out is not None]
        with ends_if_deleted(request.session_id):
            paused = await turn.pause([ToolCall(**call) for call in request.calls], request.kinds, outputs,
                                      request.iteration, request.started_at_seq)
        return PauseResult([row.call_id for row in paused.waiting], self.deps.settings.approval_timeout_seconds)

    @activity.defn(name="still_waiting")
    async def still_waiting(self, request: WaitInput) -> list[str]:
        """The step's calls with no answer yet (in case a signal was lost)."""
        return await waits.still_waiting(request.session_id, request.step_id)

    @activity.defn(name="end_wait")
    async def end_wait(self, request: WaitInput) -> None:
        """The answers are in or their time is up: the rest expire, the turn runs again."""
        turn, _, _ = await self._turn(request.session_id, request.message_id)
        with ends_if_deleted(request.session_id):
            await turn.end_wait(request.step_id)

    @activity.defn(name="record_tool_results")
    async def record_tool_results(self, request: ToolResultsInput) -> list[int]:
        """Returns the numbers of the messages it stored."""
        turn, _, _ = await self._turn(request.session_id, request.message_id)
        turn.step_id = request.step_id
        # contents: flat values (Tortoise types every values_list row as a tuple)
        recent: list[Any] = await Message.filter(session_id=request.session_id, role="tool_result") \
            .order_by("-sequence").limit(len(request.calls)).values_list("content", flat=True)
        done = {c.get("tool_call_id") for c in recent}
        pairs = [(ToolCall(**call), (out.result, out.error)) for call, out in zip(request.calls, request.outputs, strict=True)
                 if call["id"] not in done]
        with ends_if_deleted(request.session_id):
            await turn.record_tool_results([c for c, _ in pairs], [o for _, o in pairs])
        return turn.stored_sequences

    @activity.defn(name="finish_turn")
    async def finish_turn(self, finish: FinishInput) -> None:
        with bounded_end(f"the end of the turn in session {finish.session_id}"), ends_if_deleted(finish.session_id):
            await self._finish_turn(finish)

    async def _finish_turn(self, finish: FinishInput) -> None:
        turn, _, _ = await self._turn(finish.session_id, finish.message_id)
        if finish.message_id is None or await _turn_ended(finish.session_id, finish.message_id,
                                                          turn.message.sequence):
            # A cancel that found only queued messages, or came after the last step had
            # already completed the turn (or a retry): the dropped messages still get
            # their terminal event, so their waiters learn they will not run.
            if finish.dropped and not await _turn_ended(finish.session_id, finish.dropped[0], turn.message.sequence):
                await self.deps.events.append(finish.session_id, "session.cancelled", {
                    "reason": finish.message, "message_id": None, "dropped_message_ids": finish.dropped})
            return
        if finish.status != "completed":
            await _keep_streamed_text(turn, finish.session_id, finish.message_id)
        if finish.status == "completed":
            outcome = finish.outcome or {}
            await turn.completed(turn.out_of_iterations() if outcome.get("reason") == "max_iterations" else outcome)
        elif finish.status == "cancelled":
            await turn.cancelled(finish.message or "cancelled by request", finish.dropped)
        else:
            await turn.failed(finish.message or "the turn failed", finish.code or "internal_error")
        self._count(turn)

    def _count(self, turn: Turn) -> None:
        self.deps.metrics.turns.labels(turn.outcome.status).inc()
        if turn.outcome.error:
            self.deps.metrics.errors.labels("turn", turn.outcome.error["code"]).inc()

    @activity.defn(name="earlier_messages")
    async def earlier_messages(self, request: EarlierInput) -> list[str]:
        """Ids of user messages numbered between the last turn started and the next
        (their signals may still be on the way from another API process). A workflow
        started afresh knows no last turn: the log's latest session.started tells it."""
        after = request.after
        if after == 0:
            started = await last_turn_start(request.session_id)
            answered = started and await Message.get_or_none(id=started.data.get("message_id"))
            after = answered.sequence if answered else 0
        ids = await Message.filter(session_id=request.session_id, role="user", sequence__gt=after,
                                   sequence__lt=request.before).values_list("id", flat=True)
        return [str(i) for i in ids]

    def all(self) -> list:
        return [self.model_step, self.run_tool, self.record_tool_results, self.finish_turn, self.earlier_messages,
                self.pause_step, self.still_waiting, self.end_wait]


class _NoMessage:
    id: uuid.UUID | None = None
    sequence = 0
    role = "user"
    content: dict = {}
    reply_to: uuid.UUID | None = None


async def _turn_ended(session_id: str, message_id: str, after: int = 0) -> bool:
    """Whether the turn answering the message (or a cancel that dropped it) has its
    terminal event. `after`: the message's own number bounds the search, since the
    events of every message up to it come before that terminal event."""
    return await find_terminal(session_id, message_id, after) is not None


async def _keep_streamed_text(turn: Turn, session_id: str, message_id: str) -> None:
    """What the turn's last model step streamed, kept for a failed or cancelled turn as in
    process (docs/api.md §4.3). The step's activity held the text; it may have failed with
    the database, or been lost with its worker, before storing it (or announcing it)."""
    started = await last_turn_start(session_id, message_id)
    if started is None:
        return  # the turn did not start: it streamed nothing
    step = await unfinished_step(session_id, started.sequence)
    if step is not None and step[2]:
        turn.step_id, step_message, text = step
        turn.message_id = uuid.UUID(step_message)
        await turn.keep_text_once(text)


async def _turn_started(step: StepInput) -> bool:
    """Whether a crashed first attempt already wrote this turn's session.started."""
    return await last_turn_start(step.session_id, step.message_id) is not None


async def _stored_step(step: StepInput, limit: int) -> StepResult | None:
    """The step's result if a previous attempt stored its output (then died before it
    could report it): its first message carries the step's message id."""
    first = await Message.get_or_none(id=step.step_message_id)
    if first is None:
        return None
    rows = await Message.filter(session_id=step.session_id, sequence__gte=first.sequence).order_by("sequence").limit(200)
    calls = []
    for row in rows:
        if row.role == "tool_call":
            arguments = row.content.get("arguments", {})
            calls.append({"id": row.content["id"], "name": row.content["name"],
                          "arguments": arguments if isinstance(arguments, str) else json.dumps(arguments)})
        elif row.id != first.id:
            break
    started = step.started_at_seq if step.started_at_seq is not None else first.sequence - 1
    return StepResult(started, calls, limit)
