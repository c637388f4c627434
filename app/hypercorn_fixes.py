"""A fix for Hypercorn 0.18 (the latest release, and its main branch as of 2026-11):
a closed WebSocket connection lingers until its ping task wakes up.

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
