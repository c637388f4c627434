"""The Agent Runtime API (seed 003): root-level /sessions and /events that external
agents report to. A thin translation over the core sessions and event log."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictInt, field_validator
from quart import Blueprint, Response
from quart_schema import tag, validate_querystring, validate_request

from app.api.common import INT64_MAX, MAX_LIMIT, SequenceNumber
from app.api.responses import MIMETYPE
from app.dialects.agent_runtime import ar_session, session_page
from app.services import agent_runtime as service
from app.timeutil import given_as_utc
from app.wiring import current_runtime

bp = Blueprint("agent_runtime", __name__)

def _reachable(session_id: str) -> str:
    if session_id in (".", ".."):  # URLs drop such path segments (browsers, curl): no client could reach it
        raise ValueError("'.' and '..' cannot be session ids")
    return session_id


SessionId = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[^/\s]+$"), AfterValidator(_reachable)]


ProjectDir = Field(None, max_length=1000)
AgentName = Field(None, max_length=200)
ParentName = Field(None, max_length=500)


class AgentRuntimeSessionCreate(BaseModel):
    session_id: SessionId
    session_name: str = Field(min_length=1, max_length=500)
    project_dir: str | None = ProjectDir
    agent_name: str | None = AgentName
    parent_session_name: str | None = ParentName


class AgentRuntimeMetadataPatch(BaseModel):
    """Unknown fields are ignored, as the original server did: its clients send what they
    know (a resumed run sends `last_resumed_at`), and a 400 would lose the run."""

    model_config = ConfigDict(extra="ignore")
    session_name: str | None = Field(None, min_length=1, max_length=500)
    project_dir: str | None = ProjectDir
    agent_name: str | None = AgentName
    parent_session_name: str | None = ParentName
    last_resumed_at: datetime | None = None

    @field_validator("last_resumed_at", mode="before")
    @classmethod
    def _text(cls, value: Any) -> Any:
        # ISO 8601 text, as a hook event's timestamp: pydantic would also take a number of seconds.
        if value is not None and not isinstance(value, str):
            raise ValueError("must be an ISO 8601 date and time")
        return value

    @field_validator("last_resumed_at")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        return given_as_utc(value)


class HookEvent(BaseModel):
    """Extra fields are kept: hook scripts send what their agent gives them."""

    model_config = ConfigDict(extra="allow")
    event_type: Literal["session_start", "pre_tool", "post_tool", "session_stop", "message"]
    session_id: SessionId
    session_name: str = Field(min_length=1, max_length=500)
    timestamp: str
    tool_name: str | None = None
    tool_input: dict[str, Any] | None = None
    tool_output: Any = None
    error: str | None = None
    exit_code: StrictInt | None = None  # a number: not "1", not true
    reason: str | None = None
    # Used when the event creates its session (the columns' limits).
    project_dir: str | None = ProjectDir
    agent_name: str | None = AgentName
    parent_session_name: str | None = ParentName
    role: Literal["user", "assistant"] | None = None
    content: list[dict[str, Any]] | str | None = None

    @field_validator("timestamp")
    @classmethod
    def _iso(cls, value: str) -> str:
        datetime.fromisoformat(value.replace("Z", "+00:00"))  # raises ValueError when not ISO 8601
        return value

    def payload(self) -> dict[str, Any]:
        return self.model_dump(exclude_unset=True)  # keeps falsy tool_output (0, "", false)


class SessionsQuery(BaseModel):
    """Also validates /ws `list_sessions`. The bounds make a huge number a 400, not an
    overflow in the database driver."""

    limit: int = Field(service.SESSION_PAGE, ge=1, le=MAX_LIMIT)
    before: str | None = Field(None, min_length=1, max_length=1000)


class AgentRuntimeEventsQuery(BaseModel):
    after: SequenceNumber = 0
    limit: int | None = Field(None, ge=1, le=INT64_MAX)
    # "all": also the loop events with no Agent Runtime type (steps, deltas, ...).
    events: Literal["agent_runtime", "all"] = "agent_runtime"


@bp.get("/sessions")
@tag(["Agent Runtime"])
@validate_querystring(SessionsQuery)
async def list_sessions(query_args: SessionsQuery):
    """Sessions newest first (both kinds), a page of `limit` (default 100); the next page
    is `?before=<next>`, and `next` is null on the last one."""
    sessions, cursor = await service.list_sessions(query_args.limit, query_args.before)
    return session_page(sessions, cursor)


@bp.post("/sessions")
@tag(["Agent Runtime"])
@validate_request(AgentRuntimeSessionCreate)
async def create_session(data: AgentRuntimeSessionCreate):
    """Create an external session with a client-chosen id (409 when it exists)."""
    fields = data.model_dump(exclude_unset=True)
    session = await service.create_session(current_runtime(), fields.pop("session_id"), fields.pop("session_name"), **fields)
    return {"ok": True, "session": ar_session(session)}


@bp.get("/sessions/<session_id>")
@tag(["Agent Runtime"])
async def get_session(session_id: str):
    return {"session": ar_session(*await service.session_to_show(session_id))}


@bp.get("/sessions/<session_id>/status")
@tag(["Agent Runtime"])
async def session_status(session_id: str):
    """running | finished | not_existent (never a 404)."""
    return {"status": await service.session_status(session_id)}


@bp.get("/sessions/<session_id>/result")
@tag(["Agent Runtime"])
async def session_result(session_id: str):
    """Text of the newest assistant message; 400 while running, 404 when there is none."""
    return {"result": await service.session_result(session_id)}


@bp.patch("/sessions/<session_id>/metadata")
@tag(["Agent Runtime"])
@validate_request(AgentRuntimeMetadataPatch)
async def update_metadata(session_id: str, data: AgentRuntimeMetadataPatch):
    session = await service.update_metadata(current_runtime(), session_id, data.model_dump(exclude_unset=True))
    return {"ok": True, "session": ar_session(session)}


@bp.post("/sessions/<session_id>/stop")
@tag(["Agent Runtime"])
async def stop_session(session_id: str):
    """Agent-loop sessions: cancel the running turn (and queued ones). External sessions
    are run by their own agent: 409."""
    session, stopped = await service.stop_session(current_runtime(), session_id)
    return {"ok": True, "stopped": stopped, "session": ar_session(session)}


@bp.delete("/sessions/<session_id>")
@tag(["Agent Runtime"])
async def delete_session(session_id: str):
    """Delete a session and all its events (and messages)."""
    count = await service.delete_session(current_runtime(), session_id)
    return {"ok": True, "session_id": session_id, "deleted": {"session": True, "events_count": count}}


@bp.get("/sessions/<session_id>/events")
@bp.get("/events/<session_id>")
@tag(["Agent Runtime"])
@validate_querystring(AgentRuntimeEventsQuery)
async def list_events(session_id: str, query_args: AgentRuntimeEventsQuery):
    """A session's events, oldest first; page with ?after=<sequence>&limit=. Loop events
    with no Agent Runtime type only with ?events=all. A long list is streamed (chunked):
    without a limit it may be as long as the log."""
    body = await service.event_list(session_id, query_args.after, query_args.limit,
                                    everything=query_args.events == "all")
    response = Response(body, mimetype=MIMETYPE)
    # No RESPONSE_TIMEOUT: it would cut a long list to a slow reader short, leaving a
    # truncated document. A client that takes nothing is cut off by SEND_TIMEOUT_SECONDS.
    response.timeout = None
    return response


@bp.post("/sessions/<session_id>/events")
@tag(["Agent Runtime"])
@validate_request(HookEvent)
async def post_session_event(session_id: str, data: HookEvent):
    """Add an event to a session (an unknown one is created, `implicit`); session_stop finishes it."""
    event = await service.record_event(current_runtime(), data.payload(), url_session_id=session_id)
    return {"ok": True, "id": event.id}


@bp.post("/events")
@tag(["Agent Runtime"])
@validate_request(HookEvent)
async def post_event(data: HookEvent):
    """Legacy: session_start creates or resumes the session, session_stop finishes it; any
    other event for an unknown session creates it `implicit`."""
    event = await service.record_event(current_runtime(), data.payload())
    return {"ok": True, "id": event.id}
