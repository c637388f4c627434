"""The AgentSpec dialect's shapes (seed 004 + reference/agentspec.md).

Invoke answers are built from a TurnOutcome; the stream maps core events to AgentSpec
event names: message.delta → token, tool.started → tool_call, tool.completed →
tool_result, session.failed/cancelled → error, session.completed → done.
"""

from __future__ import annotations

import json
from typing import Any

from app.errors import ApiError
from app.events.log import LoggedEvent
from app.runtime.turn import TurnOutcome

TERMINAL = ("session.completed", "session.failed", "session.cancelled")


def usage_with_total(usage: dict[str, int]) -> dict[str, int]:
    inp, out = usage.get("input_tokens", 0), usage.get("output_tokens", 0)
    return {"input_tokens": inp, "output_tokens": out, "total_tokens": inp + out}


# Turn failures that say "try again later", not "this is a bug".
UNAVAILABLE_CODES = ("no_model_configured", "database_unavailable", "runner_unavailable")


def raise_for_failure(outcome: TurnOutcome, session_id: str) -> None:
    """A turn that did not complete is an error answer for invoke/continue callers."""
    if outcome.status == "completed":
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
        "session_id": session_id,
        "turns": turns,
        "duration_ms": round(duration_ms, 1),
        "tool_calls": [{k: v for k, v in call.items() if k != "error" or v is not None} for call in outcome.tool_calls],
        "status": outcome.status,
    }
    if outcome.error:
        body["error"] = outcome.error
    return body


class StreamTranslator:
    """Core events of one turn → AgentSpec SSE frames; sums the turn's usage for `done`."""

    def __init__(self, session_id: str):
        self.session_id = session_id
        self.usage = {"input_tokens": 0, "output_tokens": 0}
        self.output: list[str] = []

    def frame(self, event: LoggedEvent) -> bytes | None:
        data, kind = event.data, event.type
        if kind == "message.delta":
            self.output.append(data.get("delta", ""))
            name, payload = "token", {"content": data.get("delta", "")}
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
        elif kind == "session.failed":
            name, payload = "error", {"code": data.get("code", "failed"), "message": data.get("error", "")}
        elif kind == "session.cancelled":
            name, payload = "error", {"code": "cancelled", "message": data.get("reason", "cancelled")}
        elif kind == "session.completed":
            name, payload = "done", {"usage": usage_with_total(self.usage), "session_id": self.session_id,
                                     "reason": data.get("reason")}
        else:
            return None
        return f"id: {event.sequence}\nevent: {name}\ndata: {json.dumps(payload, default=str)}\n\n".encode()
