"""A finished turn's outcome, read back from the event log.

The in-process runner hands its callers (AgentSpec invoke, pipelines) the outcome the
turn built in memory. A turn run by a Temporal worker is in another process, so its
caller waits for the turn's terminal event (each names the user message it answered)
and reads the rest from the log: the log holds everything the outcome says.
"""

from __future__ import annotations

import asyncio

from app.events.bus import EventBus, Resubscribed, SessionNotice, Subscription
from app.events.log import EventLog, LoggedEvent
from app.models import Event, Session
from app.runtime import waits
from app.runtime.toolbox import APPROVAL, CLIENT
from app.runtime.turn import TurnOutcome

# A terminal event missed on the bus (Redis down, a slow subscriber dropped) is found
# in the log at this interval instead.
POLL_SECONDS = 2.0

TERMINAL = ("session.completed", "session.failed", "session.cancelled")
OUTCOME_TYPES = ("session.started", "message.created", "step.completed", "tool.completed",
                 waits.APPROVAL_REQUESTED, waits.CLIENT_REQUESTED, waits.SESSION_WAITING, *TERMINAL)


def pauses_turn_of(event: LoggedEvent, message_id: str) -> bool:
    """Whether `event` says the turn answering `message_id` now waits for answers
    (runtime/waits.py): a caller waiting for the outcome hears of the pending calls."""
    return event.type == waits.SESSION_WAITING and event.data.get("message_id") == message_id


async def find_pause(session_id: str, message_id: str, after: int = 0) -> LoggedEvent | None:
    """The turn's session.waiting, if the session still waits (else it went on)."""
    if not await Session.filter(id=session_id, status__in=waits.WAITING_STATUSES).exists():
        return None
    row = await Event.filter(session_id=session_id, type=waits.SESSION_WAITING, sequence__gt=after) \
        .order_by("-sequence").first()
    event = LoggedEvent.from_row(row) if row is not None else None
    return event if event is not None and pauses_turn_of(event, message_id) else None


def ends_turn_of(event: LoggedEvent, message_id: str) -> bool:
    """Whether `event` ends the turn answering `message_id` (or drops it from the queue)."""
    if event.type not in TERMINAL:
        return False
    return event.data.get("message_id") == message_id or message_id in (event.data.get("dropped_message_ids") or ())


async def find_terminal(session_id: str, message_id: str, after: int = 0) -> LoggedEvent | None:
    """The terminal event for the message, if written (the fallback when a live one was
    missed). `after` may be the message's own number: every message up to it has its
    `message.created` event before the turn answering it can end, so that terminal
    event's sequence is higher."""
    rows = await Event.filter(session_id=session_id, type__in=TERMINAL, sequence__gt=after).order_by("sequence")
    for row in rows:
        event = LoggedEvent.from_row(row)
        if ends_turn_of(event, message_id):
            return event
    return None


async def outcome_from_log(session_id: str, message_id: str, terminal: LoggedEvent) -> TurnOutcome:
    outcome = TurnOutcome(message_id)
    if terminal.data.get("message_id") != message_id:  # dropped from the queue by a cancel
        outcome.error = {"code": "cancelled", "message": terminal.data.get("reason") or "cancelled by request"}
        return outcome
    started = await Event.filter(session_id=session_id, type="session.started", sequence__lt=terminal.sequence) \
        .order_by("-sequence").first()
    first = started.sequence if started is not None else 0
    for event in await EventLog.read(session_id, after=first - 1, limit=None, types=OUTCOME_TYPES):
        if event.sequence > terminal.sequence:
            break
        data = event.data
        if event.type == "message.created" and data.get("role") == "assistant":
            outcome.output = (data.get("content") or {}).get("text", "")
        elif event.type == "step.completed":
            for key in ("input_tokens", "output_tokens"):
                outcome.usage[key] += (data.get("usage") or {}).get(key, 0)
        elif event.type in (waits.APPROVAL_REQUESTED, waits.CLIENT_REQUESTED):
            outcome.pending.append({"tool_call_id": data.get("tool_call_id"), "tool_name": data.get("tool_name"),
                                    "arguments": data.get("arguments"),
                                    "kind": CLIENT if event.type == waits.CLIENT_REQUESTED else APPROVAL})
        elif event.type == "tool.completed":
            outcome.tool_calls.append({"id": data.get("tool_call_id"), "tool_name": data.get("tool_name"),
                                       "input": data.get("arguments"), "output": data.get("result"),
                                       "duration_ms": data.get("duration_ms"), "error": data.get("error")})
    data = terminal.data
    if terminal.type == waits.SESSION_WAITING:
        outcome.status = data.get("status", waits.WAITING_FOR_APPROVAL)
        waiting = set(data.get("tool_call_ids") or ())
        outcome.pending = [p for p in outcome.pending if p["tool_call_id"] in waiting]
    elif terminal.type == "session.completed":
        outcome.status, outcome.reason = "completed", data.get("reason")
    elif terminal.type == "session.failed":
        outcome.status, outcome.error = "failed", {"code": data.get("code", "internal_error"), "message": data.get("error", "")}
    else:
        outcome.status, outcome.error = "cancelled", {"code": "cancelled", "message": data.get("reason") or ""}
    return outcome


