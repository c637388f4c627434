"""Messages: the conversation, numbered 1, 2, 3 ... per session with no repeats.

Every stored message is announced with a `message.created` event, whoever stores it
(the API for user messages, the agent loop for the rest).
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from app.events.messages import MessageRow
from app.models import Message
from app.services.common import paginate
from app.services.sessions import get_session

if TYPE_CHECKING:
    from app.events.log import EventLog


async def record_message(events: EventLog, session_id: str, role: str, content: dict[str, Any],
                         message_id: uuid.UUID | None = None, step_id: str | None = None) -> Message:
    """Store a message with the session's next sequence number, then announce it."""
    message = await events.insert_message(session_id, message_id or uuid.uuid4(), role, content)
    events.messages.added(session_id, MessageRow(message.id, message.sequence, role, content))
    data = {"message_id": str(message.id), "role": role, "sequence": message.sequence, "content": content}
    if step_id:
        data["step_id"] = step_id
    await events.append(session_id, "message.created", data)
    return message


async def list_messages(session_id: str, offset: int, limit: int, agent_id: str | None = None) -> tuple[list[Message], int]:
    session = await get_session(session_id, agent_id)
    return await paginate(Message.filter(session_id=session.id).order_by("sequence"), offset, limit)
