"""The Agent Runtime dialect's view of sessions and events (seed 003 + reference).

Sessions: `session_name` is the core `title`; agent-loop sessions read `running` while a
turn runs (also while it waits for a tool call's approval or the client's result) and
`finished` otherwise (pending or failed). Events: loop events are mapped
to the hook-style names (session.started → session_start, tool.started → pre_tool, ...);
events that external agents posted are already in this shape. The loop events with no
Agent Runtime meaning (steps, deltas, tool_call/tool_result messages, which pre_tool and
post_tool already show) keep their core type as `event_type`, and only clients that ask
for every event get them (`has_ar_meaning`): a client of seed 003 knows five types and
would show the rest as raw JSON. Every event also carries its core `type`, `sequence`
and raw `data`, so one translation serves REST and /ws alike.

Timestamps stay datetimes in these dicts: the one JSON encoder (app/json_encoding.py,
orjson with OPT_UTC_Z), which every consumer of them uses (REST, /ws, Redis), writes
"2026-11-30T12:34:49.783671Z" in C, as `isoformat().replace("+00:00", "Z")` did in
1.6 µs a call here: a sixth of the shaping of a page of 100 events.
"""

from __future__ import annotations

from typing import Any

from app.events.log import LoggedEvent
from app.models import Session
from app.models.enums import SessionKind, SessionStatus
from app.text import joined_blocks

AR_EVENT_TYPES = ("session_start", "pre_tool", "post_tool", "session_stop", "message")

# Core types that may map to an Agent Runtime type (message.created only for user and
# assistant messages): what a reader that wants only those asks the log for.
MAPPED_CORE_TYPES = ("session.started", "tool.started", "tool.completed", "message.created",
                     "session.completed", "session.failed", "session.cancelled")

STOP_CODES = {"session.completed": (0, "completed"), "session.failed": (1, "failed"), "session.cancelled": (130, "cancelled")}


# Loop statuses of a turn that is still under way (waiting_for_*: app/runtime/waits.py).
RUNNING_STATUSES = (SessionStatus.RUNNING, SessionStatus.WAITING_FOR_APPROVAL, SessionStatus.WAITING_FOR_CLIENT)


def ar_status(session: Session) -> str:
    if session.kind == SessionKind.EXTERNAL:
        return session.status
    return SessionStatus.RUNNING if session.status in RUNNING_STATUSES else SessionStatus.FINISHED


def ar_session(session: Session, agent_name: str | None = None) -> dict[str, Any]:
    """Loop sessions show their agent's name: `agent_name` when the caller read only that
    (raw_sql.session_to_show), else the agent's when it was loaded (select_related);
    Tortoise keeps a loaded relation in `_agent`, and reading `.agent` otherwise would query."""
    if agent_name is None and (agent := getattr(session, "_agent", None)) is not None:
        agent_name = agent.name
    return {
        "session_id": session.id,
        "session_name": session.title or agent_name or session.id,
        "status": ar_status(session),
        "created_at": session.created_at,
        "project_dir": session.project_dir,
        "agent_name": session.agent_name or agent_name,
        "last_resumed_at": session.last_resumed_at,
        "parent_session_name": session.parent_session_name,
        # True: created by an event for a session never started here (its start was not seen).
        "implicit": session.implicit,
        # Extras for clients that know the core (the dashboard uses them).
        "kind": session.kind,
        "agent_id": str(session.agent_id) if session.agent_id else None,
        "runtime_status": session.status,
        "last_error": session.last_error,
        "updated_at": session.updated_at,
    }


def session_page(sessions: list[Session], cursor: str | None) -> dict[str, Any]:
    """A page of sessions: REST `GET /sessions` and the /ws `init` and `sessions` messages."""
    return {"sessions": [ar_session(s) for s in sessions], "has_more": cursor is not None, "next": cursor}


def _text_blocks(text: str) -> list[dict[str, str]]:
    return [{"type": "text", "text": text}]


def _mapped_fields(event: LoggedEvent) -> tuple[str, dict[str, Any]]:
    """A loop event's Agent Runtime type and fields (a posted event is in that shape
    already: ar_event takes it as it is)."""
    data, kind = event.data, event.type
    if kind == "session.started":
        return "session_start", {}
    if kind == "tool.started":
        return "pre_tool", {"tool_name": data.get("tool_name"), "tool_input": data.get("arguments"),
                            "tool_call_id": data.get("tool_call_id")}
    if kind == "tool.completed":
        return "post_tool", {"tool_name": data.get("tool_name"), "tool_input": data.get("arguments"),
                             "tool_output": data.get("result"), "error": data.get("error"),
                             "tool_call_id": data.get("tool_call_id")}
    if kind == "message.created" and _is_conversation(data):
        return "message", {"role": data["role"], "content": _text_blocks(data.get("content", {}).get("text", "")),
                           "message_id": data.get("message_id")}
    if kind in STOP_CODES:
        exit_code, reason = STOP_CODES[kind]
        return "session_stop", {"exit_code": exit_code, "reason": data.get("error") or data.get("reason") or reason}
    return kind, {}


def _is_conversation(data: dict[str, Any]) -> bool:
    """A message.created that is a `message` event: the user's or the assistant's text."""
    return data.get("role") in ("user", "assistant")


_POSTED_TYPES = frozenset(AR_EVENT_TYPES)

# Types that always map (message.created depends on its role).
_ALWAYS_MAPPED = frozenset(AR_EVENT_TYPES + MAPPED_CORE_TYPES) - {"message.created"}


def has_ar_meaning(event: LoggedEvent) -> bool:
    """Whether the event maps to one of the Agent Runtime event types (what _mapped_fields
    decides, without building the fields: every event of a page is asked)."""
    if event.type in _ALWAYS_MAPPED:
        return True
    return event.type == "message.created" and _is_conversation(event.data)


def ar_event(event: LoggedEvent, name: str) -> dict[str, Any]:
    """A reporter's own session_name and timestamp are kept; the identity fields (id,
    event_type, session_id, sequence) always come from the log, whatever was posted."""
    if event.type in _POSTED_TYPES:  # posted by an external agent: already in this shape (the
        event_type, fields = event.type, event.data  # identity fields below override its own)
    else:
        event_type, fields = _mapped_fields(event)
    return {
        "session_name": name,
        "timestamp": event.created_at,
        **fields,
        "id": event.id,
        "event_type": event_type,
        "session_id": event.session_id,
        "type": event.type,
        "sequence": event.sequence,
        "data": event.data,
    }


def message_text(content: Any) -> str:
    """Text of a `message` event's content: a string, or a list of text blocks joined as
    a /v1 message's are (§3.8; joined bare, "Hi" and "there" read "Hithere")."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = (b.get("text") for b in content if isinstance(b, dict) and b.get("type", "text") == "text")
        return joined_blocks(t for t in texts if isinstance(t, str))
    return ""
