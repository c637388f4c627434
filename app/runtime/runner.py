"""Where turns run: the Runner interface, and the in-process runner (runner_mode
InProcess; the Temporal one is app/runtime/temporal/runner.py).

In process, each session with work has a worker: a FIFO of user messages drained by
one task, so messages posted during a turn run after it, in order, and never two turns
at once.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import deque
from collections.abc import Awaitable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol

from app.events.messages import record_message
from app.models import Event, Message, Session
from app.models.enums import SessionKind, SessionStatus
from app.runtime import waits
from app.runtime.outcome import last_turn_start, unfinished_step
from app.runtime.turn import SESSION_DELETED, SHUTTING_DOWN, Turn, TurnDeps, TurnOutcome
from app.timeutil import utcnow

log = logging.getLogger("app.runtime.runner")

CANCEL_WAIT_SECONDS = 5.0


@dataclass
class QueuedTurn:
    message: Message
    variables: dict[str, Any] | None
    done: asyncio.Future  # resolved with the TurnOutcome, whatever ends the turn
    session: Session | None = None  # as loaded by the caller, when nothing ran in between
    resume_from: waits.PausedStep | None = None  # a turn that waited when the server stopped


@dataclass
class SessionWorker:
    queue: deque[QueuedTurn] = field(default_factory=deque)
    task: asyncio.Task | None = None
    running: Turn | None = None  # the turn `task` runs now


class Runner(Protocol):
    """What the API needs of a runner, whichever mode."""

    async def start(self) -> None: ...

    async def submit(self, session_id: str, message: Message, variables: dict[str, Any] | None = None,
                     session: Session | None = None) -> Awaitable[TurnOutcome]: ...

    async def cancel(self, session_id: str, reason: str = "cancelled by request") -> bool: ...

    async def session_deleted(self, session_id: str) -> None:
        """The session's row is gone (deleted after cancel()): end anything of it that
        still runs or is queued, writing nothing."""

    async def tool_answered(self, session_id: str, call_id: str) -> None:
        """A waiting tool call of the session was answered (the answer is stored)."""

    @property
    def active_sessions(self) -> int: ...

    async def shutdown(self) -> None: ...


class TurnRunner:
    def __init__(self, deps: TurnDeps):
        self.deps = deps
        self._workers: dict[str, SessionWorker] = {}

    async def start(self) -> None:
        """Turns the last run of this server left `running` are failed: they are lost.
        Turns that waited for answers wait again: their state is stored."""
        await fail_interrupted_sessions(self.deps)
        # ids: flat values (Tortoise types every values_list row as a tuple)
        waiting: list[Any] = await Session.filter(status__in=waits.WAITING_STATUSES, kind=SessionKind.AGENT) \
            .values_list("id", flat=True)
        for session_id in waiting:
            paused = await waits.latest_paused(session_id)
            message = await Message.get_or_none(id=paused.message_id) if paused is not None else None
            if paused is None or message is None:
                continue
            self._enqueue(session_id, QueuedTurn(message, paused.variables, asyncio.get_running_loop().create_future(),
                                                 resume_from=paused))

    async def tool_answered(self, session_id: str, call_id: str) -> None:
        self.deps.answers.notify(session_id)

    async def submit(self, session_id: str, message: Message, variables: dict[str, Any] | None = None,
               session: Session | None = None) -> asyncio.Future:
        """Queue a turn for this message; the future resolves with its TurnOutcome.

        `session`, the caller's freshly loaded row, saves the turn reading it again, but
        only when the turn starts at once: a turn running before it changes the row."""
        done = asyncio.get_running_loop().create_future()
        worker = self._workers.get(session_id)
        idle = worker is None or (not worker.queue and (worker.task is None or worker.task.done()))
        self._enqueue(session_id, QueuedTurn(message, variables, done, session if idle else None))
        return done

    def _enqueue(self, session_id: str, queued: QueuedTurn) -> None:
        worker = self._workers.setdefault(session_id, SessionWorker())
        worker.queue.append(queued)
        if worker.task is None or worker.task.done():
            worker.task = asyncio.create_task(self._drain(session_id, worker), name=f"turns:{session_id}")

    @property
    def active_sessions(self) -> int:
        return len(self._workers)

    async def _drain(self, session_id: str, worker: SessionWorker) -> None:
        try:
            while worker.queue:
                queued = worker.queue.popleft()
                turn = Turn(self.deps, session_id, queued.message, queued.variables, queued.session)
                turn.resume_from = queued.resume_from
                turn.on_outcome = partial(_resolve, queued.done)
                worker.running = turn
                try:
                    await turn.run()
                except asyncio.CancelledError:
                    raise
                except Exception:  # a broken turn must not stop the queue behind it
                    log.exception("turn crashed in session %s", session_id)
                finally:
                    worker.running = None
                    _resolve(queued.done, turn.outcome)
        finally:
            if worker.queue and self._workers.get(session_id) is worker:
                # Messages arrived while a cancelled turn was cleaning up: serve them.
                worker.task = asyncio.create_task(self._drain(session_id, worker), name=f"turns:{session_id}")
            elif self._workers.get(session_id) is worker:
                del self._workers[session_id]

    async def cancel(self, session_id: str, reason: str = "cancelled by request") -> bool:
        """Drop queued turns and stop the running one; True if something was running."""
        worker = self._workers.get(session_id)
        if worker is None:
            return False
        dropped = []
        while worker.queue:  # dropped turns: their waiters learn they were cancelled
            queued = worker.queue.popleft()
            dropped.append(str(queued.message.id))
            _resolve(queued.done, TurnOutcome(dropped[-1], error={"code": "cancelled", "message": reason}))
        task, running = worker.task, worker.running
        if task is not None and not task.done() and running is not None:
            running.dropped = dropped  # the log says which messages will not be answered
            task.cancel(reason)
            await asyncio.wait({task}, timeout=CANCEL_WAIT_SECONDS)
        elif dropped and reason != SESSION_DELETED:  # nothing ran: the log still says so, as the temporal runner's does
            await self.deps.events.append(session_id, "session.cancelled",
                                          {"reason": reason, "message_id": None, "dropped_message_ids": dropped})
        return True

    async def session_deleted(self, session_id: str) -> None:
        """A message posted while the DELETE cancelled the session's turn can have started
        (or queued) another before the row went: it ends quietly (Turn.session_gone)."""
        await self.cancel(session_id, SESSION_DELETED)

    async def shutdown(self) -> None:
        await asyncio.gather(*(self.cancel(sid, SHUTTING_DOWN) for sid in list(self._workers)))


def _resolve(future: asyncio.Future, outcome: TurnOutcome) -> None:
    if not future.done():
        future.set_result(outcome)


async def fail_interrupted_sessions(deps: TurnDeps) -> int:
    """At start-up: a session still `running` lost its turn when the server stopped.
    What it had streamed is kept, as when a turn fails while the server runs (§5.4)."""
    # Only agent-loop sessions ran here; external ones are driven by their own agents.
    # ids: flat values (Tortoise types every values_list row as a tuple)
    stuck: list[Any] = await Session.filter(status=SessionStatus.RUNNING, kind=SessionKind.AGENT) \
        .values_list("id", flat=True)
    message = "the server restarted while this turn was running; send the message again"
    for session_id in stuck:
        data = {"error": message, "code": "server_restarted"}
        started = await last_turn_start(session_id)
        if started is not None:
            data["message_id"] = started.data["message_id"]
            await _keep_streamed_text(deps, session_id, started)
        await Session.filter(id=session_id).update(status=SessionStatus.FAILED, last_error=message,
                                                   updated_at=utcnow())
        await deps.events.append(session_id, "session.failed", data)
        await waits.cancel_open(session_id)
        deps.events.notify_session("session_updated", session_id)
    if stuck:
        log.warning("marked %d interrupted session(s) as failed", len(stuck))
    return len(stuck)


async def _keep_streamed_text(deps: TurnDeps, session_id: str, started: Event) -> None:
    """The text of the step that was streaming, from its `message.delta` events, stored
    as the assistant message they name: the deltas then point at a message that exists,
    and the model sees what the user saw. Deltas still being merged in memory when the
    process died are lost with it."""
    step = await unfinished_step(session_id, started.sequence)
    if step is None:
        return
    step_id, message_id, text = step
    if await Message.filter(id=message_id).exists():
        return  # the step's message was stored: nothing streamed is missing
    await record_message(deps.events, session_id, "assistant", {"text": text}, message_id=uuid.UUID(message_id),
                         step_id=step_id, reply_to=uuid.UUID(started.data["message_id"]))
