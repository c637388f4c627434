"""The API side of the Temporal runner: hand a message to its session's workflow, stop
a turn, and tell a caller how a turn ended. API processes hold no turn state: any of
them can take a message or a cancel for any session.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import Any

from temporalio.client import (
    Client,
    WorkflowFailureError,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.service import RetryConfig, RPCError, RPCStatusCode

from app.config import Settings
from app.errors import ServiceUnavailable
from app.events.bus import EventBus
from app.models import Message, Session
from app.runtime.outcome import LaterOutcome
from app.runtime.temporal.types import SessionState, TurnRequest, pipeline_workflow_id, workflow_id
from app.runtime.waits import has_turn

log = logging.getLogger("app.runtime.temporal")

# How long a cancel waits for a worker to take its update: the workflow's own wait for the
# turn to wind down (CANCEL_WAIT, 5 s) and a little more.
CANCEL_ANSWER_SECONDS = 7.0
# The calls a request waits for (hand a message to its workflow, cancel, wake it) give up
# on a Temporal that refuses them after 3 retries, 1.4 s (0.2 + 0.4 + 0.8 s), rather
# than after the SDK's default 10 s; and on one that does not answer at all (no reset: a
# network partition) after REQUEST_ANSWER_TIMEOUT. They take milliseconds when Temporal
# is up: neither limit turns a slow Temporal into a 503 (decision 193).
REQUEST_RETRIES = RetryConfig(initial_interval_millis=200, multiplier=2.0, max_elapsed_time_millis=2000)
REQUEST_ANSWER_TIMEOUT = timedelta(seconds=3)
# How often the wait for a pipeline run's result asks again once Temporal stopped answering.
RESULT_RETRY_SECONDS = 2.0


def _unreachable() -> ServiceUnavailable:
    return ServiceUnavailable("the runner (Temporal) cannot be reached; try again", code="runner_unavailable")


def unreachable_reason(exc: BaseException) -> str:
    """One line for the log: why Temporal did not take a call (`exc`, the SDK's error)."""
    status = getattr(exc, "status", None)
    return f"Temporal cannot be reached ({status.name + ': ' if status is not None else ''}{exc})"


class TemporalRunner:
    def __init__(self, settings: Settings, bus: EventBus):
        self.settings = settings
        self.bus = bus
        self._client: Client | None = None
        self._requests: Client | None = None
        self._waiters: set[asyncio.Task] = set()

    async def start(self) -> None:
        # Lazy: the API starts (and /healthz reports it) while Temporal is unreachable.
        self._client = await Client.connect(self.settings.temporal_address, namespace=self.settings.temporal_namespace,
                                           lazy=True)
        # Its own connection, for its own retries (REQUEST_RETRIES): the client's are set per
        # connection, and pipeline runs' long waits (handle.result) keep the SDK's 10 s.
        self._requests = await Client.connect(self.settings.temporal_address,
                                              namespace=self.settings.temporal_namespace, lazy=True,
                                              retry_config=REQUEST_RETRIES)

    @property
    def client(self) -> Client:
        if self._client is None:
            raise RuntimeError("TemporalRunner.start() was not called")
        return self._client

    @property
    def requests(self) -> Client:
        """For the calls a client's request waits for: they give up in seconds."""
        if self._requests is None:
            raise RuntimeError("TemporalRunner.start() was not called")
        return self._requests

    async def submit(self, session_id: str, message: Message, variables: dict[str, Any] | None = None,
                     session: Session | None = None) -> LaterOutcome:
        """Queue the turn in the session's workflow (starting it if idle). Awaiting the
        result waits for a worker to have run it. ServiceUnavailable when Temporal does
        not take it."""
        message_id = str(message.id)
        try:
            await self.requests.start_workflow(
                "SessionWorkflow", SessionState(session_id), id=workflow_id(session_id),
                task_queue=self.settings.temporal_task_queue, rpc_timeout=REQUEST_ANSWER_TIMEOUT,
                start_signal="submit", start_signal_args=[TurnRequest(message_id, variables, message.sequence)])
        except (RPCError, RuntimeError) as exc:  # RuntimeError: the lazy client's first connection failed
            raise _unreachable() from exc
        return LaterOutcome(self.bus, session_id, message_id, message.sequence)

    async def cancel(self, session_id: str, reason: str = "cancelled by request") -> bool:
        """Stop the running turn and drop queued ones, from whichever process; True if
        there was something to stop. The workflow answers the `cancel` update once the
        turn has wound down; when no worker takes the update in time (none running, or all
        of them restarting), the cancel goes as a signal, which Temporal keeps until a
        worker runs the workflow: the answer comes in seconds and the cancel is not lost."""
        handle = self.requests.get_workflow_handle(workflow_id(session_id))
        try:
            try:
                return await asyncio.wait_for(handle.execute_update("cancel", reason, result_type=bool),
                                              CANCEL_ANSWER_SECONDS)
            except (TimeoutError, WorkflowUpdateRPCTimeoutOrCancelledError):
                await handle.signal("cancel_requested", reason, rpc_timeout=REQUEST_ANSWER_TIMEOUT)
                return await has_turn(session_id)
        except (RPCError, RuntimeError) as exc:  # RuntimeError: the lazy client's first connection failed
            if isinstance(exc, RPCError) and exc.status == RPCStatusCode.NOT_FOUND:
                return False  # no workflow: nothing ran for a while
            log.warning("could not cancel the turn of session %s: %s", session_id, unreachable_reason(exc))
            raise _unreachable() from exc
        except WorkflowUpdateFailedError:  # the workflow was just ending
            return False

    async def session_deleted(self, session_id: str) -> None:
        """Nothing to ask the workflow: a turn that started after the cancel finds the
        session gone in its next activity (SESSION_GONE), and the workflow ends."""

    async def tool_answered(self, session_id: str, call_id: str) -> None:
        """Wake the session's workflow: one of its waiting tool calls was answered. Should
        the signal not arrive, the workflow finds the answer in the database anyway."""
        try:
            await self.requests.get_workflow_handle(workflow_id(session_id)).signal(
                "tool_answered", call_id, rpc_timeout=REQUEST_ANSWER_TIMEOUT)
        except (RPCError, RuntimeError) as exc:
            log.warning("could not signal the workflow of session %s (%s); it polls for answers", session_id, exc)

    async def start_pipeline_run(self, run_id: str) -> asyncio.Task[bool]:
        """Start a pipeline run's workflow; the task ends with it (True: it finished,
        False: it was stopped). ServiceUnavailable, as soon as a message's would be
        (REQUEST_RETRIES), when Temporal does not take it."""
        try:
            await self.requests.start_workflow("PipelineRunWorkflow", run_id, id=pipeline_workflow_id(run_id),
                                               task_queue=self.settings.temporal_task_queue,
                                               rpc_timeout=REQUEST_ANSWER_TIMEOUT)
        except (RPCError, RuntimeError) as exc:  # RuntimeError: the lazy client's first connection failed
            log.warning("could not start pipeline run %s, it is not kept: %s", run_id, unreachable_reason(exc))
            raise _unreachable() from exc
        # Waited for on the first client: its 10 s of retries ride out a blip in a long wait.
        handle = self.client.get_workflow_handle(pipeline_workflow_id(run_id))

        async def finished() -> bool:
            lost = False
            while True:
                try:
                    await handle.result()
                except WorkflowFailureError:  # cancelled (the pipeline was deleted) or failed
                    return False
                except RPCError as exc:
                    # Temporal went away while the run goes on: it goes on there, so whoever
                    # waits here (a `wait: true` caller) waits on, as for any long run.
                    if not lost:
                        log.warning("waiting for pipeline run %s: %s; waiting on", run_id, unreachable_reason(exc))
                        lost = True
                    await asyncio.sleep(RESULT_RETRY_SECONDS)
                    continue
                return True

        task = asyncio.create_task(finished(), name=f"pipeline-run:{run_id}")
        self._waiters.add(task)
        task.add_done_callback(self._waiters.discard)
        return task

    async def cancel_pipeline_runs(self, run_ids: list[str]) -> None:
        """Ask Temporal to cancel these runs' workflows (their running turns stop too); one
        not started yet is not found, and needs no cancel (see delete_pipeline).
        ServiceUnavailable, as soon as a message's would be (REQUEST_RETRIES), when Temporal
        does not take a cancel: the DELETE that asks then deletes nothing (decision 199)."""
        for run_id in run_ids:
            handle = self.requests.get_workflow_handle(pipeline_workflow_id(run_id))
            try:
                await handle.cancel(rpc_timeout=REQUEST_ANSWER_TIMEOUT)
            except (RPCError, RuntimeError) as exc:  # RuntimeError: the lazy client's first connection failed
                if isinstance(exc, RPCError) and exc.status == RPCStatusCode.NOT_FOUND:
                    continue
                log.warning("could not stop pipeline run %s: %s", run_id, unreachable_reason(exc))
                raise _unreachable() from exc

    async def wait_pipeline_runs(self, run_ids: list[str], wait_seconds: float) -> None:
        """Wait, `wait_seconds` at most, for these runs' workflows to end (once cancelled)."""
        handles = [self.client.get_workflow_handle(pipeline_workflow_id(run_id)) for run_id in run_ids]
        results = [asyncio.ensure_future(handle.result()) for handle in handles]
        if results:
            await asyncio.wait(results, timeout=wait_seconds)
            for result in results:
                result.cancel()
            await asyncio.gather(*results, return_exceptions=True)

    @property
    def active_sessions(self) -> int:
        """Pipeline runs this process waits for (turns themselves run on the workers)."""
        return len(self._waiters)

    async def shutdown(self) -> None:
        """Only stops waiting: the turns go on, on the workers."""
        for task in list(self._waiters):
            task.cancel()
        await asyncio.gather(*self._waiters, return_exceptions=True)
