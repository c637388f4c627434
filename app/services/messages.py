"""Messages: the conversation, numbered 1, 2, 3 ... per session with no repeats."""

from __future__ import annotations

from typing import Any

from tortoise.transactions import in_transaction

from app.models import Message, Session
from app.runtime import hooks
from app.services.common import paginate
from app.services.sessions import get_session


async def append_message(session_id: str, role: str, content: dict[str, Any]) -> Message:
    """Store a message with the session's next sequence number, atomically."""
    async with in_transaction():
        sequence = await Session.next_sequence(session_id, "message_seq")
        return await Message.create(session_id=session_id, sequence=sequence, role=role, content=content)


async def post_user_message(session_id: str, text: str, agent_id: str | None = None) -> Message:
    session = await get_session(session_id, agent_id)
    message = await append_message(session.id, "user", {"text": text})
    await hooks.on_user_message(session, message)
    return message


async def list_messages(session_id: str, offset: int, limit: int, agent_id: str | None = None) -> tuple[list[Message], int]:
    session = await get_session(session_id, agent_id)
    return await paginate(Message.filter(session_id=session.id).order_by("sequence"), offset, limit)
