"""Messages: reading a session's conversation. Storing one is
app/events/messages.py's `record_message` (for the API and the agent loop alike)."""

from __future__ import annotations

from typing import Any

from app.models import raw_sql
from app.services.sessions import get_session


async def list_messages(session_id: str, offset: int, limit: int,
                        agent_id: str | None = None) -> tuple[list[dict[str, Any]], int]:
    """A page of the conversation as JSON-ready dicts (MessageOut's fields), and the total."""
    session = await get_session(session_id, agent_id)
    return await raw_sql.message_dicts(session.id, offset, limit), await raw_sql.message_count(session.id)
