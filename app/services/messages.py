"""Messages: reading a session's conversation. Storing one is
app/events/messages.py's `record_message` (for the API and the agent loop alike)."""

from __future__ import annotations

from app.models import Message
from app.services.common import paginate
from app.services.sessions import get_session


async def list_messages(session_id: str, offset: int, limit: int, agent_id: str | None = None) -> tuple[list[Message], int]:
    session = await get_session(session_id, agent_id)
    return await paginate(Message.filter(session_id=session.id).order_by("sequence"), offset, limit)
