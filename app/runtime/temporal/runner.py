"""The API side of the Temporal runner: hand a message to its session's workflow, stop
a turn, and tell a caller how a turn ended. API processes hold no turn state: any of
them can take a message or a cancel for any session.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.service import RPCError, RPCStatusCode

from app.config import Settings
from app.events.bus import EventBus
from app.models import Message, Session
from app.runtime.outcome import ends_turn_of, find_terminal, outcome_from_log
from app.runtime.temporal.types import SessionState, TurnRequest, workflow_id
from app.runtime.turn import TurnOutcome

log = logging.getLogger("app.runtime.temporal")

# A terminal event missed on the bus (Redis down, a slow subscriber dropped) is found
# in the log at this interval instead.
POLL_SECONDS = 2.0


class TemporalRunner:
    def __init__(self, settings: Settings, bus: EventBus):
        self.settings = settings
        self.bus = bus
        self.client: Client | None = None
        self._waiters: set[asyncio.Task] = set()

    async def start(self) -> None:
        # Lazy: the API starts (and /healthz reports it) while Temporal is unreachable.
        self.client = await Client.connect(self.settings.temporal_address, namespace=self.settings.temporal_namespace,
                                           lazy=True)

    async def submit(self, session_id: str, message: Message, variables: dict[str, Any] | None = None,
                     session: Session | None = None) -> asyncio.Future[TurnOutcome]:
        """Queue the turn in the session's workflow (starting it if idle); the future
        resolves with the outcome once a worker has run it."""
        message_id = str(message.id)
        subscription = self.bus.subscribe(session_id)  # before the turn can possibly end
        try:
            await self.client.start_workflow(
                "SessionWorkflow", SessionState(session_id), id=workflow_id(session_id),
                task_queue=self.settings.temporal_task_queue,
                start_signal="submit", start_signal_args=[TurnRequest(message_id, variables, message.sequence)])
        except BaseException:
            subscription.close()
            raise
        task = asyncio.create_task(self._wait(session_id, message_id, message.sequence, subscription),
                                   name=f"turn-outcome:{session_id}")
        self._waiters.add(task)
        task.add_done_callback(self._waiters.discard)
        return task

    async def _wait(self, session_id: str, message_id: str, after: int, subscription) -> TurnOutcome:
        with subscription:
            while True:
                try:
                    event = await subscription.get(timeout=POLL_SECONDS)
                except TimeoutError:
                    event = await find_terminal(session_id, message_id)
                if event is None and subscription.closed:  # dropped, or the session was deleted
                    await asyncio.sleep(POLL_SECONDS)
                    event = await find_terminal(session_id, message_id)
                    if event is None and not await Session.exists(id=session_id):
                        return TurnOutcome(message_id, error={"code": "cancelled", "message": "the session was deleted"})
                if event is not None and ends_turn_of(event, message_id):
                    return await outcome_from_log(session_id, message_id, event)

    async def cancel(self, session_id: str, reason: str = "cancelled by request") -> bool:
        """Stop the running turn and drop queued ones, from whichever process; True if
        there was something to stop."""
        handle = self.client.get_workflow_handle(workflow_id(session_id))
        try:
            return await handle.execute_update("cancel", reason, result_type=bool)
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                return False  # no workflow: nothing ran for a while
            raise
        except WorkflowUpdateFailedError:  # the workflow was just ending
            return False

    @property
    def active_sessions(self) -> int:
        """Turns this process is waiting for (the turns themselves run on the workers)."""
        return len(self._waiters)

    async def shutdown(self) -> None:
        """Only stops waiting: the turns go on, on the workers."""
        for task in list(self._waiters):
            task.cancel()
        await asyncio.gather(*self._waiters, return_exceptions=True)
