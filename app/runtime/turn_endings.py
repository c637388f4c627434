"""How a turn ends: completed, failed or cancelled, its partial text kept, and the end
written even when the database refuses it for a while (app/runtime/recording.py).
Turn's methods for it (app/runtime/turn.py), kept apart so the turn loop reads on its own."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from app.db import DatabaseUnavailable
from app.models import Message
from app.models.enums import SessionStatus
from app.runtime import waits
from app.runtime.recording import record_until_stored

if TYPE_CHECKING:
    from app.config import Settings
    from app.events.log import EventLog
    from app.runtime.deltas import DeltaWriter
    from app.runtime.history import StoredMessage
    from app.runtime.turn import TurnOutcome

log = logging.getLogger("app.runtime.turn")


class TurnEndings:
    """Mixed into Turn (app/runtime/turn.py), whose state and writers it uses."""

    if TYPE_CHECKING:  # Turn's, declared here for the type checker only
        session_id: str
        message: StoredMessage
        outcome: TurnOutcome
        events: EventLog
        settings: Settings
        partial: list[str]
        writer: DeltaWriter | None
        step_id: str | None
        message_id: uuid.UUID | None
        session_usage: dict[str, int]
        on_outcome: Callable[[TurnOutcome], None] | None

        async def settle(self, quiet: bool = False) -> None: ...
        async def _written(self, quiet: bool = False) -> None: ...
        async def _record(self, role: str, content: dict[str, Any], message_id: uuid.UUID | None = None,
                          step_id: str | None = None) -> None: ...
        async def _set_status(self, status: SessionStatus, error: str | None) -> None: ...
        async def _write_status(self, status: SessionStatus, error: str | None) -> None: ...

    def _database_failure(self, exc: DatabaseUnavailable) -> tuple[str, str]:
        log.warning("turn in session %s stopped: %s (%r)", self.session_id, exc.reason, exc.__cause__)
        return (f"the turn stopped because the database was unavailable ({exc.reason}); send the message again",
                "database_unavailable")

    async def _fail_in_process(self, message: str, code: str) -> None:
        await self._until_recorded(lambda: self.failed(message, code),
                                   lambda: self._record_failure_again(message, code))

    async def _until_recorded(self, record: Callable[[], Awaitable[None]],
                              again: Callable[[], Awaitable[None]]) -> None:
        """record() the turn's end; when the database will not take it, again() until it
        does (app/runtime/recording.py). Whoever waits for the outcome hears it at once."""
        def first_failure() -> None:
            if self.on_outcome is not None:  # AgentSpec invoke need not wait for the database
                self.on_outcome(self.outcome)

        await record_until_stored(record, again, session_id=self.session_id,
                                  last_try_seconds=self.settings.database_timeout_seconds,
                                  on_first_failure=first_failure)

    async def _record_completion_again(self, outcome: dict[str, Any]) -> None:
        """completed(), again after an attempt that failed part way (see below)."""
        await self.settle(quiet=True)
        await self._write_status(SessionStatus.PENDING, None)
        await self.events.append_once(self.session_id, "session.completed", self._completed_data(outcome))

    async def _record_failure_again(self, message: str, code: str) -> None:
        """failed(), again after an attempt that failed part way (_record_end_again)."""
        await self._record_end_again(SessionStatus.FAILED, message, "session.failed",
                                     {"error": message, "code": code, "message_id": str(self.message.id)})

    async def _record_cancel_again(self, reason: str, dropped: list[str]) -> None:
        """cancelled(), again after an attempt that failed part way (_record_end_again)."""
        await self._record_end_again(SessionStatus.PENDING, None, "session.cancelled",
                                     self._cancelled_data(reason, dropped))

    async def _record_end_again(self, status: SessionStatus, error: str | None, type: str,
                                data: dict[str, Any]) -> None:
        """failed() or cancelled(), written to run again after an attempt that failed part
        way. A write whose answer was lost (the connection dropped or timed out after
        sending it) may have been stored anyway, so nothing that could be in the log
        already is written blindly: the kept text and the terminal event are looked for first."""
        await self.settle(quiet=True)  # the opening writes are over, stored or not
        self.writer = None  # its deltas not yet written are lost; the whole text is kept below
        text = "".join(self.partial)
        if text:
            await self.keep_text_once(text)
            self.partial = []
        await waits.cancel_open(self.session_id)  # calls still waiting can no longer be answered
        await self._write_status(status, error)
        await self.events.append_once(self.session_id, type, data)

    async def keep_text_once(self, text: str) -> None:
        """Store `text` as the step's assistant message (`message_id`), unless an earlier
        try stored it already: then only its announcement is made sure of, since that
        write may have been the one that failed."""
        stored = await Message.get_or_none(id=self.message_id) if self.message_id is not None else None
        if stored is None:
            await self._record("assistant", {"text": text}, message_id=self.message_id, step_id=self.step_id)
        else:
            created = {"message_id": str(stored.id), "role": stored.role, "sequence": stored.sequence,
                       "content": stored.content}  # as record_message announces it
            if self.step_id:
                created["step_id"] = self.step_id
            await self.events.append_once(self.session_id, "message.created", created)
        self.outcome.output = text

    async def completed(self, outcome: dict[str, Any]) -> None:
        self.outcome.status, self.outcome.reason = "completed", outcome["reason"]
        await self._set_status(SessionStatus.PENDING, None)
        await self.events.append(self.session_id, "session.completed", self._completed_data(outcome))

    def _completed_data(self, outcome: dict[str, Any]) -> dict[str, Any]:
        return {**outcome, "usage": dict(self.session_usage), "message_id": str(self.message.id)}

    async def keep_partial_text(self) -> None:
        """What was already streamed stays in the conversation, whatever ends the turn."""
        await self._written(quiet=True)  # the opening events come first in the log
        if self.writer is not None:
            await self.writer.close()
            self.writer = None
        text = "".join(self.partial)
        if text:
            await self._record("assistant", {"text": text}, message_id=self.message_id, step_id=self.step_id)
            self.outcome.output = text
        self.partial = []  # only once stored: a failed write leaves it for another try

    async def gave_up_queued(self, reason: str, dropped: list[str]) -> None:
        """The log says which queued messages will not be answered, the turn itself
        untouched (as TurnRunner.cancel says it when nothing runs)."""
        if dropped:
            await self.events.append(self.session_id, "session.cancelled",
                                     {"reason": reason, "message_id": None, "dropped_message_ids": dropped})

    async def failed(self, message: str, code: str) -> None:
        self.outcome.status, self.outcome.error = "failed", {"code": code, "message": message}
        await self.keep_partial_text()
        await waits.cancel_open(self.session_id)
        await self._set_status(SessionStatus.FAILED, message)
        await self.events.append(self.session_id, "session.failed",
                                 {"error": message, "code": code, "message_id": str(self.message.id)})

    async def cancelled(self, reason: str, dropped: list[str] | None = None) -> None:
        """Keep what was already said, then leave the session ready for a new message.
        `dropped`: queued messages whose turns will not run."""
        self.outcome.status, self.outcome.error = "cancelled", {"code": "cancelled", "message": reason}
        await self.keep_partial_text()
        await waits.cancel_open(self.session_id)
        await self._set_status(SessionStatus.PENDING, None)
        await self.events.append(self.session_id, "session.cancelled", self._cancelled_data(reason, dropped))

    def _cancelled_data(self, reason: str, dropped: list[str] | None) -> dict[str, Any]:
        data: dict[str, Any] = {"reason": reason, "message_id": str(self.message.id)}
        if dropped:
            data["dropped_message_ids"] = dropped
        return data
