"""A session's events: live SSE (with replay and resume) or a JSON page of the log.

`GET .../events` answers what `?format=` names (`json` or `sse`); without it, SSE unless
`Accept` prefers application/json. The `/v1/sessions/{id}/sse` alias always streams.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field
from quart import Blueprint, Response, request
from quart_schema import document_response, tag, validate_querystring

from app.api.common import MAX_LIMIT, SEQUENCE_MAX, SequenceNumber
from app.auth.stream_watch import watch_credential
from app.errors import InvalidRequest
from app.events.sse import SSE_HEADERS, StreamOptions, session_stream
from app.services.sessions import get_session
from app.wiring import current_runtime

bp = Blueprint("events", __name__)

NESTED = "/v1/agents/<agent_id>/sessions/<session_id>/events"
FLAT = "/v1/sessions/<session_id>/events"
ALIAS = "/v1/sessions/<session_id>/sse"

LAST_EVENT_ID = re.compile(r"[0-9]{1,20}")


class EventsQuery(BaseModel):
    format: Literal["json", "sse"] | None = Field(
        None, description="json: the JSON page; sse: the stream; absent: chosen by Accept (SSE unless it prefers JSON)")
    since: SequenceNumber | None = Field(None, description="SSE: resume after this sequence (or Last-Event-ID)")
    after: SequenceNumber = Field(0, description="JSON: events with sequence greater than this")
    limit: int = Field(100, ge=1, le=MAX_LIMIT, description="JSON: page size")
    types: str | None = Field(None, description="Only these types, comma-separated")
    exclude: str | None = Field(None, description="Not these types, comma-separated")


class EventOut(BaseModel):
    id: int
    session_id: str
    sequence: int
    type: str
    data: dict[str, Any]
    created_at: datetime


class EventPage(BaseModel):
    data: list[EventOut]
    total: int
    after: int
    limit: int
    next_after: int


def _type_set(raw: str | None) -> frozenset[str] | None:
    return frozenset(t.strip() for t in raw.split(",") if t.strip()) or None if raw else None


def _resume_point(query: EventsQuery) -> int:
    header = request.headers.get("Last-Event-ID")
    if header is None:
        return query.since or 0
    # ASCII digits only: str.isdigit() also accepts "²", which int() then refuses.
    if not LAST_EVENT_ID.fullmatch(header.strip()) or int(header) > SEQUENCE_MAX:
        raise InvalidRequest("Last-Event-ID: must be the sequence number of the last event received "
                             f"(0 to {SEQUENCE_MAX})")
    return int(header)


def _wants_json(query: EventsQuery) -> bool:
    """?format= first: a plain HTTP client (urllib sends no Accept, requests and httpx send
    */*) cannot be told apart from an SSE client by its headers, and a stream never ends."""
    if request.path.endswith("/sse"):
        if query.format == "json":
            raise InvalidRequest("format: /sse always streams; use .../events?format=json for the JSON page")
        return False
    if query.format is not None:
        return query.format == "json"
    best = request.accept_mimetypes.best_match(["text/event-stream", "application/json"])
    return best == "application/json"


@bp.get(NESTED)
@bp.get(FLAT)
@bp.get(ALIAS)
@tag(["Events"])
@validate_querystring(EventsQuery)
@document_response(EventPage)
async def session_events(session_id: str, query_args: EventsQuery, agent_id: str | None = None):
    """Stream the session's events as SSE (default), or page them as JSON (?format=json, or Accept: application/json).

    SSE frames are `id: <sequence>`, `event: <type>`, `data: <json payload>`. Resume with
    Last-Event-ID or ?since=; filter with ?types= and ?exclude=.
    """
    session = await get_session(session_id, agent_id)
    runtime = current_runtime()
    types, exclude = _type_set(query_args.types), _type_set(query_args.exclude)
    if _wants_json(query_args):
        items, total = await runtime.events.page(session.id, query_args.after, query_args.limit, types, exclude)
        next_after = items[-1].sequence if items else query_args.after
        return EventPage(data=[EventOut(**e.to_json()) for e in items], total=total,
                         after=query_args.after, limit=query_args.limit, next_after=next_after)
    options = StreamOptions(since=_resume_point(query_args), types=types, exclude=exclude,
                            heartbeat_seconds=runtime.settings.sse_heartbeat_seconds,
                            retry_ms=runtime.settings.sse_retry_ms)
    stream = session_stream(runtime.events, runtime.bus, session.id, options, watch_credential())
    response = Response(stream, headers=SSE_HEADERS)
    response.timeout = None  # a stream lives as long as the client stays
    return response
