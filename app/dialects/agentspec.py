"""The AgentSpec dialect's shapes (seed 004 + reference/agentspec.md).

Invoke answers are built from a TurnOutcome; the stream maps core events to AgentSpec
event names: message.delta → token (and text), tool.started → tool_call, tool.completed →
tool_result, session.failed/cancelled → error, session.completed → done.

The documented shapes (`usage{input_tokens,...}`, `turn`, `token{content}`, pipeline
`steps` as a list) and the ones the Python SDK (sdk/python) reads (`tokens{input,...}`,
`turns`, `text{text}`, `steps` keyed by name) are both sent where they can coexist.
"""

from __future__ import annotations

import json
import time
from typing import Any

from app.errors import ApiError
from app.events.log import LoggedEvent, sse_frame
from app.runtime import waits
from app.runtime.toolbox import APPROVAL, CLIENT
from app.runtime.turn import TurnOutcome

TERMINAL = ("session.completed", "session.failed", "session.cancelled")
STREAM_ENDS = (*TERMINAL, waits.SESSION_WAITING)  # a turn that waits ends its stream


def usage_with_total(usage: dict[str, int]) -> dict[str, int]:
    inp, out = usage.get("input_tokens", 0), usage.get("output_tokens", 0)
    return {"input_tokens": inp, "output_tokens": out, "total_tokens": inp + out}


def sdk_tokens(usage: dict[str, int]) -> dict[str, int]:
    """The same usage under the names the Python SDK reads (`tokens.input/output/total`)."""
    total = usage_with_total(usage)
    return {"input": total["input_tokens"], "output": total["output_tokens"], "total": total["total_tokens"]}


# Turn failures that say "try again later", not "this is a bug".
UNAVAILABLE_CODES = ("no_model_configured", "database_unavailable", "runner_unavailable")


def raise_for_failure(outcome: TurnOutcome, session_id: str) -> None:
    """A turn that did not complete is an error answer for invoke/continue callers. One
    that waits for tool call answers is not: the answer says what it waits for."""
    if outcome.status == "completed" or outcome.status in waits.WAITING_STATUSES:
        return
    code = (outcome.error or {}).get("code", "failed")
    message = (outcome.error or {}).get("message", "the turn did not complete")
    status = 502 if code.startswith("provider") else 503 if code in UNAVAILABLE_CODES else \
        409 if code == "cancelled" else 500
    raise ApiError(f"{message} (session {session_id})", code=code, status=status)


def invoke_body(outcome: TurnOutcome, session_id: str, turns: int, duration_ms: float) -> dict[str, Any]:
    body = {
        "output": outcome.output,
        "usage": usage_with_total(outcome.usage),
        "tokens": sdk_tokens(outcome.usage),
        "session_id": session_id,
        "turns": turns,
        "duration_ms": round(duration_ms, 1),
        "tool_calls": [{k: v for k, v in call.items() if k != "error" or v is not None} for call in outcome.tool_calls],
        "status": outcome.status,
    }
    if outcome.error:
        body["error"] = outcome.error
    return with_pending(body, outcome)


def with_pending(body: dict[str, Any], outcome: TurnOutcome) -> dict[str, Any]:
    """A turn that waits (status waiting_for_approval / waiting_for_client) lists the
    calls it waits for; answer them with POST /v1/sessions/{id}/tool-calls/{call_id}/..."""
    if outcome.status in waits.WAITING_STATUSES:
        body["pending_tool_calls"] = outcome.pending
    return body


def continue_body(outcome: TurnOutcome, session_id: str, turns: int, duration_ms: float) -> dict[str, Any]:
    """Seed 004's `turn` and the SDK's `turns` (send_message reads only `turns`): one number."""
    return with_pending({
        "output": outcome.output, "usage": usage_with_total(outcome.usage), "tokens": sdk_tokens(outcome.usage),
        "turn": turns, "turns": turns, "duration_ms": round(duration_ms, 1), "session_id": session_id,
        "status": outcome.status}, outcome)


