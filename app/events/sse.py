"""Server-Sent Events for one session: replay from the log, then live, in order.

The stream subscribes to the bus *before* reading the log, then forwards live events
whose sequence is past the last one sent. A live event that skips ahead (another
writer published out of order) is preceded by the missing ones read from the log
(`EventLog.in_order`, which the /ws hub uses too).
So a client resuming with Last-Event-ID gets everything after it, once, in order.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Protocol

from app.events.bus import EventBus, Subscription
from app.events.log import EventLog, LoggedEvent
from app.json_encoding import dumps

REPLAY_BATCH = 500
# The most a stream reads of the log, or writes to its client, at once (about: one event
# however large). Replaying 500 events of 900 KB tool results held 450 MB read, encoded and
# waiting for one client; and a queue of large live events is not sent in one piece either.
BATCH_BYTES = 1024 * 1024
# Every SSE response's headers (docs/api.md §4.4); no-buffering asks proxies (nginx) to pass
# each frame on at once.
SSE_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


class Watch(Protocol):
    """What ends a stream from outside its event loop: the credential it was opened with
    stopping (app/auth/stream_watch.py CredentialWatch). `problem` says why."""

    problem: str | None

    def running(self, on_end: Callable[[], object]) -> contextlib.AbstractAsyncContextManager: ...


def credential_ended_frame(problem: str) -> bytes:
    """The last frame of a stream whose credential was revoked or expired: an `error`
    event with the 401 a request would get (no `id:`, so a resume point is unchanged)."""
    return f"event: error\ndata: {dumps({'code': 'unauthorized', 'message': problem})}\n\n".encode()


class KeepAlive:
    """When a stream last sent its client something, so that its keep-alive comments
    follow what it sent and not what the session did: a stream that leaves events out
    (AgentSpec's, queued behind an earlier turn) is idle for its client, and for the
    proxies in between, however busy the session is."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.sent()

    def sent(self) -> None:
        self._at = time.monotonic()

    def remaining(self) -> float:
        return max(0.0, self._at + self.seconds - time.monotonic())


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


async def session_stream(log: EventLog, bus: EventBus, session_id: str, options: StreamOptions,
                         watch: Watch | None = None) -> AsyncIterator[bytes]:
    async with contextlib.AsyncExitStack() as stack:
        live = stack.enter_context(bus.subscribe(session_id, maxsize=options.queue_size))
        if watch is not None:  # ends the stream by closing its subscription
            await stack.enter_async_context(watch.running(live.close))
        yield f"retry: {options.retry_ms}\n\n".encode()
        last = options.since
        async for batch in log.batches(session_id, last, REPLAY_BATCH, BATCH_BYTES):  # until nothing is newer
            frames = [event.sse_frame for event in batch if options.wants(event)]
            if frames:  # one write per batch: a long replay is not thousands of small sends
                yield b"".join(frames)
            last = batch[-1].sequence
        # Quiet is what this client saw: with `types`/`exclude` a busy session can send it
        # nothing for a whole turn (?exclude=message.delta during a long answer).
        keep_alive = KeepAlive(options.heartbeat_seconds)
        while True:
            try:
                first = await live.get(timeout=keep_alive.remaining())
            except TimeoutError:
                # Quiet for a while: anything stored meanwhile whose live copy was lost
                # (Redis down or reconnecting, temporal mode) is in the log. A gap is
                # otherwise seen only with the session's next event, which may never come.
                missed, _ = await log.read_batch(session_id, after=last, limit=REPLAY_BATCH, max_bytes=BATCH_BYTES)
                if missed:
                    last = missed[-1].sequence
                frames = [e.sse_frame for e in missed if options.wants(e)]
                yield b"".join(frames) if frames else b": keepalive\n\n"
                keep_alive.sent()
                continue
            # Whatever else is already queued goes out in the same write: under load this
            # means fewer, larger sends instead of one per event (up to BATCH_BYTES each).
            chunk: list[bytes] = []
            size = 0
            for event in (first, *live.get_ready()):
                if event is None:
                    if watch and watch.problem:  # the watch closed the subscription: send nothing more
                        yield credential_ended_frame(watch.problem)
                        return
                    if chunk:
                        yield b"".join(chunk)
                    if live.overflowed:  # dropped for falling behind: reconnect and catch up
                        yield b": too slow, reconnect with Last-Event-ID\n\n"
                    return  # otherwise the session was deleted
                assert isinstance(event, LoggedEvent)  # a session's subscription gets no notices
                # The next one in line is the common case, taken without a coroutine (this
                # runs per subscriber per event); repeats and gaps go through in_order.
                for due in (event,) if event.sequence == last + 1 else await log.in_order(last, event):
                    if options.wants(due):
                        frame = due.sse_frame
                        if chunk and size + len(frame) > BATCH_BYTES:
                            yield b"".join(chunk)
                            keep_alive.sent()
                            chunk, size = [], 0
                        chunk.append(frame)
                        size += len(frame)
                    last = due.sequence
            if chunk:
                yield b"".join(chunk)
                keep_alive.sent()


async def ordered_events(log: EventLog, subscription: Subscription, session_id: str, last: int,
                         quiet_seconds: Callable[[], float]) -> AsyncIterator[LoggedEvent | None]:
    """One event at a time, for streams that translate each (AgentSpec's /stream); the
    session stream above does the same in batches of what is queued.

    The session's events after `last`, each once, in order: the live ones, with any
    gap filled from the log (another process's event whose live copy was lost: temporal
    mode, Redis down). After `quiet_seconds()` without one (asked before each wait: the
    reader's time left until its next keep-alive) the log is read too, since a lost event
    may be the last of a turn; None then, if there is nothing (a keep-alive)."""
    while True:
        try:
            event = await subscription.get(timeout=quiet_seconds())
        except TimeoutError:
            due, _ = await log.read_batch(session_id, after=last, limit=REPLAY_BATCH, max_bytes=BATCH_BYTES)
            if not due:
                yield None
        else:
            if event is None:
                return  # closed: the session was deleted, or this reader fell too far behind
            assert isinstance(event, LoggedEvent)  # a session's subscription gets no notices
            due = [event] if event.sequence == last + 1 else await log.in_order(last, event)
        for event in due:
            last = event.sequence
            yield event
