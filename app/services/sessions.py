"""Sessions: create, read, update, delete; nested paths must match the owning agent."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from tortoise.exceptions import DoesNotExist

from app.auth.principal import new_owner, owner_restriction, visible
from app.errors import InvalidRequest, NotFound
from app.models import Event, Session, raw_sql
from app.models.enums import SessionKind
from app.services.agents import get_active_agent, get_agent
from app.services.common import as_uuid, existing_key, paginate, save_changes
from app.services.llm import check_model_exists

if TYPE_CHECKING:
    from app.events.log import EventLog
    from app.runtime.runner import Runner
    from app.wiring import Runtime


async def create_session(events: EventLog, agent_id: str, fields: dict[str, Any]) -> Session:
    agent = await get_active_agent(agent_id)
    await check_model_exists(fields.get("model_id"), "model_id")
    session = await Session.create(id=str(uuid.uuid4()), agent=agent, owner_id=new_owner(), **fields)
    events.notify_session("session_created", session.id)
    return session


async def list_sessions(agent_id: str | None, status: str | None, offset: int, limit: int) -> tuple[list[Session], int]:
    query = visible(Session.all()).select_related("agent").order_by("-created_at", "id")
    if agent_id is not None:
        agent = await get_agent(agent_id)
        query = query.filter(agent_id=agent.id)
    if status is not None:
        query = query.filter(status=status)
    return await paginate(query, offset, limit)


async def get_session(session_id: str, agent_id: str | None = None) -> Session:
    """The session, or 404; on a nested path the agent must own it."""
    not_found = f"session '{session_id}' not found"
    session = await raw_sql.session_with_agent(existing_key(Session, "id", session_id, not_found), *owner_restriction())
    return await _on_path(session, agent_id, not_found)


async def session_to_show(session_id: str, agent_id: str | None = None) -> tuple[Session, str | None]:
    """get_session() for a GET: the session (its turn count included) and its agent's
    name, in one statement (raw_sql.session_to_show)."""
    not_found = f"session '{session_id}' not found"
    session, agent_name = await raw_sql.session_to_show(existing_key(Session, "id", session_id, not_found),
                                                        *owner_restriction())
    return await _on_path(session, agent_id, not_found), agent_name


async def _on_path(session: Session | None, agent_id: str | None, not_found: str) -> Session:
    if session is not None and agent_id is not None and (session.agent_id is None
                                                         or session.agent_id != as_uuid(agent_id)):
        # The path may name the agent instead of giving its id. An external session has no
        # agent (None): it must not pass as the session of a name that is no id (also None).
        agent = await get_agent(agent_id)
        session = session if session.agent_id == agent.id else None
    if session is None:
        raise NotFound(not_found)
    return session


async def turn_count(session_id: str) -> int:
    """User messages of the session now (AgentSpec's `turns`): its row's count, which the
    database keeps (Session.turns); a Session read earlier may be behind."""
    return await raw_sql.turn_count(session_id)


async def update_session(events: EventLog, session_id: str, changes: dict[str, Any],
                         agent_id: str | None = None) -> Session:
    session = await get_session(session_id, agent_id)
    if "model_id" in changes:
        if changes["model_id"] is not None and session.kind == SessionKind.EXTERNAL:
            raise InvalidRequest("model_id: an external session runs no turns here, so it has no model")
        await check_model_exists(changes["model_id"], "model_id")
    if changes:
        await save_changes(session, changes)
        events.notify_session("session_updated", session.id)
    return session


async def delete_session(runtime: Runtime, session_id: str, agent_id: str | None = None) -> int:
    """Delete a session with its messages and events; returns how many events went.

    Any running turn is stopped first, so nothing writes to the session after it is gone."""
    session = await get_session(session_id, agent_id)
    if session.kind != SessionKind.EXTERNAL:  # an external agent's session has no turn here (nor a runner to ask)
        await runtime.runner.cancel(session.id)
    events_count = await Event.filter(session_id=session.id).count()
    await session.delete()
    runtime.events.notify_session("session_deleted", session.id, session.owner_id)
    runtime.events.forget_session(session.id)
    runtime.bus.end_session(session.id)  # its SSE streams end instead of idling forever
    if session.kind != SessionKind.EXTERNAL:
        # A message posted while the turn wound down can have started another turn on the
        # session before the row went: it ends now, writing nothing.
        await runtime.runner.session_deleted(session.id)
    return events_count


async def cancel_turn(runner: Runner, session_id: str, agent_id: str | None = None) -> tuple[Session, bool]:
    """Cancel the running turn and drop queued ones; harmless when the session is idle.

    Returns the session as it is afterwards and whether a turn was stopped."""
    session = await get_session(session_id, agent_id)
    if session.kind == SessionKind.EXTERNAL:
        return session, False  # its turns run in its own agent, not here (§5.9)
    stopped = await runner.cancel(session.id)
    try:
        await session.refresh_from_db()
    except DoesNotExist:  # a DELETE won the race while the turn wound down: as missing as any other
        raise NotFound(f"session '{session_id}' not found") from None
    return session, stopped
