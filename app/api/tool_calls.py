"""/v1/sessions/{id}/tool-calls: tool calls that wait for a person's approval or for a
result the client computes (docs/api.md §3.9)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, cast

from pydantic import BaseModel, Field
from quart import Blueprint
from quart_schema import document_request, tag, validate_querystring, validate_request, validate_response

from app.api.common import RequestBody, optional_body
from app.models import ToolCallWait
from app.services import tool_calls as service
from app.wiring import current_runtime

bp = Blueprint("tool_calls", __name__)

CALL = "/v1/sessions/<session_id>/tool-calls/<call_id>"
Status = Literal["waiting", "approved", "denied", "answered", "expired", "cancelled"]
Kind = Literal["approval", "client"]  # calls that waited: never `run` (nor its status `done`)


class ToolCallOut(BaseModel):
    tool_call_id: str
    tool_name: str
    arguments: Any
    kind: Kind
    status: Status
    reason: str | None
    result: Any
    error: str | None
    step_id: str
    message_id: str
    requested_at: datetime
    expires_at: datetime | None
    answered_at: datetime | None

    @classmethod
    def of(cls, row: ToolCallWait) -> ToolCallOut:
        # Narrower than the row's enums (see Kind); pydantic checks them here.
        return cls(tool_call_id=row.call_id, tool_name=row.tool_name, arguments=row.arguments,
                   kind=cast(Kind, row.kind), status=cast(Status, row.status), reason=row.reason, result=row.result,
                   error=row.error, step_id=row.step_id,
                   message_id=str(row.message_id), requested_at=row.created_at, expires_at=row.expires_at,
                   answered_at=row.answered_at)


class ToolCallList(BaseModel):
    data: list[ToolCallOut]


class ToolCallQuery(BaseModel):
    status: Status | None = None


class Denial(RequestBody):
    reason: str | None = Field(None, max_length=2000)


class ClientResult(RequestBody):
    result: Any = None
    error: str | None = Field(None, max_length=10000, description="Set when the tool failed; the model is told")


@bp.get("/v1/sessions/<session_id>/tool-calls")
@tag(["Sessions"])
@validate_querystring(ToolCallQuery)
@validate_response(ToolCallList)
async def list_tool_calls(session_id: str, query_args: ToolCallQuery):
    """The session's tool calls that waited for an answer (?status=waiting: still do)."""
    rows = await service.list_calls(session_id, query_args.status)
    return ToolCallList(data=[ToolCallOut.of(row) for row in rows])


@bp.post(f"{CALL}/approve")
@tag(["Sessions"])
@validate_response(ToolCallOut)
async def approve_tool_call(session_id: str, call_id: str):
    """Approve a waiting call: it runs, and the turn goes on. 409 if already answered."""
    return ToolCallOut.of(await service.answer(current_runtime(), session_id, call_id, "approve"))


@bp.post(f"{CALL}/deny")
@tag(["Sessions"])
@document_request(Denial)
@validate_response(ToolCallOut)
async def deny_tool_call(session_id: str, call_id: str):
    """Deny a waiting call: the model is told it was denied (with the reason). The body is optional."""
    data = await optional_body(Denial)
    return ToolCallOut.of(await service.answer(current_runtime(), session_id, call_id, "deny", reason=data.reason))


@bp.post(f"{CALL}/result")
@tag(["Sessions"])
@validate_request(ClientResult)
@validate_response(ToolCallOut)
async def post_tool_result(session_id: str, call_id: str, data: ClientResult):
    """The result of a client tool the turn waits for (or its error)."""
    return ToolCallOut.of(await service.answer(current_runtime(), session_id, call_id, "result",
                                               result=data.result, error=data.error))
