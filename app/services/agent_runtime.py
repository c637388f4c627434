"""Sessions and events reported by external agents (the Agent Runtime API).

They live in the same tables and the same event log as agent-loop sessions: an
external session is a Session with kind "external", and its posted hook events are
log entries whose type is the hook's event_type. Only the shapes differ, and those are
in app/dialects/agent_runtime.py.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import uuid
from collections.abc import AsyncIterator, Collection
from typing import TYPE_CHECKING, Any

from tortoise.exceptions import IntegrityError
from tortoise.expressions import Q

from app.auth.principal import new_owner, owner_restriction, visible
from app.dialects.agent_runtime import (
    AR_EVENT_TYPES,
    MAPPED_CORE_TYPES,
    ar_event,
    ar_session,
    has_ar_meaning,
    message_text,
)
from app.errors import Conflict, InvalidRequest, NotFound, SessionGone
from app.events.bus import SessionNotice
from app.events.listing import event_document
from app.events.log import EventLog, LoggedEvent
from app.models import Message, Session, raw_sql
from app.models.enums import SessionKind, SessionStatus
from app.services.common import existing_key, fits_column, save_changes
from app.services.sessions import cancel_turn
from app.services.sessions import delete_session as delete_core_session
from app.timeutil import utcnow

if TYPE_CHECKING:
    from app.wiring import Runtime

NOT_FOUND = "Session not found"
# How often an event is stored again when its session is deleted each time between the
# check and the insert (record_event): more than once needs DELETEs sent again and again.
EVENT_TRIES = 3


SESSION_PAGE = 100  # sessions per page when the client names no limit (REST and /ws init)
KNOWN_PAGE = 500  # session ids per query when the /ws feed checks which still exist
BAD_CURSOR = "before: not a cursor this server gave out (use the `next` of the previous page)"


def session_cursor(session: Session) -> str:
    """Opaque to clients: the (created_at, id) of the last session of a page, so the next
    page starts right after it even when sessions were created or deleted meanwhile."""
    raw = json.dumps([session.created_at.isoformat(), session.id], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _parse_cursor(cursor: str) -> tuple[dt.datetime, str]:
    try:
        created_at, session_id = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        when = dt.datetime.fromisoformat(created_at)
    except (binascii.Error, UnicodeDecodeError, ValueError, TypeError):  # JSONDecodeError is a ValueError
        raise InvalidRequest(BAD_CURSOR) from None
    if when.tzinfo is None or not isinstance(session_id, str):
        raise InvalidRequest(BAD_CURSOR)
    if not fits_column(Session, "id", session_id):  # no session has such an id
        raise InvalidRequest(BAD_CURSOR)
    return when, session_id


async def list_sessions(limit: int = SESSION_PAGE, before: str | None = None) -> tuple[list[Session], str | None]:
    """One page of the sessions the caller may see, newest first (created_at, then id, so
    equal times still have one order), and the cursor of the next page (None: last page)."""
    query = visible(Session.all())
    if before is not None:
        created_at, session_id = _parse_cursor(before)
        query = query.filter(Q(created_at__lt=created_at) | Q(created_at=created_at, id__lt=session_id))
    rows = list(await query.select_related("agent").order_by("-created_at", "-id").limit(limit + 1))
    return rows[:limit], (session_cursor(rows[limit - 1]) if len(rows) > limit else None)


async def get_session(session_id: str) -> Session:
    key = existing_key(Session, "id", session_id, NOT_FOUND)
    session = await raw_sql.session_with_agent(key, *owner_restriction())
    if session is None:
        raise NotFound(NOT_FOUND)
    return session


async def session_to_show(session_id: str) -> tuple[Session, str | None]:
    """get_session() for a GET: the session and its agent's name (raw_sql.session_to_show)."""
    key = existing_key(Session, "id", session_id, NOT_FOUND)
    session, agent_name = await raw_sql.session_to_show(key, *owner_restriction())
    if session is None:
        raise NotFound(NOT_FOUND)
    return session, agent_name


async def create_session(runtime: Runtime, session_id: str, session_name: str, *, status: SessionStatus = SessionStatus.RUNNING,
                         implicit: bool = False, **optional: str | None) -> Session:
    """`optional`: project_dir, agent_name, parent_session_name."""
    if await Session.exists(id=session_id):  # ids are global: another user's id is taken too
        raise Conflict("Session already exists", code="session_exists")
    columns: dict[str, Any] = dict(optional)  # not to be taken for create()'s using_db
    await Session.create(id=session_id, kind=SessionKind.EXTERNAL, status=status, title=session_name, implicit=implicit,
                         owner_id=new_owner(), **columns)
    # A new log, numbered from 1: an id used before (its session gone by a cascade, not
    # through this server's DELETE) may still have its old numbers remembered here.
    runtime.events.forget_session(session_id)
    runtime.events.notify_session("session_created", session_id)
    return await get_session(session_id)


