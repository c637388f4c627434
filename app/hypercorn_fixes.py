"""Fixes for Hypercorn 0.18 (the latest release, and its main branch as of 2026-11).
The first: a closed WebSocket connection lingers until its ping task wakes up; the others
(below): connections a stopping server cannot close, and clients that stop reading.

`WSStream._send_pings` loops `while not self.closed: send a ping; sleep
websocket_ping_interval` (20 s, hypercorn.toml), and nothing wakes it when the stream
closes. The connection's task waits for it, so after every /ws client leaves, the
connection and what it holds stay up to 20 s. A server stopping within that time (the
shutdown closes every /ws feed) waits out its whole graceful_timeout and then logs the
cancelled connection as an error. Here the ping task is cancelled when the stream
closes. tests/test_serve_process.py fails if a later Hypercorn no longer has these
methods or still lingers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import sys
from collections.abc import Awaitable, Callable

try:
    import fcntl
    import termios

    _SEND_QUEUE: int | None = termios.TIOCOUTQ
except (ImportError, AttributeError):  # Windows: the transport's buffer alone tells
    _SEND_QUEUE = None


def end_websocket_pings_at_close() -> None:
    """Patch Hypercorn's WSStream once per process (before it serves)."""
    from hypercorn.protocol.ws_stream import WSStream

    if getattr(WSStream, "_pings_end_at_close", False):
        return
    send_pings, handle = WSStream._send_pings, WSStream.handle

    async def _send_pings(self) -> None:
        self._ping_task = asyncio.current_task()
        await send_pings(self)

    async def _handle(self, event) -> None:
        await handle(self, event)
        task = getattr(self, "_ping_task", None)
        if self.closed and task is not None and task is not asyncio.current_task():
            task.cancel()  # Hypercorn's task group takes a cancelled task as finished

    WSStream._send_pings = _send_pings  # type: ignore[method-assign]
    WSStream.handle = _handle  # type: ignore[method-assign]
    WSStream._pings_end_at_close = True  # type: ignore[attr-defined]


# --- connections a stopping server cannot close -------------------------------------
#
# Hypercorn stops by closing its listening servers and awaiting `wait_closed()` before its
# graceful_timeout starts. uvloop's `wait_closed()` waits for every open connection, and a
# connection whose client stopped reading never closes by itself: its last write waits in
# `drain()`, and closing it waits to flush what the kernel will not take. One such client
# (an SSE stream it does not read) held a SIGTERM'd server up for as long as it liked.
# So the connections are tracked, and those still open graceful_timeout after the stop
# began are aborted (their unsent data dropped), as graceful_timeout promises.

_open_connections: set = set()


def track_connections() -> None:
    """Patch Hypercorn's TCPServer once per process (before it serves)."""
    from hypercorn.asyncio.tcp_server import TCPServer

    if getattr(TCPServer, "_tracked", False):
        return
    run = TCPServer.run

    async def _run(self) -> None:
        _open_connections.add(self)
        try:
            await run(self)
        finally:
            _open_connections.discard(self)

    TCPServer.run = _run  # type: ignore[method-assign]
    TCPServer._tracked = True  # type: ignore[attr-defined]


async def abort_connections_after(seconds: float) -> int:
    """After `seconds`, abort every connection still open; returns how many."""
    await asyncio.sleep(seconds)
    stuck = list(_open_connections)
    for connection in stuck:
        connection.writer.transport.abort()
    return len(stuck)


# --- clients that stop reading while the server runs ----------------------------------
#
# Hypercorn writes a response (an SSE frame, a /ws message) and awaits drain(), which
# waits for as long as the client does not read. A client that stopped reading kept its
# connection, its unsent data and whatever its request held (an SSE replay batch) for as
# long as it stayed: five such SSE clients of a log of 900 KB events held 900 MB. So a
# connection that takes none of what is waiting for it for SEND_TIMEOUT_SECONDS is
# aborted. Hypercorn then tells its request the client went away (http.disconnect /
# websocket.disconnect), as for one that hung up, which ends the stream and frees it.

log = logging.getLogger("app.connections")


class _SendLimitedWriter:
    """A connection's StreamWriter, whose drain() and wait_closed() give up on a client
    that takes nothing for `seconds`: the connection is aborted (and drain() raises
    ConnectionResetError, which Hypercorn's TCPServer takes as the client gone).
    Everything else is the writer's."""

    def __init__(self, writer: asyncio.StreamWriter, seconds: float):
        self._writer = writer
        self._seconds = seconds

    def __getattr__(self, name: str):
        return getattr(self._writer, name)

    async def drain(self) -> None:
        transport = self._writer.transport
        if transport.get_write_buffer_size() <= transport.get_write_buffer_limits()[0]:
            # Below the low-water mark drain() does not wait: the common case, without a timer.
            await self._writer.drain()
        elif not await self._within_limit(self._writer.drain):
            raise ConnectionResetError("the client took nothing of what was sent to it")

    async def wait_closed(self) -> None:
        """Closing flushes what is unsent first, which for a client that does not read is
        never: a /ws client dropped for not reading, whose close the handler gave up
        sending, kept its connection open. Aborted like a write after the limit."""
        closed = asyncio.ensure_future(self._writer.wait_closed())  # one wait, shielded from the timeouts
        await self._within_limit(lambda: asyncio.shield(closed))  # aborted: it ends with the connection

    async def _within_limit(self, wait: Callable[[], Awaitable[None]]) -> bool:
        """Await `wait()`, unless the client takes nothing of its pending data for the
        limit: then abort the connection and answer False. A slow client is not cut off,
        only one that does not read: the limit starts again whenever it takes something."""
        while True:
            pending = _pending(self._writer)
            try:
                async with asyncio.timeout(self._seconds):
                    await wait()
                    return True
            except TimeoutError:
                if (now := _pending(self._writer)) < pending:
                    continue
            log.warning("cut off %s: it took nothing for %g s of the %d bytes waiting for it (not reading)",
                        _peer(self._writer), self._seconds, now)
            self._writer.transport.abort()
            return False


def _pending(writer: asyncio.StreamWriter) -> int:
    """Bytes written to a connection that its client has not taken yet: those in the
    transport's buffer and, where the kernel tells (Linux: TIOCOUTQ), in the socket's send
    queue. The transport's buffer alone does not show a slow reader's progress: it shrinks
    only once the kernel's queue, megabytes on a fast link, has half emptied."""
    size = writer.transport.get_write_buffer_size()
    sock = writer.get_extra_info("socket")
    if _SEND_QUEUE is not None and sock is not None:
        with contextlib.suppress(OSError, ValueError):
            size += int.from_bytes(fcntl.ioctl(sock.fileno(), _SEND_QUEUE, bytes(4)), sys.byteorder, signed=True)
    return size


def _peer(writer: asyncio.StreamWriter) -> str:
    peer = writer.get_extra_info("peername")
    return f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) and len(peer) >= 2 else "a client"


def limit_send_waits(seconds: float) -> None:
    """Patch Hypercorn's TCPServer once per process (before it serves): its connections'
    writes give up on a client that takes nothing for `seconds` (inf: never)."""
    from hypercorn.asyncio.tcp_server import TCPServer

    if getattr(TCPServer, "_send_limited", False) or math.isinf(seconds):
        return
    init = TCPServer.__init__

    def _init(self, *args, **kwargs) -> None:
        init(self, *args, **kwargs)
        self.writer = _SendLimitedWriter(self.writer, seconds)

    TCPServer.__init__ = _init  # type: ignore[method-assign]
    TCPServer._send_limited = True  # type: ignore[attr-defined]
