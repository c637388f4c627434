"""Messages of a session, nested and flat. Posting a user message starts a turn."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import Field, RootModel, ValidationError, field_validator
from quart import Blueprint, request
from quart_schema import (
    RequestSchemaValidationError,
    document_request,
    document_response,
    tag,
    validate_querystring,
    validate_response,
)

from app.api.common import OrmOut, Page, PageQuery, RequestBody, page_of
from app.services import messages as service
from app.services import turns
from app.text import joined_blocks
from app.wiring import current_runtime

bp = Blueprint("messages", __name__)

NESTED = "/v1/agents/<agent_id>/sessions/<session_id>/messages"
FLAT = "/v1/sessions/<session_id>/messages"


class TextContent(RequestBody):
    text: str = Field(min_length=1)


class TextBlock(RequestBody):
    type: Literal["text"]
    text: str


TextBlocks = Annotated[list[TextBlock], Field(min_length=1, max_length=1000)]


class MessageCreate(RequestBody):
    """The seed's form: `{"role": "user", "content": {"text": "..."}}`."""

    role: Literal["user"] = "user"
    content: TextContent | str | TextBlocks = Field(
        description='{"text": "..."}, a bare string, or text blocks [{"type": "text", "text": "..."}]')

    @field_validator("content", mode="before")
    @classmethod
    def _text_blocks_only(cls, value: Any) -> Any:
        # Named here, before the union is tried, so an image block is one clear sentence
        # rather than three failed alternatives.
        for index, block in enumerate(value if isinstance(value, list) else []):
            kind = block.get("type") if isinstance(block, dict) else None
            if isinstance(kind, str) and kind != "text":
                raise ValueError(f"content block {index} has type '{kind}': only 'text' blocks can be posted")
        return value

    @field_validator("content")
    @classmethod
    def _not_blank(cls, value: TextContent | str | list[TextBlock]) -> TextContent | str | list[TextBlock]:
        if not _text_of(value).strip():
            raise ValueError("message text must not be empty")
        return value

    @property
    def text(self) -> str:
        return _text_of(self.content)


def _text_of(content: TextContent | str | list[TextBlock]) -> str:
    if isinstance(content, list):
        return joined_blocks(block.text for block in content)
    return content if isinstance(content, str) else content.text


class MessageEnvelope(RequestBody):
    """Later Everruns clients: `{"message": {"role": "user", "content": [{"type": "text", "text": "..."}]}}`."""

    message: MessageCreate


# The request body as the OpenAPI document shows it; load_posted_message validates it.
class PostedMessage(RootModel[MessageCreate | MessageEnvelope]):
    """Either form: a body with a `message` key is read as the envelope."""


def load_posted_message(body: Any) -> MessageCreate:
    """Validate against the one form the body claims to be, so errors name its own fields
    (`message.content: ...`) instead of listing both forms' complaints."""
    form = MessageEnvelope if isinstance(body, dict) and "message" in body else MessageCreate
    try:
        loaded = form.model_validate(body)
    except ValidationError as exc:
        raise RequestSchemaValidationError(exc) from None
    return loaded.message if isinstance(loaded, MessageEnvelope) else loaded


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
@document_request(PostedMessage)
@validate_response(MessageOut, 201)
async def create_message(session_id: str, agent_id: str | None = None):
    """Post a user message; the agent's turn starts (or queues) right after.

    The body is the seed's `{"role", "content"}` or the `{"message": {...}}` envelope;
    text blocks are joined with a blank line.
    """
    data = load_posted_message(await request.get_json())
    message = await turns.post_user_message(current_runtime(), session_id, data.text, agent_id)
    return MessageOut.model_validate(message), 201


@bp.get(NESTED)
@bp.get(FLAT)
@tag(["Messages"])
@validate_querystring(PageQuery)
@document_response(Page[MessageOut])  # built from the rows as MessageOut's fields, not re-validated
async def list_messages(session_id: str, query_args: PageQuery, agent_id: str | None = None):
    """List a session's messages in sequence order."""
    items, total = await service.list_messages(session_id, query_args.offset, query_args.limit, agent_id)
    return page_of(None, items, total, query_args)
