"""Tool calls that wait for someone outside the server: one mechanism for a person's
approval and for a result the client computes.

When a step has such a call, every call of the step gets a ToolCallWait row (those
that run at once with their results), then the turn waits. The rows are the turn's
state while it waits: whoever answers writes the answer into the row (and wakes the
turn: `AnswerSignals` in process, a workflow signal on Temporal); the turn reads the
rows back, runs the approved calls, and goes on. A turn whose process stopped while
it waited is resumed from them (in-process runner, at start-up).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from app.models import Session, ToolCallWait
from app.models.enums import SessionStatus, ToolCallKind, ToolCallStatus
from app.timeutil import utcnow

# Row statuses. Answers: APPROVED / DENIED (an approval), ANSWERED (a client's result),
# EXPIRED (APPROVAL_TIMEOUT_SECONDS passed), CANCELLED (the turn ended first).
WAITING, APPROVED, DENIED, ANSWERED, EXPIRED, CANCELLED, DONE = (
    ToolCallStatus.WAITING, ToolCallStatus.APPROVED, ToolCallStatus.DENIED, ToolCallStatus.ANSWERED,
    ToolCallStatus.EXPIRED, ToolCallStatus.CANCELLED, ToolCallStatus.DONE)

# Event types (docs/api.md §4).
APPROVAL_REQUESTED, CLIENT_REQUESTED = "tool.approval_requested", "tool.client_requested"
CALL_ANSWERED = "tool.call_answered"
SESSION_WAITING = "session.waiting"

# The session status while the turn waits: for a person if any approval is asked.
WAITING_FOR_APPROVAL, WAITING_FOR_CLIENT = SessionStatus.WAITING_FOR_APPROVAL, SessionStatus.WAITING_FOR_CLIENT
WAITING_STATUSES = (WAITING_FOR_APPROVAL, WAITING_FOR_CLIENT)


async def has_turn(session_id: str) -> bool:
    """Whether the session has a turn going on (running, or waiting for answers), by its
    stored status."""
    status = await Session.filter(id=session_id).values_list("status", flat=True)
    return bool(status) and status[0] in (SessionStatus.RUNNING, *WAITING_STATUSES)


@dataclass
class PausedStep:
    """A step whose calls wait: what the turn needs to go on after the answers."""

    message_id: str  # the user message the turn answers
    step_id: str
    iteration: int
    started_at_seq: int
    expires_at: dt.datetime | None
    rows: list[ToolCallWait]
    variables: dict[str, Any] | None = None  # the turn's prompt variables

    @property
    def waiting(self) -> list[ToolCallWait]:
        return [row for row in self.rows if row.status == WAITING]


def status_for(kinds: list[str]) -> SessionStatus:
    return WAITING_FOR_APPROVAL if ToolCallKind.APPROVAL in kinds else WAITING_FOR_CLIENT


async def step_rows(session_id: str, step_id: str) -> list[ToolCallWait]:
    return await ToolCallWait.filter(session_id=session_id, step_id=step_id).order_by("position")


def json_for_db(value: Any) -> Any:
    """A tool's arguments or result as the rows' JSON fields must be given it, to write
    it and to build an instance with it. Tortoise takes a Python str for JSON text that
    is already encoded: a plain-text result ("Tokyo") would be refused as invalid JSON,
    and "123" become the number 123. So a string is encoded first, and comes back from
    the database (and from a model's constructor) as the same string."""
    return json.dumps(value) if isinstance(value, str) else value


async def store(rows: list[ToolCallWait]) -> None:
    """Insert a step's rows (built with json_for_db values). Instances hold the decoded
    values, which bulk_create would take for encoded JSON text; it is given the encoded
    ones, and the instances keep theirs."""
    values = [(row.arguments, row.result) for row in rows]
    for row in rows:
        row.arguments, row.result = json_for_db(row.arguments), json_for_db(row.result)
    try:
        await ToolCallWait.bulk_create(rows)
    finally:
        for row, (arguments, result) in zip(rows, values, strict=True):
            row.arguments, row.result = arguments, result


def paused_step(rows: list[ToolCallWait]) -> PausedStep:
    first = rows[0]
    return PausedStep(str(first.message_id), first.step_id, first.iteration, first.started_at_seq,
                      first.expires_at, rows, first.variables)


async def latest_paused(session_id: str) -> PausedStep | None:
    """The session's last step that waited, if any."""
    last = await ToolCallWait.filter(session_id=session_id).order_by("-created_at", "-position").first()
    return paused_step(await step_rows(session_id, last.step_id)) if last is not None else None


async def still_waiting(session_id: str, step_id: str) -> list[str]:
    return [str(c) for c in await ToolCallWait.filter(session_id=session_id, step_id=step_id, status=WAITING)
            .values_list("call_id", flat=True)]


async def expire(session_id: str, step_id: str) -> list[ToolCallWait]:
    """Answer what still waits as timed out; the rows that were."""
    rows = await ToolCallWait.filter(session_id=session_id, step_id=step_id, status=WAITING)
    if rows:
        await ToolCallWait.filter(id__in=[r.id for r in rows], status=WAITING).update(status=EXPIRED,
                                                                                        answered_at=utcnow())
    return rows


async def cancel_open(session_id: str) -> None:
    """The turn ended while calls waited: they can no longer be answered."""
    await ToolCallWait.filter(session_id=session_id, status=WAITING).update(status=CANCELLED, answered_at=utcnow())


class AnswerSignals:
    """In process: wakes a turn waiting in this process when one of its calls is
    answered. The database holds the answers; this only saves the turn polling."""

    def __init__(self) -> None:
        self._events: dict[str, asyncio.Event] = {}

    def notify(self, session_id: str) -> None:
        event = self._events.get(session_id)
        if event is not None:
            event.set()

    async def until_answered(self, session_id: str, step_id: str, expires_at: dt.datetime | None,
                             poll_seconds: float = 30.0) -> None:
        """Return once no call of the step waits, or when their time is up (the turn
        then answers the rest as expired: Turn.end_wait)."""
        event = self._events.setdefault(session_id, asyncio.Event())
        try:
            while True:
                event.clear()  # before reading: an answer written after the read sets it again
                if not await still_waiting(session_id, step_id):
                    return
                remaining = (expires_at - utcnow()).total_seconds() if expires_at else poll_seconds
                if remaining <= 0:
                    return
                try:
                    await asyncio.wait_for(event.wait(), min(remaining, poll_seconds))
                except TimeoutError:
                    pass
        finally:
            if self._events.get(session_id) is event:
                del self._events[session_id]
