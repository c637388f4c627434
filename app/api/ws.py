"""/ws: the live feed a dashboard watches (Agent Runtime shape).

On connect: {"type": "init", "sessions": [...], "has_more": bool, "next": cursor}, the
newest page of sessions; then session_created / session_updated / session_deleted and
{"type": "event", "data": Event} for every session's events. The client may send
{"type": "ping"} (answered {"type": "pong"}) and {"type": "list_sessions", "before":
<next>, "limit": N} (answered {"type": "sessions", "before": ..., "sessions": [...],
"has_more": bool, "next": cursor}, or {"type": "error", ...}).

With authentication on, the connection is closed with 4401 once the credential of its
handshake is revoked or expires (app/auth/stream_watch.py).

Events come in the Agent Runtime types only (session_start, pre_tool, post_tool,
session_stop, message); `/ws?events=all` also sends the loop events that have none
(message.delta, step.*, ...), which the built-in dashboard streams text from.
"""

from __future__ import annotations

import asyncio
import json
import logging

from pydantic import ValidationError
from quart import Blueprint, websocket

from app.api.agent_runtime import SessionsQuery
from app.auth.principal import current_principal
from app.auth.stream_watch import watch_credential
from app.dialects.agent_runtime import session_page
from app.errors import InvalidRequest, describe_validation_error
from app.json_encoding import dumps
from app.services import agent_runtime as service
from app.wiring import current_runtime

log = logging.getLogger("app.api.ws")

bp = Blueprint("ws", __name__)

CLOSE_GOING_AWAY = 1001
CLOSE_TRY_AGAIN_LATER = 1013
CLOSE_UNAUTHORIZED = 4401  # the application range (4000-4999): HTTP's 401, so a client knows to sign in again
# How long the handler waits for its close to go out. One that cannot (the client is not
# reading) stays queued behind what was sent before it; the connection is cut off once the
# client has taken nothing for SEND_TIMEOUT_SECONDS (app/hypercorn_fixes.py).
CLOSE_WAIT_SECONDS = 1.0


async def _answer_requests(connection) -> None:
    """One request at a time, so a client cannot have many session reads running."""
    while True:
        raw = await websocket.receive()
        try:
            message = json.loads(raw)
        except (TypeError, ValueError):
            continue
        if not isinstance(message, dict):
            continue
        if message.get("type") == "ping":  # queued like every answer: answers keep request order
            connection.offer(dumps({"type": "pong"}))
        elif message.get("type") == "list_sessions":
            await _list_sessions(connection, message)


async def _list_sessions(connection, message: dict) -> None:
    """The answer's place in the queue is taken before the read, as init is read after
    connecting: a change the read missed is announced after the page, never before it
    (a deleted session cannot come back with a late page)."""
    slot = connection.reserve()
    try:
        # strict: JSON gives numbers as numbers; no "3" or true for a limit (the query string
        # of GET /sessions has only text, which the same model parses there)
        query = SessionsQuery.model_validate({k: message[k] for k in ("limit", "before") if k in message}, strict=True)
        sessions, cursor = await service.list_sessions(query.limit, query.before)
        current_runtime().hub.feed.remember(sessions)  # so their deletion is announced even if its notice is lost
        answer = {"type": "sessions", "before": query.before, **session_page(sessions, cursor)}
    except (ValidationError, InvalidRequest) as exc:
        detail = describe_validation_error(exc) if isinstance(exc, ValidationError) else exc.message
        answer = {"type": "error", "request": "list_sessions", "detail": detail}
    except Exception:  # the sender waits for this slot: it must be filled whatever happens
        log.exception("/ws list_sessions failed")
        answer = {"type": "error", "request": "list_sessions", "detail": "internal error"}
    if not slot.done():  # cancelled when the connection is going away
        slot.set_result(dumps(answer))


async def _forward(connection) -> None:
    while True:
        message = await connection.queue.get()
        if isinstance(message, asyncio.Future):
            message = await message
        await websocket.send(message)


@bp.websocket("/ws")
async def live_feed():
    hub = current_runtime().hub
    principal = current_principal()
    all_events = websocket.args.get("events") == "all"
    connection = hub.connect(principal.user_id, principal.sees_everything, all_events)  # before reading sessions: miss nothing
    watch, signed_out = watch_credential(), asyncio.Event()
    tasks: list[asyncio.Task] = []
    try:
        async with watch.running(signed_out.set):
            await websocket.accept()
            sessions, cursor = await service.list_sessions()  # the newest page; more on request
            hub.feed.remember(sessions)
            await websocket.send(dumps({"type": "init", **session_page(sessions, cursor)}))
            tasks = [asyncio.create_task(_forward(connection)), asyncio.create_task(_answer_requests(connection)),
                     asyncio.create_task(connection.dropped.wait()), asyncio.create_task(connection.going_away.wait()),
                     asyncio.create_task(signed_out.wait())]
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            if closing := _why_close(connection, watch.problem):
                for task in tasks:
                    task.cancel()
                await asyncio.wait_for(websocket.close(*closing), CLOSE_WAIT_SECONDS)
            else:
                for task in done:
                    task.result()  # re-raise a receive error (the client went away)
    except TimeoutError:
        log.info("/ws client not reading its close either; cut off once it has taken nothing for SEND_TIMEOUT_SECONDS")
    finally:
        hub.disconnect(connection)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _why_close(connection, credential_problem: str | None) -> tuple[int, str] | None:
    """The close code and reason when the server ends the connection, else None."""
    if connection.going_away.is_set():
        return CLOSE_GOING_AWAY, "server shutting down"
    if credential_problem:  # revoked or expired since the handshake: what a request would be told (401)
        return CLOSE_UNAUTHORIZED, credential_problem
    if connection.dropped.is_set():
        # The client fell behind: tell it to come back later and let it catch up by REST.
        log.warning("/ws client fell behind by %d messages; closing it (1013)", connection.queue.maxsize)
        return CLOSE_TRY_AGAIN_LATER, "too slow"
    return None