async def last_turn_start(session_id: str, message_id: str | None = None) -> Event | None:
    """The session's latest `session.started`: where its last turn began. With
    `message_id`, only if that turn answers this message (else None)."""
    started = await Event.filter(session_id=session_id, type="session.started").order_by("-sequence").first()
    if started is None or (message_id is not None and started.data.get("message_id") != message_id):
        return None
    return started


async def unfinished_step(session_id: str, after: int) -> tuple[str | None, str, str] | None:
    """The model step that streamed last after event number `after` (the turn's
    `session.started`), unless it completed: its step_id, message_id, and the text it
    streamed as its readers have it, which is the deltas of its latest attempt (temporal
    mode: a `step.retried` tells them to drop the earlier ones)."""
    events = await EventLog.read(session_id, after=after, limit=None,
                                 types=("message.delta", "step.retried", "step.completed"))
    last = next((e.data for e in reversed(events) if e.type == "message.delta"), None)
    if last is None or any(e.type == "step.completed" and e.data.get("step_id") == last.get("step_id") for e in events):
        return None
    of_step = [e.data for e in events if e.type != "step.completed" and e.data.get("message_id") == last["message_id"]]
    latest = max(data.get("attempt", 1) for data in of_step)
    text = "".join(data["delta"] for data in of_step if "delta" in data and data.get("attempt", 1) == latest)
    return last.get("step_id"), last["message_id"], text


class LaterOutcome:
    """The outcome of a turn run elsewhere, looked for only if someone awaits it: most
    messages (Everruns' POST) are never waited for, and watching every turn's events
    for nothing cost the API process a tenth of its time."""

    def __init__(self, bus: EventBus, session_id: str, message_id: str, message_sequence: int = 0):
        self.bus, self.session_id, self.message_id = bus, session_id, message_id
        self.after = message_sequence

    def __await__(self):
        return self._wait().__await__()

    async def _wait(self) -> TurnOutcome:
        subscription = self.bus.subscribe(self.session_id)
        # Subscribed first, then the log: a turn that ended before is found there.
        terminal = await find_terminal(self.session_id, self.message_id, self.after) \
            or await find_pause(self.session_id, self.message_id, self.after)
        if terminal is not None:
            subscription.close()
            return await outcome_from_log(self.session_id, self.message_id, terminal)
        return await await_outcome(subscription, self.session_id, self.message_id, after=self.after)


async def await_outcome(subscription: Subscription, session_id: str, message_id: str,
                        poll_seconds: float = POLL_SECONDS, after: int = 0) -> TurnOutcome:
    """Wait for the turn answering `message_id` to end, however far away it runs: its
    terminal event on the bus (subscribed before the turn was queued), or in the log."""
    with subscription:
        while True:
            try:
                event = await subscription.get(timeout=poll_seconds)
                assert not isinstance(event, SessionNotice | Resubscribed)  # a session's subscription gets neither
            except TimeoutError:
                event = await find_terminal(session_id, message_id, after) \
                    or await find_pause(session_id, message_id, after)
            if event is None and subscription.closed:  # dropped, or the session was deleted
                await asyncio.sleep(poll_seconds)
                event = await find_terminal(session_id, message_id, after)
                if event is None and not await Session.exists(id=session_id):
                    return TurnOutcome(message_id, error={"code": "cancelled", "message": "the session was deleted"})
            if event is not None and (ends_turn_of(event, message_id) or pauses_turn_of(event, message_id)):
                return await outcome_from_log(session_id, message_id, event)
