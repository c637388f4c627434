"""Sessions, both nested under an agent (seed 000) and flat under /v1/sessions (seed 001).

Each handler serves both paths: on the nested one Quart passes agent_id, and the
service answers 404 when that agent does not own the session.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, Field
from quart import Blueprint
from quart_schema import document_request, tag, validate_querystring, validate_request, validate_response

from app.api.common import Page, PageQuery, PatchBody, RequestBody, Tags, optional_body, page_of
from app.api.openapi import no_content
from app.services import sessions as service
from app.wiring import current_runtime

bp = Blueprint("sessions", __name__)

NESTED = "/v1/agents/<agent_id>/sessions"
FLAT = "/v1/sessions"

# pending | running | waiting_for_approval | waiting_for_client | failed for agent-loop
# sessions (the waiting ones: a turn paused on a tool call, app/runtime/waits.py);
# running | finished for external ones.
Status = Literal["pending", "running", "waiting_for_approval", "waiting_for_client", "failed", "finished"]


class SessionCreate(RequestBody):
    title: str | None = Field(None, max_length=500)
    tags: Tags = []
    model_id: UUID | None = None
    metadata: dict[str, Any] = {}


class FlatSessionCreate(SessionCreate):
    agent_id: UUID


class SessionPatch(PatchBody):
    NOT_NULL = ("tags", "metadata")
    title: str | None = Field(None, max_length=500)
    tags: Tags | None = None
    model_id: UUID | None = None
    metadata: dict[str, Any] | None = None


class SessionUsage(BaseModel):
    input_tokens: int = 0
    output_tokens: int = 0


class SessionOut(BaseModel):
    """One shape for both kinds of client on shared paths: Everruns reads id, agent_id,
    title; AgentSpec reads session_id, agent (the name), metadata, turns, last_active_at."""

    id: str
    session_id: str
    kind: Literal["agent", "external"]
    agent_id: UUID | None
    agent: str | None
    title: str | None
    metadata: dict[str, Any]
    tags: list[str]
    model_id: UUID | None
    status: str
    last_error: str | None
    usage: SessionUsage
    turns: int
    created_at: datetime
    updated_at: datetime
    last_active_at: datetime

    @classmethod
    def of(cls, s, turns: int = 0, agent_name: str | None = None) -> SessionOut:
        """`agent_name`: when the caller read only that of the agent (service.session_to_show);
        otherwise it comes from the agent the services loaded with the session."""
        if agent_name is None and (agent := getattr(s, "_agent", None)) is not None:
            agent_name = agent.name
        return cls(id=s.id, session_id=s.id, kind=s.kind, agent_id=s.agent_id, agent=agent_name,
                   title=s.title, metadata=s.metadata or {}, tags=s.tags, model_id=s.model_id, status=s.status,
                   last_error=s.last_error, usage=SessionUsage.model_validate(s.usage or {}), turns=turns,
                   created_at=s.created_at, updated_at=s.updated_at, last_active_at=s.updated_at)


class SessionPage(Page[SessionOut]):
    sessions: list[SessionOut] = Field(description="The same items, under the name AgentSpec clients read")


class SessionListQuery(PageQuery):
    agent_id: UUID | None = None
    status: Status | None = None


@bp.post(NESTED)
@tag(["Sessions", "AgentSpec"])
@document_request(SessionCreate)
@validate_response(SessionOut, 201)
async def create_session(agent_id: str):
    """Create a session for an agent (status `pending`). The body is optional."""
    data = await optional_body(SessionCreate)
    session = await service.create_session(current_runtime().events, agent_id, data.model_dump())
    return SessionOut.of(session), 201


@bp.post(FLAT)
@tag(["Sessions"])
@validate_request(FlatSessionCreate)
@validate_response(SessionOut, 201)
async def create_session_flat(data: FlatSessionCreate):
    """Create a session; the agent is named in the body."""
    session = await service.create_session(current_runtime().events, str(data.agent_id), data.model_dump(exclude={"agent_id"}))
    return SessionOut.of(session), 201


@bp.get(NESTED)
@bp.get(FLAT)
@tag(["Sessions"])
@validate_querystring(SessionListQuery)
@validate_response(SessionPage)
async def list_sessions(query_args: SessionListQuery, agent_id: str | None = None):
    """List sessions, newest first: one agent's (nested path or ?agent_id=) or all."""
    owner = agent_id or (str(query_args.agent_id) if query_args.agent_id else None)
    items, total = await service.list_sessions(owner, query_args.status, query_args.offset, query_args.limit)
    page = page_of(lambda s: SessionOut.of(s, s.turns), items, total, query_args)
    return {**page, "sessions": page["data"]}


@bp.get(f"{NESTED}/<session_id>")
@bp.get(f"{FLAT}/<session_id>")
@tag(["Sessions"])
@validate_response(SessionOut)
async def get_session(session_id: str, agent_id: str | None = None):
    """Get a session."""
    session, agent_name = await service.session_to_show(session_id, agent_id)
    return SessionOut.of(session, session.turns, agent_name)


@bp.patch(f"{NESTED}/<session_id>")
@bp.patch(f"{FLAT}/<session_id>")
@tag(["Sessions"])
@validate_request(SessionPatch)
@validate_response(SessionOut)
async def update_session(session_id: str, data: SessionPatch, agent_id: str | None = None):
    """Update title, tags or model_id (null clears title and model_id)."""
    session = await service.update_session(current_runtime().events, session_id, data.changes(), agent_id)
    return SessionOut.of(session, session.turns)  # as read by this PATCH: its turns are not written here


@bp.delete(f"{NESTED}/<session_id>")
@bp.delete(f"{FLAT}/<session_id>")
@tag(["Sessions"])
@no_content
async def delete_session(session_id: str, agent_id: str | None = None):
    """Delete a session with its messages and events."""
    await service.delete_session(current_runtime(), session_id, agent_id)
    return "", 204


class CancelOut(BaseModel):
    session_id: str
    status: str
    cancelled: bool


@bp.post(f"{NESTED}/<session_id>/cancel")
@bp.post(f"{FLAT}/<session_id>/cancel")
@tag(["Sessions"])
@validate_response(CancelOut, 202)
async def cancel_session(session_id: str, agent_id: str | None = None):
    """Stop the running turn (keeping what was said) and drop queued ones."""
    session, stopped = await service.cancel_turn(current_runtime().runner, session_id, agent_id)
    return CancelOut(session_id=session.id, status=session.status, cancelled=stopped), 202
