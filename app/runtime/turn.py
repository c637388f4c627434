"""One turn of the agent loop: answer one user message.

A turn is a series of steps. Each step streams one model call (text deltas go out as
`message.delta` events), stores the assistant text and any tool calls, then runs the
tools concurrently and stores their results in call order. The turn ends when the
model answers without tools, at MAX_ITERATIONS steps, on failure, or on cancel; in
every case the session leaves `running`.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from app.config import Settings
from app.db import DatabaseUnavailable
from app.errors import SessionGone
from app.events.log import EventLog
from app.events.messages import MessageRow, record_message
from app.metrics import Metrics
from app.models import Agent, Session, raw_sql
from app.models.enums import SessionStatus
from app.runtime import waits
from app.runtime.capabilities import Tool
from app.runtime.deltas import DeltaWriter
from app.runtime.history import StoredMessage, to_chat_history, turn_history
from app.runtime.providers import ProviderClients
from app.runtime.providers.base import ChatAdapter, Finished, ProviderError, TextDelta, ToolCall, ToolSpec
from app.runtime.resolution import ModelResolver, NoModel
from app.runtime.toolbox import Toolbox
from app.runtime.tools import execute_tool, parse_arguments
from app.runtime.turn_endings import TurnEndings
from app.runtime.turn_waits import WaitingCalls
from app.timeutil import utcnow

log = logging.getLogger("app.runtime.turn")

# The reason a stopping server cancels its turns with (TurnRunner.shutdown).
SHUTTING_DOWN = "server shutting down"
# The reason a turn is cancelled with once its session's row is deleted
# (TurnRunner.session_deleted): nothing can be written for it any more.
SESSION_DELETED = "session deleted"
PLACEHOLDER = re.compile(r"{{\s*([A-Za-z_][A-Za-z0-9_]*)\s*}}")


@dataclass
class TurnOutcome:
    """What a caller waiting for the turn gets back (the AgentSpec invoke, pipelines)."""

    message_id: str
    status: str = "cancelled"  # completed | failed | cancelled | waiting_for_approval | waiting_for_client
    output: str = ""
    usage: dict[str, int] = field(default_factory=lambda: {"input_tokens": 0, "output_tokens": 0})
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    error: dict[str, str] | None = None
    reason: str | None = None
    pending: list[dict[str, Any]] = field(default_factory=list)  # waiting: the calls it waits for


def render_prompt(prompt: str, variables: dict[str, Any] | None) -> str:
    """Fill {{name}} placeholders; without variables the prompt is used as written."""
    if not variables:
        return prompt
    return PLACEHOLDER.sub(lambda m: str(variables.get(m.group(1), m.group(0))), prompt)


def missing_variables(prompt: str, variables: dict[str, Any] | None) -> list[str]:
    return [name for name in dict.fromkeys(PLACEHOLDER.findall(prompt)) if name not in (variables or {})]


@dataclass
class TurnContext:
    """What every model call of a turn needs, resolved once per turn."""

    adapter: ChatAdapter
    model_id: str
    tools: dict[str, Tool]
    specs: list[ToolSpec]
    system: str


@dataclass
class TurnDeps:
    settings: Settings
    events: EventLog
    clients: ProviderClients
    metrics: Metrics
    models: ModelResolver
    toolbox: Toolbox = field(default_factory=Toolbox)
    answers: waits.AnswerSignals = field(default_factory=waits.AnswerSignals)


class Turn(TurnEndings, WaitingCalls):
    def __init__(self, deps: TurnDeps, session_id: str, message: StoredMessage, variables: dict[str, Any] | None = None,
                 session: Session | None = None):
        self.deps, self.session_id, self.message = deps, session_id, message
        self.variables = variables
        self.loaded_session = session
        self.outcome = TurnOutcome(str(message.id))
        self.events = deps.events
        self.settings = deps.settings
        self.partial: list[str] = []  # text of the step being streamed, kept if cancelled
        self.stored_sequences: list[int] = []  # numbers of the messages this turn stored
        self.writer: DeltaWriter | None = None
        self.step_id: str | None = None
        self.message_id: uuid.UUID | None = None
        self._behind: asyncio.Future | None = None  # writes still running; see _write_behind
        self._running_written: asyncio.Future | None = None  # the `running` status; see _set_status
        # Called with the outcome once it is known, if recording it has to wait for the
        # database (set by the in-process runner for whoever waits on the turn).
        self.on_outcome: Callable[[TurnOutcome], None] | None = None
        # A turn that waited for answers when the server stopped goes on from its
        # stored state (TurnRunner.start); it does not start again.
        self.resume_from: waits.PausedStep | None = None
        self.dropped: list[str] = []  # queued messages a cancel of this turn dropped (their ids)
        self.waiting_for_answers = False  # paused on tool calls that wait (turn_waits.finish_waiting)

    async def run(self) -> None:
        """The whole turn in this process (the in-process runner). A turn whose session is
        deleted under it ends as soon as it finds out, quietly (session_gone)."""
        try:
            await self._run()
        except SessionGone:
            await self.session_gone()

    async def _run(self) -> None:
        try:
            loaded = await self.load()
        except DatabaseUnavailable as exc:  # not even started: it still ends, as failed
            await self._fail_in_process(*self._database_failure(exc))
            self._count()
            return
        if loaded is None:
            return  # deleted while queued
        session, agent = loaded
        try:
            if self.resume_from is None:
                self.begin()
            outcome = await self._steps(session, agent, self.resume_from)
        except asyncio.CancelledError as exc:
            reason = exc.args[0] if exc.args else "cancelled by request"
            try:
                if reason == SESSION_DELETED:
                    await self.session_gone()
                elif reason == SHUTTING_DOWN and self.waiting_for_answers:
                    # Its state is stored: the next start waits again (TurnRunner.start), as
                    # after kill -9. Only the messages queued behind it are given up.
                    await self.gave_up_queued(reason, self.dropped)
                else:  # the database may refuse it: then it is written once it is back
                    await self._until_recorded(lambda: self.cancelled(reason, self.dropped),
                                               lambda: self._record_cancel_again(reason, self.dropped))
            except SessionGone:  # deleted while it wound down: the cancel still ends the task
                await self.session_gone()
            raise
        except SessionGone:
            raise  # not a failure to record: there is nowhere left to record it (run())
        except NoModel as exc:
            await self._fail_in_process(str(exc), "no_model_configured")
        except ProviderError as exc:
            await self._fail_in_process(exc.message, exc.code)
        except DatabaseUnavailable as exc:
            await self._fail_in_process(*self._database_failure(exc))
        except Exception:
            log.exception("turn failed in session %s", self.session_id)
            await self._fail_in_process("internal error while running the turn; see the server log", "internal_error")
        else:
            await self._until_recorded(lambda: self.completed(outcome), lambda: self._record_completion_again(outcome))
        finally:
            self._count()

    async def session_gone(self) -> None:
        """The session was deleted under the turn: nothing of it can be stored any more
        (each write would be refused), so the turn ends here without another. Whoever
        waits for it hears `cancelled`."""
        log.info("session %s was deleted during its turn; the turn ends here", self.session_id)
        self.outcome.status = "cancelled"
        self.outcome.error = {"code": "cancelled", "message": "the session was deleted"}
        await self.drop_pending_writes()

    async def drop_pending_writes(self) -> None:
        """Stop the writes still running in the background (session_gone): each would be
        refused, and its failure logged as an error when nobody awaits it."""
        if self.writer is not None:
            self.writer.discard()
            self.writer = None
        pending = [write for write in (self._behind, self._running_written) if write is not None]
        self._behind = self._running_written = None
        for write in pending:
            write.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    def _count(self) -> None:
        self.deps.metrics.turns.labels(self.outcome.status).inc()
        if self.outcome.error:
            self.deps.metrics.errors.labels("turn", self.outcome.error["code"]).inc()

    async def load(self) -> tuple[Session, Agent | None] | None:
        """The session and its agent (None when the session is gone); usage starts from it."""
        # By hand-written SQL (app/models/raw_sql.py): the first token waits for this read.
        session = self.loaded_session or await raw_sql.session_with_agent(self.session_id)
        if session is None:
            return None
        agent = session.agent
        if not (agent is None or isinstance(agent, Agent)):  # the caller loaded the session without it
            agent = await agent
        self.session_usage = {"input_tokens": 0, "output_tokens": 0, **(session.usage or {})}
        return session, agent

    def begin(self) -> None:
        """session.started and the `running` status, written while the first model call
        is made (see _write_behind)."""
        self._write_behind("session.started", {"message_id": str(self.message.id)})
        # Not an event, so the first delta need not wait for it; later statuses do.
        self._running_written = asyncio.ensure_future(self._write_status(SessionStatus.RUNNING, None))

    def _write_behind(self, type: str, data: dict[str, Any]) -> None:
        """Log an event while the provider call is being made, after those already started.

        Time to first token is what a user feels, and these writes (session.started,
        step.started) need not finish before the provider is asked, only before the turn
        writes anything else: every later write first awaits `_written()`, so the log
        keeps its order."""
        before = self._behind

        async def in_order() -> None:
            if before is not None:
                await before
            await self.events.append(self.session_id, type, data)

        self._behind = asyncio.ensure_future(in_order())

    async def settle(self, quiet: bool = False) -> None:
        """Wait for the writes still running in the background (an activity's last act)."""
        await self._written(quiet)
        running, self._running_written = self._running_written, None
        if running is not None:
            try:
                await running
            except SessionGone:
                raise  # no failure worth a traceback: the turn ends on it (run())
            except Exception:
                if not quiet:
                    raise
                log.exception("writing the running status of session %s failed", self.session_id)

    async def _written(self, quiet: bool = False) -> None:
        """`quiet` on the way out of a failed turn: the failure is recorded either way."""
        behind, self._behind = self._behind, None
        if behind is None:
            return
        try:
            await behind
        except SessionGone:
            raise  # no failure worth a traceback: the turn ends on it (run())
        except Exception:
            if not quiet:
                raise
            log.exception("a write of the turn in session %s failed", self.session_id)

    async def _steps(self, session: Session, agent: Agent | None,
                     resume: waits.PausedStep | None = None) -> dict[str, Any]:
        context = await self.prepare(session, agent)
        limit = self.settings.max_iterations
        first, started_at_seq = 1, None
        if resume is not None:
            await self.finish_waiting(context, resume)
            first, started_at_seq = resume.iteration + 1, resume.started_at_seq
        for iteration in range(first, limit + 1):
            finished, started_at_seq = await self.model_step(context, iteration, started_at_seq)
            if not finished.tool_calls:
                return {"reason": "completed", "iterations": iteration}
            await self.settle_calls(context, finished.tool_calls, iteration, started_at_seq)
        return self.out_of_iterations()

    def out_of_iterations(self) -> dict[str, Any]:
        limit = self.settings.max_iterations
        return {"reason": "max_iterations", "iterations": limit,
                "message": f"stopped after {limit} model calls (MAX_ITERATIONS) while the model still wanted tools"}

    async def prepare(self, session: Session, agent: Agent | None) -> TurnContext:
        model = await self.deps.models.resolve(session, agent)
        self.model_labels = (model.provider.provider_type, model.model_id)
        tools = await self.deps.toolbox.for_agent(agent)
        return TurnContext(
            adapter=self.deps.clients.adapter_for(model.provider), model_id=model.model_id, tools=tools,
            specs=[ToolSpec(t.name, t.description, t.parameters) for t in tools.values()],
            system=render_prompt(agent.system_prompt, self.variables) if agent else "")

    async def model_step(self, context: TurnContext, iteration: int, started_at_seq: int | None,
                         step_id: str | None = None, message_id: uuid.UUID | None = None,
                         attempt: int = 1, rows: list[MessageRow] | None = None) -> tuple[Finished, int]:
        """One model call with the conversation so far (`rows`, if the caller read it
        already). `started_at_seq`: the session's last message number when the turn
        began (None on the first step: now)."""
        if rows is None:
            rows = await self.events.messages.of(self.session_id)
        if started_at_seq is None:  # everything stored before this turn's own output
            started_at_seq = rows[-1].sequence if rows else 0
        history = to_chat_history(turn_history(rows, self.message, started_at_seq))
        finished = await self._step(context.adapter, context.model_id, context.system, history, context.specs,
                                    iteration, step_id, message_id, attempt)
        return finished, started_at_seq

    async def _step(self, adapter: ChatAdapter, model_id: str, system: str, history, specs, iteration: int,
                    step_id: str | None = None, message_id: uuid.UUID | None = None, attempt: int = 1) -> Finished:
        self.step_id, self.message_id = step_id or str(uuid.uuid4()), message_id or uuid.uuid4()
        delta_data: dict[str, Any] = {"step_id": self.step_id, "message_id": str(self.message_id)}
        if attempt == 1:
            self._write_behind("step.started", {"step_id": self.step_id, "iteration": iteration, "model": model_id})
        else:  # a retried step (temporal runner): readers drop what they got of this message so far
            delta_data["attempt"] = attempt
        self.writer = DeltaWriter(self.events, self.session_id, delta_data,
                                  self.settings.delta_flush_ms / 1000,
                                  self.settings.delta_flush_ms_per_1000_subscribers / 1000 / 1000)
        finished = Finished([], 0, 0, None)
        # The SDK client retries 429/5xx/network errors itself (LLM_MAX_RETRIES), and only
        # until the response begins: a retry after output would repeat text already seen.
        async for item in adapter.stream(model_id, system, history, specs):
            await self._written()
            if isinstance(item, TextDelta):
                self.partial.append(item.text)
                await self.writer.add(item.text)
            else:
                finished = item
        await self._written()
        await self.writer.close()
        self.writer = None
        text, self.partial = "".join(self.partial), []
        # The step's first stored message gets the step's message id, so a retried step
        # (temporal runner) can tell that its output is already stored.
        first_id: uuid.UUID | None = self.message_id
        if text or not finished.tool_calls:
            await self._record("assistant", {"text": text}, message_id=first_id, step_id=self.step_id)
            self.outcome.output = text
            first_id = None
        for call in finished.tool_calls:
            arguments, _ = parse_arguments(call)
            await self._record("tool_call", {"id": call.id, "name": call.name, "arguments": arguments},
                               message_id=first_id, step_id=self.step_id)
            first_id = None
        usage = {"input_tokens": finished.input_tokens, "output_tokens": finished.output_tokens}
        await self._add_usage(usage)
        for key, value in usage.items():
            self.outcome.usage[key] += value
            self.deps.metrics.tokens.labels(*self.model_labels, key.removesuffix("_tokens")).inc(value)
        await self.events.append(self.session_id, "step.completed",
                                 {"step_id": self.step_id, "usage": usage, "finish_reason": finished.finish_reason,
                                  "tool_calls": len(finished.tool_calls)})
        return finished

    async def run_tools(self, tools: dict[str, Tool], calls: list[ToolCall]) -> None:
        outcomes = await asyncio.gather(*(self.run_tool(tools, call) for call in calls))
        await self.record_tool_results(calls, outcomes)

    async def run_tool(self, tools: dict[str, Tool], call: ToolCall) -> tuple[Any, str | None]:
        arguments, _ = parse_arguments(call)
        base = {"step_id": self.step_id, "tool_call_id": call.id, "tool_name": call.name, "arguments": arguments}
        await self.events.append(self.session_id, "tool.started", base)
        started = time.monotonic()
        result, error = await execute_tool(tools, call, self.settings.tool_timeout_seconds)
        duration_ms = round((time.monotonic() - started) * 1000, 1)
        await self.events.append(self.session_id, "tool.completed",
                                 {**base, "result": result, "error": error, "duration_ms": duration_ms})
        self.outcome.tool_calls.append({"id": call.id, "tool_name": call.name, "input": arguments,
                                        "output": result, "duration_ms": duration_ms, "error": error})
        self.deps.metrics.tool_calls.labels(call.name if call.name in tools else "unknown",
                                            "error" if error else "ok").inc()
        return result, error

    async def record_tool_results(self, calls: list[ToolCall], outcomes: list[tuple[Any, str | None]]) -> None:
        for call, (result, error) in zip(calls, outcomes, strict=True):  # results go back in call order
            await self._record("tool_result",
                               {"tool_call_id": call.id, "name": call.name, "result": result, "error": error},
                               step_id=self.step_id)

    async def _record(self, role: str, content: dict[str, Any], message_id: uuid.UUID | None = None,
                      step_id: str | None = None) -> None:
        """Store one of the turn's messages; its number is noted (`stored_sequences`), so
        the session workflow knows which numbers are its own (temporal mode)."""
        message = await record_message(self.events, self.session_id, role, content, message_id=message_id,
                                       step_id=step_id, reply_to=self.message.id)
        self.stored_sequences.append(message.sequence)

    async def _add_usage(self, usage: dict[str, int]) -> None:
        """The turn is the only writer of its session's usage, so it keeps the running
        total (read with the session at the start) and only writes it."""
        for key, value in usage.items():
            self.session_usage[key] = self.session_usage.get(key, 0) + value
        await Session.filter(id=self.session_id).update(usage=self.session_usage)

    async def _set_status(self, status: SessionStatus, error: str | None) -> None:
        """The turn's final status, written after its `running` for sure."""
        running, self._running_written = self._running_written, None
        if running is not None:
            try:
                await running
            except SessionGone:
                raise
            except Exception:  # the final status is what matters now
                log.exception("writing the running status of session %s failed", self.session_id)
        await self._write_status(status, error)

    async def _write_status(self, status: SessionStatus, error: str | None) -> None:
        await Session.filter(id=self.session_id).update(status=status, last_error=error,
                                                        updated_at=utcnow())
        self.events.notify_session("session_updated", self.session_id)