class StreamTranslator:
    """Core events of one turn → AgentSpec SSE frames; sums the turn's usage for `done`.

    `turns` is the session's user-message count once this turn's message is stored."""

    def __init__(self, session_id: str, turns: int = 0):
        self.session_id = session_id
        self.turns = turns
        self.started = time.monotonic()
        self.usage = {"input_tokens": 0, "output_tokens": 0}
        # The turn's last assistant message, as invoke's `output`: "" when it has none (a
        # turn of tool calls only, ended by MAX_ITERATIONS).
        self.final_text = ""

    def frame(self, event: LoggedEvent) -> bytes | None:
        data, kind = event.data, event.type
        if kind == "message.delta":
            # `token` is seed 004's event, `text` the one AsyncStreamingClient.stream_text
            # collects; each client skips the name it does not know.
            token = sse_frame(event.sequence, "token", {"content": data.get("delta", "")})
            return token + sse_frame(event.sequence, "text", {"text": data.get("delta", "")})
        elif kind == "step.retried":
            # Temporal mode: the worker streaming this step was lost and the model is called
            # again. Text already sent for the step cannot be taken back: the client is told
            # to drop it, and `done` carries the answer as stored.
            name, payload = "retry", {"step_id": data.get("step_id"), "message_id": data.get("message_id"),
                                      "attempt": data.get("attempt"), "reason": data.get("reason")}
        elif kind == "message.created":
            if data.get("role") == "assistant":
                self.final_text = (data.get("content") or {}).get("text") or ""
            return None
        elif kind == "tool.started":
            name, payload = "tool_call", {"id": data.get("tool_call_id"), "name": data.get("tool_name"),
                                          "arguments": data.get("arguments")}
        elif kind == "tool.completed":
            name, payload = "tool_result", {"id": data.get("tool_call_id"), "name": data.get("tool_name"),
                                            "output": data.get("result"), "error": data.get("error")}
        elif kind == "step.completed":
            for key in self.usage:
                self.usage[key] += data.get("usage", {}).get(key, 0)
            return None
        elif kind in (waits.APPROVAL_REQUESTED, waits.CLIENT_REQUESTED):
            name, payload = "tool_call_waiting", {
                "id": data.get("tool_call_id"), "name": data.get("tool_name"), "arguments": data.get("arguments"),
                "kind": CLIENT if kind == waits.CLIENT_REQUESTED else APPROVAL}
        elif kind == waits.SESSION_WAITING:  # the stream ends here; the turn goes on once answered
            name, payload = "waiting", {"session_id": self.session_id, "status": data.get("status"),
                                        "tool_call_ids": data.get("tool_call_ids", [])}
        elif kind == "session.failed":
            name, payload = "error", {"code": data.get("code", "failed"), "message": data.get("error", "")}
        elif kind == "session.cancelled":
            name, payload = "error", {"code": "cancelled", "message": data.get("reason", "cancelled")}
        elif kind == "session.completed":
            name, payload = "done", {"output": self.final_text,
                                     "usage": usage_with_total(self.usage), "tokens": sdk_tokens(self.usage),
                                     "session_id": self.session_id, "turns": self.turns,
                                     "duration_ms": round((time.monotonic() - self.started) * 1000, 1),
                                     "reason": data.get("reason")}
        else:
            return None
        return sse_frame(event.sequence, name, payload)


def trigger_input(trigger: dict[str, Any]) -> str:
    """The run input for the Python SDK's `run_pipeline(name, trigger)`, which sends
    `{"trigger": {...}}`: its `input` (or `message`) text when it has one, else the whole
    trigger as JSON, so a step's agent sees every field the caller sent."""
    for key in ("input", "message"):
        if isinstance(trigger.get(key), str):
            return trigger[key]
    return json.dumps(trigger, ensure_ascii=False, default=str)


def run_body(run: dict[str, Any], keyed: bool) -> dict[str, Any]:
    """A finished run, with `tokens` beside `usage` as for invoke. `keyed` (the caller sent
    `trigger`, i.e. is the Python SDK, which iterates `steps.items()`): steps keyed by name,
    each still carrying its `name`. Otherwise seed 004's list, which other clients index."""
    steps = {step["name"]: step for step in run["steps"]} if keyed else run["steps"]
    return {**run, "steps": steps, "tokens": sdk_tokens(run["usage"])}
