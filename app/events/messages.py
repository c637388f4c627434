"""Storing a message (`record_message`: every stored message is announced with a
`message.created` event, whoever stores it), and the recent conversation of active
sessions, kept in memory.

Every model call needs the whole conversation so far. Reading it back from the
database before each call costs a query on the path to the first token, although this
process wrote every one of those messages itself a moment ago. So the messages it
stores are also appended here, and a session's list is read from the database only
when it is not here yet (or was dropped to bound memory).

It is checked against the session's message counter on every read: a list that does
not end at the last number this process handed out (a message stored while the list
was being read, say) is read again rather than trusted.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from typing import TYPE_CHECKING, Any, NamedTuple

from app.models import Message
from app.models.sequences import SequenceCounter, SessionRowCounter

if TYPE_CHECKING:
    from app.events.log import EventLog

MAX_SESSIONS = 1000
MAX_MESSAGES = 2000  # longer conversations are read from the database each time


class MessageRow(NamedTuple):
    id: uuid.UUID
    sequence: int
    role: str
    content: dict[str, Any]
    reply_to: uuid.UUID | None = None  # the user message a turn's own message answers


async def read_messages(session_id: str) -> list[MessageRow]:
    """A session's messages in order, as plain rows (about twice as fast as models)."""
    rows = await Message.filter(session_id=session_id).order_by("sequence").values_list(*MessageRow._fields)
    return [MessageRow(*row) for row in rows]


def _last_sequence(rows: list[MessageRow]) -> int:
    return rows[-1].sequence if rows else 0


class RecentMessages:
    def __init__(self, numbers: SequenceCounter | SessionRowCounter, max_sessions: int = MAX_SESSIONS):
        self.numbers = numbers
        self.max_sessions = max_sessions
        self._rows: OrderedDict[str, list[MessageRow]] = OrderedDict()

    async def of(self, session_id: str) -> list[MessageRow]:
        rows = self._rows.get(session_id)
        if rows is None or _last_sequence(rows) != self.numbers.last(session_id):
            rows = await read_messages(session_id)
            if len(rows) > MAX_MESSAGES:
                self._rows.pop(session_id, None)
                return rows
            self._rows[session_id] = rows
        self._rows.move_to_end(session_id)
        while len(self._rows) > self.max_sessions:
            self._rows.popitem(last=False)
        return list(rows)

    def added(self, session_id: str, row: MessageRow) -> None:
        """A message this process just stored; kept only if it extends the list in order."""
        rows = self._rows.get(session_id)
        if rows is None:
            return
        if _last_sequence(rows) + 1 == row.sequence and len(rows) < MAX_MESSAGES:
            rows.append(row)
        else:
            del self._rows[session_id]

    def forget(self, session_id: str) -> None:
        self._rows.pop(session_id, None)


async def record_message(events: EventLog, session_id: str, role: str, content: dict[str, Any],
                         message_id: uuid.UUID | None = None, step_id: str | None = None,
                         reply_to: uuid.UUID | None = None) -> Message:
    """Store a message with the session's next sequence number, then announce it.
    `reply_to`: the user message the turn writing this one answers."""
    message = await events.insert_message(session_id, message_id or uuid.uuid4(), role, content, reply_to)
    events.messages.added(session_id, MessageRow(message.id, message.sequence, role, content, reply_to))
    data = {"message_id": str(message.id), "role": role, "sequence": message.sequence, "content": content}
    if step_id:
        data["step_id"] = step_id
    await events.append(session_id, "message.created", data)
    return message
