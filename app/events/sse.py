"""Server-Sent Events for one session: replay from the log, then live, in order.

The stream subscribes to the bus *before* reading the log, then forwards live events
whose sequence is past the last one sent. A live event that skips ahead (another
writer published out of order) is preceded by the missing ones read from the log.
So a client resuming with Last-Event-ID gets everything after it, once, in order.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

from app.events.bus import EventBus
from app.events.log import EventLog, LoggedEvent

REPLAY_BATCH = 500


@dataclass(frozen=True)
class StreamOptions:
    since: int = 0
    types: frozenset[str] | None = None
    exclude: frozenset[str] | None = None
    heartbeat_seconds: float = 15.0
    retry_ms: int = 2000
    queue_size: int | None = None

    def wants(self, event: LoggedEvent) -> bool:
        if self.types and event.type not in self.types:
            return False
        return not (self.exclude and event.type in self.exclude)


async def session_stream(log: EventLog, bus: EventBus, session_id: str, options: StreamOptions) -> AsyncIterator[bytes]:
    with bus.subscribe(session_id, maxsize=options.queue_size) as live:
        yield f"retry: {options.retry_ms}\n\n".encode()
        last = options.since
        while True:  # replay in batches until the log has nothing newer
            batch = await log.read(session_id, after=last, limit=REPLAY_BATCH)
            for event in batch:
                if options.wants(event):
                    yield event.sse_frame
                last = event.sequence
            if len(batch) < REPLAY_BATCH:
                break
        while True:
            try:
                event = await live.get(timeout=options.heartbeat_seconds)
            except asyncio.TimeoutError:
                yield b": keepalive\n\n"
                continue
            if event is None:
                if live.overflowed:  # dropped for falling behind: the client reconnects and catches up
                    yield b": too slow, reconnect with Last-Event-ID\n\n"
                return  # otherwise the session was deleted
            if event.sequence <= last:
                continue
            missing = await log.read(session_id, after=last, limit=event.sequence - last - 1) if event.sequence > last + 1 else []
            for item in (*missing, event):
                if options.wants(item):
                    yield item.sse_frame
                last = item.sequence