METADATA_FIELDS = ("session_name", "project_dir", "agent_name", "parent_session_name", "last_resumed_at")


async def update_metadata(runtime: Runtime, session_id: str, changes: dict[str, Any]) -> Session:
    if not changes:
        raise InvalidRequest(f"At least one of {', '.join(METADATA_FIELDS)} must be provided")
    session = await get_session(session_id)
    if "session_name" in changes:
        changes["title"] = changes.pop("session_name")
    await save_changes(session, changes)
    runtime.events.notify_session("session_updated", session_id)
    return session


async def stop_session(runtime: Runtime, session_id: str) -> tuple[Session, bool]:
    """Stop an agent-loop session: cancel its running turn and drop queued ones. An
    external session is run by its own agent, which this server cannot stop (409)."""
    session = await get_session(session_id)
    if session.kind == SessionKind.EXTERNAL:
        raise Conflict("External sessions are run by their own agent; stop it there (its session_stop "
                       "event finishes the session)", code="external_session")
    try:
        _, stopped = await cancel_turn(runtime.runner, session_id)
    except NotFound:  # deleted meanwhile; this API words its 404 its own way
        raise NotFound(NOT_FOUND) from None
    return await get_session(session_id), stopped


async def delete_session(runtime: Runtime, session_id: str) -> int:
    await get_session(session_id)
    return await delete_core_session(runtime, session_id)


async def session_status(session_id: str) -> str:
    try:
        session = await get_session(session_id)
    except NotFound:
        return "not_existent"
    return ar_session(session)["status"]


async def session_result(session_id: str) -> str:
    """The newest assistant text: 404 when there is none, 400 while still running."""
    session = await get_session(session_id)
    if ar_session(session)["status"] != SessionStatus.FINISHED:
        raise InvalidRequest("Session not finished")
    message = await Message.filter(session_id=session_id, role="assistant").order_by("-sequence").first()
    if message is not None:
        return message.content.get("text", "")
    for event in reversed(await EventLog.read(session_id, types=("message",))):
        if event.data.get("role") == "assistant":
            return message_text(event.data.get("content"))
    raise NotFound("No assistant message in this session")


async def record_event(runtime: Runtime, payload: dict[str, Any],
                       url_session_id: str | None = None) -> LoggedEvent:
    """Store a hook event. `session_start` (re)opens a session, `session_stop` finishes it.

    An event for an unknown session creates it rather than being lost (hooks installed
    mid-session, a lost first event): marked `implicit` unless the event is its
    session_start. An id another user has is still a 409 (create_session).
    """
    event_type = payload["event_type"]
    if event_type not in AR_EVENT_TYPES:
        raise InvalidRequest(f"event_type: must be one of {', '.join(AR_EVENT_TYPES)}")
    session_id = payload["session_id"]
    if url_session_id is not None and session_id != url_session_id:
        raise InvalidRequest("session_id in the body does not match the URL")
    data = {k: v for k, v in payload.items() if k not in ("event_type", "session_id")}
    for attempt in range(EVENT_TRIES):
        if attempt or not _goes_straight_in(runtime, session_id, event_type):
            await _open_session_for(runtime, payload)
        try:
            return await runtime.events.append(session_id, event_type, data)
        except SessionGone:
            # Deleted between the check and the insert (a DELETE racing the event). The
            # event came after the DELETE, then, and creates the session again, as for any
            # event of an unknown session: it is not lost to a 409 (§6.2).
            continue
    raise Conflict("Session was deleted again each time this event was stored; send it again",
                   code="session_deleted")


def _goes_straight_in(runtime: Runtime, session_id: str, event_type: str) -> bool:
    """Whether the event can be stored without reading its session first: most events of
    a session this process is writing to already (issue 13: the read was a twentieth
    of a `POST .../events`). Not a session_start or session_stop (they move the status),
    not for a caller who may only write to their own sessions. Should the session be gone
    after all (deleted elsewhere), the insert fails on its foreign key (SessionGone) and
    the event takes the usual path, creating the session again."""
    return (event_type not in ("session_start", "session_stop") and not owner_restriction()[0]
            and runtime.events.numbers_events_of(session_id))


async def _open_session_for(runtime: Runtime, payload: dict[str, Any]) -> None:
    """The session the event goes to: created if unknown, or its status moved on by a
    session_start or session_stop."""
    session_id, event_type = payload["session_id"], payload["event_type"]
    transition = event_type in ("session_start", "session_stop")
    if transition:
        session = await raw_sql.session_with_agent(session_id, *owner_restriction())
        exists = session is not None
    else:  # most events: only whether it exists (a narrower read, no model instance)
        session, exists = None, await raw_sql.session_exists(session_id, *owner_restriction())
    if not exists:
        optional = {k: payload[k] for k in ("project_dir", "agent_name", "parent_session_name") if k in payload}
        try:
            await create_session(runtime, session_id, payload["session_name"], implicit=event_type != "session_start",
                                 status=SessionStatus.FINISHED if event_type == "session_stop" else SessionStatus.RUNNING,
                                 **optional)
        except (Conflict, IntegrityError):
            if not await raw_sql.session_exists(session_id, *owner_restriction()):
                raise Conflict("Session already exists", code="session_exists") from None  # another user's id
            # Created since the check by another event of the same session: this one goes
            # in it, as if it had been there (its session_start or session_stop applies).
            await _open_session_for(runtime, payload)
    elif session is not None and session.kind == SessionKind.EXTERNAL:
        await _apply_transition(runtime, session, event_type)


