"""Messages of a session, nested and flat. Posting a user message starts a turn."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import Field, field_validator
from quart import Blueprint
from quart_schema import tag, validate_querystring, validate_request, validate_response

from app.api.common import OrmOut, Page, PageQuery, RequestBody, page_of
from app.wiring import current_runtime
from app.services import messages as service
from app.services import turns

bp = Blueprint("messages", __name__)

NESTED = "/v1/agents/<agent_id>/sessions/<session_id>/messages"
FLAT = "/v1/sessions/<session_id>/messages"


class TextContent(RequestBody):
    text: str = Field(min_length=1)


class MessageCreate(RequestBody):
    role: Literal["user"] = "user"
    content: TextContent | str = Field(description='{"text": "..."}, or a bare string')

    @field_validator("content")
    @classmethod
    def _not_blank(cls, value: TextContent | str) -> TextContent | str:
        text = value if isinstance(value, str) else value.text
        if not text.strip():
            raise ValueError("message text must not be empty")
        return value

    @property
    def text(self) -> str:
        return self.content if isinstance(self.content, str) else self.content.text


class MessageOut(OrmOut):
    id: UUID
    session_id: str
    sequence: int
    role: str
    content: dict[str, Any]
    created_at: datetime


@bp.post(NESTED)
@bp.post(FLAT)
@tag(["Messages"])
@validate_request(MessageCreate)
@validate_response(MessageOut, 201)
async def create_message(session_id: str, data: MessageCreate, agent_id: str | None = None):
    """Post a user message; the agent's turn starts (or queues) right after."""
    message = await turns.post_user_message(current_runtime(), session_id, data.text, agent_id)
    return MessageOut.model_validate(message), 201


@bp.get(NESTED)
@bp.get(FLAT)
@tag(["Messages"])
@validate_querystring(PageQuery)
@validate_response(Page[MessageOut])
async def list_messages(session_id: str, query_args: PageQuery, agent_id: str | None = None):
    """List a session's messages in sequence order."""
    items, total = await service.list_messages(session_id, query_args.offset, query_args.limit, agent_id)
    return page_of(MessageOut.model_validate, items, total, query_args)
