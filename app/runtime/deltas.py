"""Streaming text into the event log: merged deltas, so a token stream is neither a
database row per token nor a socket write per token per subscriber."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from app.errors import SessionGone
from app.events.log import EventLog

MAX_DELTA_INTERVAL = 1.0  # however many watch, text still moves at least once a second


class DeltaWriter:
    """Merges text deltas into at most one event per interval; never drops any.

    The first delta goes out at once (time to first token matters most); later ones wait
    at most `interval()` seconds, flushed by a timer if the model pauses.
    """

    def __init__(self, events: EventLog, session_id: str, data: dict[str, Any], interval: float,
                 per_subscriber: float = 0.0):
        self.events, self.session_id, self.data = events, session_id, data
        self.base_interval, self.per_subscriber = interval, per_subscriber
        self._pending: list[str] = []
        self._last_flush = 0.0
        self._lock = asyncio.Lock()
        self._timer: asyncio.Task | None = None

    async def add(self, text: str) -> None:
        self._pending.append(text)
        if self._timer is not None:
            return  # the pending flush takes this along
        wait = self._last_flush + self.interval() - time.monotonic()
        if wait <= 0 and not self._lock.locked():
            await self.flush()
        else:  # also while a flush is being delivered: the model's stream is not held up
            self._timer = asyncio.create_task(self._flush_later(max(wait, 0.0)))

    def interval(self) -> float:
        """Each delta costs one write per live subscriber: with many, merge over longer
        windows so the writes per second stay bounded (1000 subscribers: 150 ms by
        default) instead of the server falling ever further behind."""
        watchers = self.events.bus.subscriber_count(self.session_id)
        return min(MAX_DELTA_INTERVAL, max(self.base_interval, watchers * self.per_subscriber))

    async def _flush_later(self, wait: float) -> None:
        await asyncio.sleep(wait)
        self._timer = None  # past this point close() waits for the write instead of cancelling it
        try:
            await self.flush()
        except SessionGone:
            pass  # nobody awaits this task: the turn's own next write finds out, and ends it

    def discard(self) -> None:
        """Write nothing more: the session is gone (Turn.drop_pending_writes)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._pending.clear()

    async def flush(self) -> None:
        async with self._lock:
            count = len(self._pending)
            if count:
                self._last_flush = time.monotonic()  # the next window opens now, not after delivery
                await self.events.append(self.session_id, "message.delta", {**self.data, "delta": "".join(self._pending[:count])})
                del self._pending[:count]
                # Let the streams it woke send it before the turn goes on: parsing the rest
                # of a burst of chunks from the provider would otherwise delay this one.
                # (Only for deltas: other events published back to back should rather be
                # sent together, which matters when a session has many subscribers.)
                await asyncio.sleep(0)

    async def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        await self.flush()
