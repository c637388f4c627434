"""The part of a turn that handles tool calls waiting for someone outside the server
(a person's approval, a client's result): Turn's methods for it, kept apart so the
turn loop in turn.py reads on its own. The mechanism is in app/runtime/waits.py."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from app.models import Agent, raw_sql
from app.models.enums import SessionStatus
from app.runtime import waits
from app.runtime.capabilities import Tool
from app.runtime.providers.base import ToolCall
from app.runtime.toolbox import CLIENT, RUN, kind_of
from app.runtime.tools import parse_arguments
from app.timeutil import rfc3339, utcnow

if TYPE_CHECKING:
    from collections.abc import Callable

    from app.config import Settings
    from app.events.log import EventLog
    from app.runtime.history import StoredMessage
    from app.runtime.turn import TurnContext, TurnDeps, TurnOutcome


class WaitingCalls:
    """Mixed into Turn (app/runtime/turn.py), whose state and writers it uses."""

    if TYPE_CHECKING:  # Turn's, declared here for the type checker only
        deps: TurnDeps
        session_id: str
        message: StoredMessage
        outcome: TurnOutcome
        events: EventLog
        settings: Settings
        step_id: str | None
        waiting_for_answers: bool
        variables: dict[str, Any] | None
        on_outcome: Callable[[TurnOutcome], None] | None
        model_labels: tuple[str, str]

        async def run_tools(self, tools: dict[str, Tool], calls: list[ToolCall]) -> None: ...
        async def run_tool(self, tools: dict[str, Tool], call: ToolCall) -> tuple[Any, str | None]: ...
        async def record_tool_results(self, calls: list[ToolCall],
                                      outcomes: list[tuple[Any, str | None]]) -> None: ...
        async def _set_status(self, status: SessionStatus, error: str | None) -> None: ...
        async def _write_status(self, status: SessionStatus, error: str | None) -> None: ...

    async def settle_calls(self, context: TurnContext, calls: list[ToolCall], iteration: int,
                           started_at_seq: int) -> None:
        """Run the step's tool calls; when some wait for an approval or the client, the
        others run first, then the turn waits for the answers (app/runtime/waits.py)."""
        kinds = [kind_of(context.tools.get(call.name)) for call in calls]
        if all(kind == RUN for kind in kinds):
            return await self.run_tools(context.tools, calls)
        outputs = await asyncio.gather(*(self.run_tool(context.tools, c) for c, k in zip(calls, kinds, strict=True) if k == RUN))
        paused = await self.pause(calls, kinds, list(outputs), iteration, started_at_seq)
        await self.finish_waiting(context, paused)

    async def finish_waiting(self, context: TurnContext, paused: waits.PausedStep) -> None:
        """In process: wait for the answers, then settle every call of the step."""
        self.step_id = paused.step_id
        self.waiting_for_answers = True  # still true when a cancel comes out of the wait (Turn.run)
        await self.deps.answers.until_answered(self.session_id, paused.step_id, paused.expires_at)
        self.waiting_for_answers = False
        rows = await self.end_wait(paused.step_id)
        outcomes = await asyncio.gather(*(self.settle_waited(context.tools, row) for row in rows))
        await self.record_tool_results([ToolCall(row.call_id, row.tool_name, _arguments_text(row.arguments))
                                        for row in rows], list(outcomes))
        await self.resolve_model_again(context)

    async def resolve_model_again(self, context: TurnContext) -> None:
        """The model and its provider's client, as a turn starting now would get them. A
        wait can last hours, and the provider may have been edited meanwhile (a new key or
        base_url): its client is then replaced, and the old one closed a little later
        (ProviderClients), so the client the turn began with may no longer work. The
        step's tools and prompt stay as they were; a Temporal worker resolves them in
        each model_step activity anyway."""
        session = await raw_sql.session_with_agent(self.session_id)
        if session is None:
            return  # deleted: the turn's next write finds out (SessionGone)
        agent = session.agent  # loaded with it
        assert agent is None or isinstance(agent, Agent)
        model = await self.deps.models.resolve(session, agent)
        context.adapter = self.deps.clients.adapter_for(model.provider)
        context.model_id = model.model_id
        self.model_labels = (model.provider.provider_type, model.model_id)

    async def pause(self, calls: list[ToolCall], kinds: Sequence[str], outputs: list[tuple[Any, str | None]],
                    iteration: int, started_at_seq: int) -> waits.PausedStep:
        """Store the step's calls (those that ran, with their results), ask for the
        answers, and tell whoever waits for the turn that it waits now."""
        assert self.step_id is not None  # set when the step began (turn.py)
        rows = await waits.step_rows(self.session_id, self.step_id)
        # A retried activity (temporal mode) finds the rows stored, and maybe some of the
        # events below logged: those are not logged twice.
        retried = bool(rows)
        if not retried:
            # One time for the whole step: its calls list in call order (by position), and
            # each one's wait is exactly expires_at - created_at, whatever the setting is later.
            now, timeout = utcnow(), self.settings.approval_timeout_seconds
            expires_at = now + dt.timedelta(seconds=timeout) if timeout else None
            ran = iter(outputs)
            for position, (call, kind) in enumerate(zip(calls, kinds, strict=True)):
                result, error = next(ran) if kind == RUN else (None, None)
                rows.append(waits.ToolCallWait(
                    session_id=self.session_id, call_id=call.id, message_id=self.message.id, step_id=self.step_id,
                    iteration=iteration, started_at_seq=started_at_seq, position=position, tool_name=call.name,
                    arguments=waits.json_for_db(parse_arguments(call)[0]), kind=kind, expires_at=expires_at,
                    result=waits.json_for_db(result),
                    error=error, status=waits.DONE if kind == RUN else waits.WAITING, variables=self.variables,
                    created_at=now))
            await waits.store(rows)
        paused = waits.paused_step(rows)
        expires = rfc3339(paused.expires_at) if paused.expires_at else None

        def append(type: str, data: dict[str, Any], key: str):
            return self.events.append_once(self.session_id, type, data, key) if retried \
                else self.events.append(self.session_id, type, data)

        for row in paused.waiting:
            await append(waits.CLIENT_REQUESTED if row.kind == CLIENT else waits.APPROVAL_REQUESTED, {
                "step_id": self.step_id, "tool_call_id": row.call_id, "tool_name": row.tool_name,
                "arguments": row.arguments, "message_id": str(self.message.id), "expires_at": expires},
                "tool_call_id")
        status = waits.status_for([row.kind for row in paused.waiting])
        await self._set_status(status, None)
        self.outcome.pending = [{"tool_call_id": r.call_id, "tool_name": r.tool_name, "arguments": r.arguments,
                                 "kind": r.kind} for r in paused.waiting]
        await append(waits.SESSION_WAITING, {
            "message_id": str(self.message.id), "step_id": self.step_id, "status": status, "expires_at": expires,
            "tool_call_ids": [r.call_id for r in paused.waiting]}, "step_id")
        if self.on_outcome is not None:  # AgentSpec invoke answers with the pending calls
            self.on_outcome(dataclasses.replace(self.outcome, status=status))
        return paused

    async def end_wait(self, step_id: str) -> list[waits.ToolCallWait]:
        """The answers are in (or their time is up): the turn runs again."""
        for row in await waits.expire(self.session_id, step_id):
            await self.events.append(self.session_id, waits.CALL_ANSWERED, {
                "tool_call_id": row.call_id, "tool_name": row.tool_name, "decision": waits.EXPIRED})
        await self._write_status(SessionStatus.RUNNING, None)
        return await waits.step_rows(self.session_id, step_id)

    async def settle_waited(self, tools: dict[str, Tool], row: waits.ToolCallWait) -> tuple[Any, str | None]:
        """A call of a step that waited: its result, running it if it was approved."""
        call = ToolCall(row.call_id, row.tool_name, _arguments_text(row.arguments))
        if row.kind == RUN or row.status == waits.DONE:
            return row.result, row.error
        if row.status == waits.APPROVED:
            return await self.run_tool(tools, call)
        # The wait this call was given (the setting may have changed since, over a restart).
        waited = (row.expires_at - row.created_at).total_seconds() if row.expires_at else 0
        if row.status == waits.ANSWERED:
            result, error = row.result, row.error
        elif row.kind == CLIENT:
            result, error = None, f"the client sent no result for this call within {waited:g} s"
        elif row.status == waits.EXPIRED:
            result, error = None, f"not run: no one approved this call within {waited:g} s"
        else:
            result, error = None, "not run: the user denied this call" + (f" ({row.reason})" if row.reason else "")
        base = {"step_id": row.step_id, "tool_call_id": row.call_id, "tool_name": row.tool_name,
                "arguments": row.arguments}
        await self.events.append(self.session_id, "tool.completed", {
            **base, "result": result, "error": error, "decision": row.status,
            "duration_ms": round((utcnow() - row.created_at).total_seconds() * 1000, 1)})
        self.outcome.tool_calls.append({"id": row.call_id, "tool_name": row.tool_name, "input": row.arguments,
                                        "output": result, "duration_ms": None, "error": error})
        return result, error


def _arguments_text(arguments: Any) -> str:
    return arguments if isinstance(arguments, str) else json.dumps(arguments)
