"""Live delivery to WebSocket clients (the dashboard's /ws feed).

One hub task per process listens to every session's events and session notices,
translates each one to the Agent Runtime shape once, encodes it once, and offers the
bytes to every connection's bounded queue. A connection whose queue is full is closed
(code 1013) by its own handler; the hub never waits for a client, so a slow client
cannot slow other clients, the REST API or a turn.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable

from app.events.bus import ALL_SESSIONS, EventBus, SessionNotice
from app.events.log import LoggedEvent

log = logging.getLogger("app.events.ws")

HUB_QUEUE_SIZE = 100_000  # the hub only translates, so it keeps up unless the process is starved


class Connection:
    def __init__(self, maxsize: int):
        self.queue: asyncio.Queue[str] = asyncio.Queue(maxsize)
        # Set when the queue overflowed. The handler watches this, not the queue: its
        # sender may be stuck writing to a client that stopped reading.
        self.dropped = asyncio.Event()

    def offer(self, message: str) -> None:
        if self.dropped.is_set():
            return
        try:
            self.queue.put_nowait(message)
        except asyncio.QueueFull:
            self.dropped.set()
            while not self.queue.empty():  # free the memory now; the client is being closed
                self.queue.get_nowait()


class WebSocketHub:
    def __init__(self, bus: EventBus, translate_event: Callable[[LoggedEvent], Awaitable[dict]],
                 translate_notice: Callable[[SessionNotice], Awaitable[dict | None]], queue_size: int):
        self.bus = bus
        self.translate_event = translate_event
        self.translate_notice = translate_notice
        self.queue_size = queue_size
        self.connections: set[Connection] = set()
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="ws-hub")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def connect(self) -> Connection:
        connection = Connection(self.queue_size)
        self.connections.add(connection)
        return connection

    def disconnect(self, connection: Connection) -> None:
        self.connections.discard(connection)

    def broadcast(self, message: dict) -> None:
        encoded = json.dumps(message, separators=(",", ":"), default=str)
        for connection in tuple(self.connections):
            connection.offer(encoded)

    async def _run(self) -> None:
        while True:
            with self.bus.subscribe(ALL_SESSIONS, maxsize=HUB_QUEUE_SIZE) as feed:
                while (item := await feed.get()) is not None:
                    if not self.connections:
                        continue
                    try:
                        if isinstance(item, SessionNotice):
                            message = await self.translate_notice(item)
                        else:
                            message = {"type": "event", "data": await self.translate_event(item)}
                    except Exception:  # one bad item must not stop the feed
                        log.exception("cannot translate %r for /ws", item)
                        continue
                    if message is not None:
                        self.broadcast(message)
                log.warning("/ws hub fell behind and resubscribed; clients may need to reload")
