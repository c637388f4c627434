"""Sessions: create, read, update, delete; nested paths must match the owning agent."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from app.errors import NotFound
from app.models import Session
from app.services.agents import get_active_agent, get_agent
from app.services.common import paginate
from app.services.llm import check_model_exists

if TYPE_CHECKING:
    from app.runtime.runner import TurnRunner


async def create_session(agent_id: str, fields: dict[str, Any]) -> Session:
    agent = await get_active_agent(agent_id)
    await check_model_exists(fields.get("model_id"), "model_id")
    return await Session.create(id=str(uuid.uuid4()), agent=agent, **fields)


async def list_sessions(agent_id: str | None, status: str | None, offset: int, limit: int) -> tuple[list[Session], int]:
    query = Session.all().order_by("-created_at", "id")
    if agent_id is not None:
        agent = await get_agent(agent_id)
        query = query.filter(agent_id=agent.id)
    if status is not None:
        query = query.filter(status=status)
    return await paginate(query, offset, limit)


async def get_session(session_id: str, agent_id: str | None = None) -> Session:
    """The session, or 404; on a nested path the agent must own it."""
    session = await Session.get_or_none(id=session_id)
    if session is None or (agent_id is not None and str(session.agent_id) != agent_id.lower()):
        raise NotFound(f"session '{session_id}' not found")
    return session


async def update_session(session_id: str, changes: dict[str, Any], agent_id: str | None = None) -> Session:
    session = await get_session(session_id, agent_id)
    if "model_id" in changes:
        await check_model_exists(changes["model_id"], "model_id")
    if changes:
        session.update_from_dict(changes)
        await session.save()
    return session


async def delete_session(runner: TurnRunner, session_id: str, agent_id: str | None = None) -> None:
    """Stop any running turn first, so nothing writes to the session after it is gone."""
    session = await get_session(session_id, agent_id)
    await runner.cancel(session.id)
    await session.delete()


async def cancel_turn(runner: TurnRunner, session_id: str, agent_id: str | None = None) -> tuple[Session, bool]:
    """Cancel the running turn and drop queued ones; harmless when the session is idle.

    Returns the session as it is afterwards and whether a turn was stopped."""
    session = await get_session(session_id, agent_id)
    stopped = await runner.cancel(session.id)
    await session.refresh_from_db()
    return session, stopped
