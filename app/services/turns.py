"""Starting a turn, for every dialect: store the user message, queue the turn, and
hand back a future that resolves with its outcome."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

from app.errors import Conflict, InvalidRequest, ServiceUnavailable
from app.events.messages import record_message
from app.models import Message, Session
from app.models.enums import SessionKind, SessionStatus
from app.runtime.turn import TurnOutcome, missing_variables
from app.runtime.waits import has_turn
from app.services.sessions import get_session
from app.timeutil import utcnow

log = logging.getLogger("app.services.turns")

if TYPE_CHECKING:
    from app.wiring import Runtime


def check_variables(system_prompt: str, variables: dict[str, Any] | None) -> None:
    missing = missing_variables(system_prompt, variables)
    if missing:
        raise InvalidRequest(f"variables: missing {', '.join(repr(m) for m in missing)} for the system prompt")


async def start_turn(runtime: Runtime, session: Session, text: str, variables: dict[str, Any] | None = None,
                     *, require_variables: bool = False) -> tuple[Message, Awaitable[TurnOutcome]]:
    """`require_variables`: every {{name}} in the system prompt must be given (AgentSpec)."""
    if session.kind == SessionKind.EXTERNAL:
        raise Conflict(f"session '{session.id}' is reported by an external agent; it does not run turns here",
                       code="external_session")
    if require_variables and session.agent_id is not None:
        agent = session.agent  # the joined row, or (not fetched yet) an awaitable of it
        assert agent is not None  # agent_id is set
        check_variables((await agent).system_prompt, variables)
    message = await record_message(runtime.events, session.id, "user", {"text": text})
    try:
        done = await runtime.runner.submit(session.id, message, variables, session)
    except Exception as exc:  # the runner is unreachable (Temporal down)
        # The message is stored and announced already: say in the log that it will not
        # be answered, rather than leave it looking queued.
        error = "the turn could not be queued (the runner is unreachable); send the message again"
        _log_not_queued(session.id, exc)
        # Read now, not before the wait: a turn that ended meanwhile would otherwise get a
        # `session.cancelled` after its own end.
        if await has_turn(session.id):
            # A turn of the session goes on (on a worker): a failure here would read as its
            # end. Say only that this message was given up, as a cancel of a queued one does.
            await runtime.events.append(session.id, "session.cancelled", {
                "reason": error, "message_id": None, "dropped_message_ids": [str(message.id)]})
        else:
            # updated_at as every status change moves it: /ws reads changes by it after a Redis gap
            await Session.filter(id=session.id).update(status=SessionStatus.FAILED, last_error=error, updated_at=utcnow())
            await runtime.events.append(session.id, "session.failed",
                                        {"error": error, "code": "runner_unavailable", "message_id": str(message.id)})
            runtime.events.notify_session("session_updated", session.id)
        raise ServiceUnavailable(error, code="runner_unavailable") from exc
    # One yield lets an idle session's turn start, and usually send its provider request,
    # before this request's response is built and written: the first token comes sooner.
    await asyncio.sleep(0)
    return message, done


def _log_not_queued(session_id: str, exc: Exception) -> None:
    """Temporal unreachable is an outage /healthz reports: one line each, its traceback
    only at DEBUG. Anything else is a fault of ours, with its traceback."""
    if isinstance(exc, ServiceUnavailable):
        from app.runtime.temporal.runner import unreachable_reason  # imports temporalio: temporal mode only

        log.warning("could not queue the turn for session %s, the message is given up: %s", session_id,
                    unreachable_reason(exc.__cause__ or exc))
        log.debug("could not queue the turn for session %s", session_id, exc_info=exc)
    else:
        log.exception("could not queue the turn for session %s", session_id)


async def post_user_message(runtime: Runtime, session_id: str, text: str, agent_id: str | None = None) -> Message:
    """The Everruns way: store a user message and start (or queue) its turn."""
    message, _ = await start_turn(runtime, await get_session(session_id, agent_id), text)
    return message
