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