async def _apply_transition(runtime: Runtime, session: Session, event_type: str) -> None:
    if event_type == "session_stop" and session.status != SessionStatus.FINISHED:
        session.status = SessionStatus.FINISHED
    elif event_type == "session_start" and session.status == SessionStatus.FINISHED:
        session.status, session.last_resumed_at = SessionStatus.RUNNING, utcnow()  # a resumed session runs again
    else:
        return
    await session.save(update_fields=["status", "last_resumed_at", "updated_at"])
    runtime.events.notify_session("session_updated", session.id)


async def event_list(session_id: str, after: int, limit: int | None,
                     everything: bool = False) -> bytes | AsyncIterator[bytes]:
    """The body of `{"events": [...]}`, oldest first: all of them unless the client pages
    (no silent cap), so written as the log is read when one batch does not hold it
    (app/events/listing.py). Without `everything`, only events with an Agent Runtime
    meaning, still `limit` of them when there are (a short page means the end, as for any
    reader). A missing session is a 404 here, before the first byte."""
    session, agent_name = await session_to_show(session_id)  # only the agent's name is shown
    name = ar_session(session, agent_name)["session_name"]
    return await event_document("events", session_id, after, limit, lambda event: ar_event(event, name),
                                None if everything else has_ar_meaning,
                                None if everything else AR_EVENT_TYPES + MAPPED_CORE_TYPES)


class LiveFeed:
    """Turns bus items into /ws messages with the owner of their session (so the hub
    can send each one only to those who may see it), caching each session's name and
    owner so the many events of a turn cost no database read."""

    def __init__(self) -> None:
        self._sessions: dict[str, tuple[str, uuid.UUID | None]] = {}

    async def _info(self, session_id: str) -> tuple[str, uuid.UUID | None]:
        if session_id not in self._sessions:
            session = await Session.get_or_none(id=session_id).select_related("agent")
            self._sessions[session_id] = (ar_session(session)["session_name"], session.owner_id) if session \
                else (session_id, None)
        return self._sessions[session_id]

    def core_only(self, event: LoggedEvent) -> bool:
        """Sent only to connections that asked for every event (/ws?events=all)."""
        return not has_ar_meaning(event)

    async def event(self, event: LoggedEvent) -> tuple[dict, uuid.UUID | None]:
        name, owner = await self._info(event.session_id)
        return {"type": "event", "data": ar_event(event, name)}, owner

    def forget(self, session_id: str) -> None:
        self._sessions.pop(session_id, None)

    def remember(self, sessions: list[Session]) -> None:
        """Sessions a client was shown (a /ws page): so that their deletion is announced
        even when their notice is lost (changes_since), with the owner it needs."""
        for session in sessions:  # a notice handled since the page was read knows better
            self._sessions.setdefault(session.id, (ar_session(session)["session_name"], session.owner_id))

    async def changes_since(self, since: dt.datetime, known: Collection[str]) -> list[SessionNotice]:
        """The notices /ws would have sent since `since` had none been lost (Redis was
        unreachable): one per session changed since (created, unless it was known), oldest
        change first; and a deletion for each session the hub (`known`) or this feed knew
        that is gone, with the owner the feed knew (else only admins are told)."""
        known = set(known) | set(self._sessions)
        ids, gone = sorted(known), set(known)
        for start in range(0, len(ids), KNOWN_PAGE):
            gone -= set(await Session.filter(id__in=ids[start:start + KNOWN_PAGE]).values_list("id", flat=True))
        notices = [SessionNotice("session_deleted", session_id, self._sessions.get(session_id, ("", None))[1])
                   for session_id in sorted(gone)]
        changed = await Session.filter(updated_at__gte=since).order_by("updated_at").values_list("id", "created_at")
        return notices + [SessionNotice("session_updated" if session_id in known or created < since else "session_created",
                                        session_id) for session_id, created in changed]

    async def notice(self, notice: SessionNotice) -> tuple[dict | None, uuid.UUID | None]:
        if notice.kind == "session_deleted":
            self.forget(notice.session_id)
            return {"type": "session_deleted", "session_id": notice.session_id}, notice.owner_id
        session = await Session.get_or_none(id=notice.session_id).select_related("agent")
        if session is None:
            return None, None
        shaped = ar_session(session)
        self._sessions[session.id] = (shaped["session_name"], session.owner_id)
        return {"type": notice.kind, "session": shaped}, session.owner_id
