"""One live MCP session with one server, held by a task of its own.

The SDK's transports (stdio_client, streamable_http_client) and ClientSession are anyio
context managers, which must be entered and left in the same task. So each connection
has an owner task that enters them, says it is ready, waits for its stop event, and
leaves them; anyone may send requests through the session meanwhile.

A session can die under a request: the stdio process exits, the HTTP server goes away.
The SDK then answers pending requests with "Connection closed" only in some of those
cases (in others the request would wait forever), so every request also watches the
owner task and ends as soon as it does. Errors are sorted into two kinds for the pool:
NotDelivered (the server never saw the request: safe to send again on a new session)
and ConnectionLost (it may have run it: tell the model, do not repeat).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from functools import partial
from typing import Any, TypeVar

import anyio
import httpx
from mcp import ClientSession, McpError, StdioServerParameters, types
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client

from app.models.enums import McpTransport
from app.runtime.mcp.base import ConnectionLost, McpUnavailable, NotDelivered, ServerConfig, describe
from app.runtime.mcp.http import WatchedTransport

log = logging.getLogger("app.runtime.mcp")

T = TypeVar("T")
CLOSE_GRACE_SECONDS = 5.0  # stdio_client waits 2 s for a clean exit, then SIGTERM, then SIGKILL
SESSION_TERMINATED = 32600  # what the SDK answers when an HTTP server no longer knows the session (404)


def _never_reached(exc: BaseException | None) -> bool:
    """Whether the session ended because the server could not be reached at all."""
    if isinstance(exc, BaseExceptionGroup):
        return any(_never_reached(inner) for inner in exc.exceptions)
    return isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout, anyio.BrokenResourceError))


class _WatchedStream:
    """The transport's read stream as the session reads it, telling when it ends (a
    stdio process that exited, a transport that closed), so the connection stops too
    instead of looking alive until the next request fails."""

    def __init__(self, stream: Any, on_end: Callable[[], None]):
        self._stream, self._on_end = stream, on_end

    async def __aenter__(self) -> _WatchedStream:
        await self._stream.__aenter__()
        return self

    async def __aexit__(self, *exc_info: Any) -> Any:
        self._on_end()
        return await self._stream.__aexit__(*exc_info)

    def __aiter__(self) -> _WatchedStream:
        return self

    async def __anext__(self) -> Any:
        return await self._stream.__anext__()


class Connection:
    def __init__(self, config: ServerConfig):
        self.config = config
        self.tools: list[types.Tool] | None = None  # cached for this session's life
        self.error: BaseException | None = None  # why the owner task ended, if it failed
        self._session: ClientSession | None = None
        self._ready = asyncio.Event()
        self._stop = asyncio.Event()
        self._ended = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._stale = False  # new requests go to a new session (app/runtime/mcp/http.py)

    @property
    def alive(self) -> bool:
        return self._session is not None and not self._stop.is_set() and not self._stale

    async def open(self) -> None:
        """Start the owner task and wait until the session is initialized; McpUnavailable
        when it fails. The caller bounds the wait (the pool's connect timeout), and closes
        a connection that did not open: in the background, as closing can take seconds
        (a stdio process gets 2 s to exit) that nobody should wait for."""
        # A fresh context: the task outlives the request that happened to open it.
        self._task = asyncio.create_task(self._own(), name=f"mcp:{self.config.name}", context=contextvars.Context())
        await self._first(self._ready.wait(), self._ended.wait())
        if not self.alive:
            raise McpUnavailable(describe(self.error))

    async def close(self) -> None:
        """Stop the owner task (which ends the session and the process) and wait for it."""
        task = self._task
        if task is None or task.done():
            return
        self._stop.set()
        if not self._ready.is_set():
            task.cancel()  # still connecting: nothing waits for the stop event yet
        done, _ = await asyncio.wait({task}, timeout=CLOSE_GRACE_SECONDS)
        if not done:
            task.cancel()
            await asyncio.wait({task}, timeout=CLOSE_GRACE_SECONDS)

    async def _own(self) -> None:
        try:
            async with AsyncExitStack() as stack:
                read, write = await self._transport(stack)
                # The SDK annotates anyio's stream class, but only enters and iterates it, as _WatchedStream does.
                session = ClientSession(_WatchedStream(read, self._stop.set), write,  # type: ignore[arg-type]
                                        message_handler=self._on_message)
                await stack.enter_async_context(session)
                await session.initialize()
                self._session = session
                self._ready.set()
                await self._stop.wait()
        except Exception as exc:  # an exception group from the transport's task group, an OSError...
            self.error = self.error or exc  # a breakage noticed first says more
            if self._ready.is_set():
                log.warning("MCP server %r: session ended: %s", self.config.name, describe(exc))
        finally:
            self._session = None
            self._ended.set()

    async def _transport(self, stack: AsyncExitStack) -> tuple[Any, Any]:
        config = self.config
        if config.transport == McpTransport.STDIO:
            # env is merged by the SDK onto a minimal inherited one (HOME, PATH, SHELL, TERM, USER, LOGNAME).
            params = StdioServerParameters(command=config.command or "", args=config.args, env=config.env)
            return await stack.enter_async_context(stdio_client(params))
        client = await stack.enter_async_context(httpx.AsyncClient(
            headers=config.headers, timeout=httpx.Timeout(30.0, read=300.0),
            transport=WatchedTransport(self._broken, self._mark_stale)))
        read, write, _ = await stack.enter_async_context(streamable_http_client(config.url or "", http_client=client))
        return read, write

    def _broken(self, exc: BaseException) -> None:
        """The HTTP connection broke (app/runtime/mcp/http.py): end the session now."""
        if self.error is None:
            self.error = exc
        self._stop.set()

    def _mark_stale(self) -> None:
        self._stale = True

    async def _on_message(self, message: Any) -> None:
        root = getattr(message, "root", None)
        if isinstance(message, types.ServerNotification) and isinstance(root, types.ToolListChangedNotification):
            self.tools = None  # listed again on next use

    async def list_tools(self) -> list[types.Tool]:
        if self.tools is None:
            session = self._live_session()
            tools: list[types.Tool] = []
            cursor: str | None = None
            while True:
                params: types.PaginatedRequestParams | None = types.PaginatedRequestParams(cursor=cursor) \
                    if cursor else None
                page = await self._guarded(partial(session.list_tools, params=params))
                tools.extend(page.tools)
                cursor = page.nextCursor
                if not cursor:
                    break
            self.tools = tools
        return self.tools

    async def call_tool(self, name: str, arguments: dict[str, Any]) -> types.CallToolResult:
        session = self._live_session()
        taken: list[Any] = []

        async def request() -> types.CallToolResult:
            # The id the SDK gives this request: it takes its counter before its first
            # await, so nothing runs in between. Kept so that a call given up on can be
            # cancelled on the server too.
            taken.append(getattr(session, "_request_id", None))
            return await session.call_tool(name, arguments)

        return await self._guarded(request, taken)

    def _live_session(self) -> ClientSession:
        session = self._session
        if session is None or not self.alive:
            raise NotDelivered("the session has ended")
        return session

    async def _guarded(self, request: Callable[[], Awaitable[T]], request_ids: list[Any] | None = None) -> T:
        """Run one request, ending as soon as the session does."""
        call = asyncio.ensure_future(request())
        try:
            await self._first(call, self._ended.wait())
        except asyncio.CancelledError:  # the caller's timeout: the session stays usable
            await self._give_up(call, request_ids[0] if request_ids else None)
            raise
        if not call.done():
            await self._give_up(call, None)
            if _never_reached(self.error):
                raise NotDelivered(describe(self.error))
            raise ConnectionLost(describe(self.error) if self.error else "the session was closed")
        try:
            return call.result()
        except McpError as exc:
            if exc.error.code == types.CONNECTION_CLOSED:
                raise ConnectionLost(exc.error.message) from None
            if exc.error.code == SESSION_TERMINATED:
                raise NotDelivered(exc.error.message) from None
            raise
        except (anyio.ClosedResourceError, anyio.BrokenResourceError, anyio.EndOfStream) as exc:
            raise NotDelivered(describe(exc)) from None

    async def _give_up(self, call: asyncio.Future, request_id: Any) -> None:
        call.cancel()
        await asyncio.gather(call, return_exceptions=True)
        session = self._session
        if request_id is None or session is None or not self.alive:
            return
        notice = types.ClientNotification(types.CancelledNotification(
            params=types.CancelledNotificationParams(requestId=request_id, reason="timed out")))
        with contextlib.suppress(Exception):  # best effort: the server may be gone or stuck
            await asyncio.wait_for(session.send_notification(notice), 1.0)

    @staticmethod
    async def _first(*awaitables: Awaitable[Any], timeout: float | None = None) -> None:
        """Wait until the first of these is done (or the timeout). The waits started here
        are cancelled then; futures passed in are the caller's to settle."""
        futures = [asyncio.ensure_future(a) for a in awaitables]
        started = [f for f, a in zip(futures, awaitables, strict=True) if f is not a]
        try:
            await asyncio.wait(futures, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for future in started:
                future.cancel()
