"""Answers to tool calls that wait: a person approves or denies a call, or the client
sends the result of a tool it runs (app/runtime/waits.py holds the mechanism)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from app.errors import Conflict, NotFound
from app.models import ToolCallWait
from app.runtime import waits
from app.runtime.toolbox import APPROVAL, CLIENT, RUN
from app.services.sessions import get_session
from app.timeutil import utcnow

if TYPE_CHECKING:
    from app.wiring import Runtime

# What each answer route does: the kind of call it answers and the status it writes.
ANSWERS = {"approve": (APPROVAL, waits.APPROVED), "deny": (APPROVAL, waits.DENIED), "result": (CLIENT, waits.ANSWERED)}


async def list_calls(session_id: str, status: str | None) -> list[ToolCallWait]:
    """The session's calls that waited (or wait, with status=waiting), newest step first."""
    session = await get_session(session_id)
    query = ToolCallWait.filter(session_id=session.id).exclude(kind=RUN)
    if status:
        query = query.filter(status=status)
    return await query.order_by("-created_at", "position").limit(200)


async def answer(runtime: Runtime, session_id: str, call_id: str, action: str, **fields: Any) -> ToolCallWait:
    """Write the answer if the call still waits (each call is answered once), log it,
    and wake the turn, wherever it runs."""
    session = await get_session(session_id)
    kind, status = ANSWERS[action]
    row = await ToolCallWait.filter(session_id=session.id, call_id=call_id).order_by("-created_at").first()
    if row is None or row.kind != kind:
        what = "an approval" if kind == APPROVAL else "a client result"
        raise NotFound(f"no tool call '{call_id}' waiting for {what} in session '{session.id}'")
    answer = {"status": status, "answered_at": utcnow(), **fields}
    stored = {**answer, "result": waits.json_for_db(answer["result"])} if "result" in answer else answer
    if not await ToolCallWait.filter(id=row.id, status=waits.WAITING).update(**stored):
        await row.refresh_from_db()  # what the earlier answer was
        raise Conflict(f"tool call '{call_id}' was already answered (status {row.status})", code="already_answered")
    row.update_from_dict(stored)  # as written: no second read
    data = {"tool_call_id": call_id, "tool_name": row.tool_name, "decision": status}
    if fields.get("reason"):
        data["reason"] = fields["reason"]
    await runtime.events.append(session.id, waits.CALL_ANSWERED, data)
    await runtime.runner.tool_answered(session.id, call_id)
    return row
