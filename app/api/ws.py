"""/ws: the live feed a dashboard watches (Agent Runtime shape).

On connect: {"type": "init", "sessions": [...]}; then session_created / session_updated /
session_deleted and {"type": "event", "data": Event} for every session's events. The
client may send {"type": "ping"} and gets {"type": "pong"}.
"""

from __future__ import annotations

import asyncio
import json
import logging

from quart import Blueprint, websocket

from app.auth.principal import current_principal
from app.dialects.agent_runtime import ar_session
from app.wiring import current_runtime
from app.services import agent_runtime as service

log = logging.getLogger("app.api.ws")

bp = Blueprint("ws", __name__)

CLOSE_TRY_AGAIN_LATER = 1013
CLOSE_WAIT_SECONDS = 1.0


async def _answer_pings() -> None:
    while True:
        raw = await websocket.receive()
        try:
            message = json.loads(raw)
        except (TypeError, ValueError):
            continue
        if isinstance(message, dict) and message.get("type") == "ping":
            await websocket.send(json.dumps({"type": "pong"}))


async def _forward(connection) -> None:
    while True:
        await websocket.send(await connection.queue.get())


@bp.websocket("/ws")
async def live_feed():
    hub = current_runtime().hub
    principal = current_principal()
    connection = hub.connect(principal.user_id, principal.sees_everything)  # before reading sessions: miss nothing
    tasks: list[asyncio.Task] = []
    try:
        await websocket.accept()
        sessions = [ar_session(s) for s in await service.list_sessions()]
        await websocket.send(json.dumps({"type": "init", "sessions": sessions}, default=str))
        tasks = [asyncio.create_task(_forward(connection)), asyncio.create_task(_answer_pings()),
                 asyncio.create_task(connection.dropped.wait())]
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        if connection.dropped.is_set():
            # The client fell behind: tell it to come back later and let it catch up by REST.
            log.warning("/ws client fell behind by %d messages; closing it (1013)", hub.queue_size)
            for task in tasks:
                task.cancel()
            await asyncio.wait_for(websocket.close(CLOSE_TRY_AGAIN_LATER, "too slow"), CLOSE_WAIT_SECONDS)
        else:
            for task in done:
                task.result()  # re-raise a receive error (the client went away)
    except asyncio.TimeoutError:
        log.info("/ws client too slow and not reading; dropped")
    finally:
        hub.disconnect(connection)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
