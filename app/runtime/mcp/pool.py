"""The MCP sessions of one process: one per server, reused across calls and turns.

A session is keyed by the server's id and checked against its row's `updated_at`, so a
server edited by another process (an API process, a Temporal worker) is reconnected
with its new settings the next time a turn starts. A session that died (a crashed stdio
process, an HTTP server that went away) is started again by the next call; a call the
server never received is sent once more on the new session, a call it may have run is
not (the model is told it failed).

Reaching a server is one attempt at a time, shared by everyone who needs the server
meanwhile, and bounded by the connect timeout (start, initialize, list the tools). The
attempt is a task of its own, so a turn that gives up (cancelled) does not end it for
the others. A server that did not answer in time is remembered as down for
MCP_RETRY_SECONDS: turns go on without its tools at once (a warning in the log), tool
listings and calls say why at once, instead of each waiting out the timeout again. An
edit of the server here (`forget`), or a newer row, is tried at once. A server that
refuses at once (nothing listens, no such command) is tried at every use: that costs
no wait, and finds it as soon as it is back.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Any

from app.config import Settings
from app.models import McpServer
from app.runtime.capabilities import Tool, ToolError
from app.runtime.mcp.base import ConnectionLost, McpUnavailable, NotDelivered, ServerConfig, describe
from app.runtime.mcp.ids import parse_capability_ids
from app.runtime.mcp.results import capability_id, error_text, model_name, tool_result
from app.secrets import SecretBox

if TYPE_CHECKING:  # the SDK is imported on first use (see base.py)
    from mcp import types

    from app.runtime.mcp.connection import Connection

log = logging.getLogger("app.runtime.mcp")


@dataclass(frozen=True)
class _Down:
    """A server that did not answer in time: why, and until when it is not tried again."""

    version: datetime  # the row's updated_at then: a newer row is tried at once
    reason: str
    until: float  # time.monotonic()

    def why(self) -> str:
        return f"{self.reason} (not tried again for {math.ceil(self.until - time.monotonic())} s)"


class McpPool:
    def __init__(self, settings: Settings, box: SecretBox):
        self._timeout = settings.mcp_connect_timeout_seconds
        self._retry = settings.mcp_retry_seconds
        self._box = box
        self._connections: dict[uuid.UUID, Connection] = {}
        self._opening: dict[uuid.UUID, asyncio.Task[Connection]] = {}  # the attempt to reach a server
        self._down: dict[uuid.UUID, _Down] = {}
        self._closing: set[asyncio.Task[None]] = set()  # connections closing in the background
        self._closed = False

    # --- what turns and the API ask ------------------------------------------------

    async def tools_for(self, owner_id: uuid.UUID | None, capability_ids: list[str]) -> dict[str, Tool]:
        """The tools these `mcp:` capability ids give an agent of this owner (None: the
        ownerless servers), by the name the model calls them."""
        wanted = parse_capability_ids(capability_ids)
        if not wanted:
            return {}
        servers = await McpServer.filter(owner_id=owner_id, enabled=True, name__in=list(wanted))
        offered = await asyncio.gather(*(self._offer(server, wanted[server.name]) for server in servers))
        return {tool.name: tool for tools in offered for tool in tools}

    async def catalog(self, server: McpServer) -> list[Tool]:
        """All of a server's tools, listed live (cached for the session's life);
        McpUnavailable when it cannot be reached."""
        from mcp import McpError

        connection = await self._connection(server.id, server.updated_at, server)
        try:
            listed = await asyncio.wait_for(connection.list_tools(), self._timeout)
        except (TimeoutError, NotDelivered, ConnectionLost, McpError) as exc:
            self._drop(connection)
            timed_out = isinstance(exc, asyncio.TimeoutError)
            reason = f"no tool list within {self._timeout:g} s" if timed_out else describe(exc)
            raise McpUnavailable(reason) from None
        return [self._tool(connection.config, tool) for tool in listed]

    async def list_tools(self, server: McpServer) -> list[dict[str, Any]]:
        """For GET /v1/mcp-servers/{id}/tools; McpUnavailable with the reason."""
        return [{"name": tool.capability_id.split(":", 2)[2], "model_name": tool.name,
                 "capability_id": tool.capability_id, "description": tool.description,
                 "input_schema": tool.parameters} for tool in await self.catalog(server)]

    async def call(self, config: ServerConfig, tool: str, arguments: Any) -> Any:
        """Call a tool; anything the model should hear of raises ToolError."""
        from mcp import McpError

        if not isinstance(arguments, dict):
            raise ToolError("arguments must be a JSON object")
        for attempt in (1, 2):
            try:
                connection = await self._connection(config.id, config.version)
            except McpUnavailable as exc:
                raise ToolError(f"MCP server '{config.name}' is unavailable: {exc}") from None
            try:
                result = await connection.call_tool(tool, arguments)
            except NotDelivered as exc:
                self._drop(connection)
                if attempt == 2:
                    raise ToolError(f"MCP server '{config.name}' is unavailable: {exc}") from None
                continue  # it never saw the call: once more, on a new session
            except ConnectionLost as exc:
                self._drop(connection)
                raise ToolError(f"MCP server '{config.name}' stopped during the call ({exc}); "
                                "the next call starts it again, unless it was deleted or disabled meanwhile") from None
            except McpError as exc:
                raise ToolError(f"MCP error: {exc.error.message}") from None
            except (RuntimeError, ValueError) as exc:  # e.g. structured content failing its output schema
                raise ToolError(f"MCP tool '{tool}' failed: {exc}") from None
            if result.isError:
                raise ToolError(error_text(result))
            return tool_result(result)
        raise AssertionError("unreachable")

    async def forget(self, server_id: uuid.UUID, *, edited: bool = True) -> None:
        """Close a server's session now. `edited` (or deleted) here: an attempt to reach
        it with the old settings is abandoned (who waits for it makes a new one, from the
        stored row), and it is tried at its next use even if it was known down."""
        opening = self._opening.get(server_id)
        if opening is not None:
            if edited:
                opening.cancel()
            await asyncio.wait({opening})
        if edited:
            self._down.pop(server_id, None)
        connection = self._connections.pop(server_id, None)
        if connection is not None:
            await connection.close()

    async def close(self) -> None:
        """Shutdown: end every session (and stdio process), and every attempt to start one."""
        self._closed = True
        opening, self._opening = list(self._opening.values()), {}
        for task in opening:
            task.cancel()
        await asyncio.gather(*opening, return_exceptions=True)
        connections, self._connections = list(self._connections.values()), {}
        await asyncio.gather(*(connection.close() for connection in connections), *list(self._closing))

    # --- sessions -------------------------------------------------------------------

    async def _offer(self, server: McpServer, names: set[str] | None) -> list[Tool]:
        try:
            tools = await self.catalog(server)
        except McpUnavailable as exc:
            log.warning("MCP server %r is unavailable; its tools are left out of this turn: %s", server.name, exc)
            return []
        return [tool for tool in tools if names is None or tool.capability_id.split(":", 2)[2] in names]

    async def _connection(self, server_id: uuid.UUID, version: datetime, row: McpServer | None = None) -> Connection:
        """The live session of a server, as new as `version` at least; (re)connected
        from the stored row when there is none, it died, or it is older. McpUnavailable
        at once while the server is known to be down."""
        while True:
            if self._closed:
                raise McpUnavailable("the server is shutting down")
            connection = self._connections.get(server_id)
            if connection is not None and connection.alive and connection.config.version >= version:
                return connection
            down = self._down.get(server_id)
            if down is not None and down.version >= version and down.until > time.monotonic():
                raise McpUnavailable(down.why())
            opening = self._opening.get(server_id)
            mine = opening is None
            if opening is None:
                opening = self._start(server_id, version, row)
            # Waited for, not awaited: a caller cancelled here leaves the attempt to the others.
            await asyncio.wait({opening})
            if opening.cancelled():  # forget() or close(): the next round reads the stored row
                row = None
            elif mine:
                return opening.result()
            # Someone else's attempt: its connection or its failure decide the next round,
            # unless it was for an older version (then this caller makes one of its own).

    def _start(self, server_id: uuid.UUID, version: datetime, row: McpServer | None) -> asyncio.Task[Connection]:
        task = asyncio.create_task(self._open(server_id, version, row), name=f"mcp-connect:{server_id}")
        self._opening[server_id] = task
        task.add_done_callback(partial(self._opened, server_id))
        return task

    def _opened(self, server_id: uuid.UUID, task: asyncio.Task[Connection]) -> None:
        if self._opening.get(server_id) is task:
            del self._opening[server_id]
        if not task.cancelled():
            task.exception()  # retrieved: its waiters had it, or all gave up (no "never retrieved" noise)

    async def _open(self, server_id: uuid.UUID, version: datetime, row: McpServer | None) -> Connection:
        from mcp import McpError

        from app.runtime.mcp.connection import Connection

        row = await self._stored(server_id, version, row)
        connection = Connection(self._config(row))
        try:
            async with asyncio.timeout(self._timeout):  # one deadline for all of it, as documented
                await connection.open()
                await connection.list_tools()
        except TimeoutError:
            self._retire(connection)
            raise self._went_down(row, f"no answer within {self._timeout:g} s") from None
        except (McpUnavailable, NotDelivered, ConnectionLost, McpError) as exc:
            # Refused at once (nothing listens, no such command): trying again costs
            # nothing to wait for, and finds a restarted server at once.
            self._retire(connection)
            raise McpUnavailable(str(exc) if isinstance(exc, McpUnavailable) else describe(exc)) from None
        except BaseException:
            self._retire(connection)
            raise
        if self._closed:  # shutdown began while it connected: close() did not see it
            self._retire(connection)
            raise McpUnavailable("the server is shutting down")
        old = self._connections.pop(server_id, None)
        if old is not None:
            self._retire(old)
        self._connections[server_id] = connection
        self._down.pop(server_id, None)
        return connection

    @staticmethod
    async def _stored(server_id: uuid.UUID, version: datetime, row: McpServer | None) -> McpServer:
        if row is None or row.updated_at < version:
            # A turn's tools outlive edits: always connect with the stored settings.
            row = await McpServer.get_or_none(id=server_id)
            if row is not None and not row.enabled:
                raise McpUnavailable("the server is disabled")
        if row is None:
            raise McpUnavailable("the server was deleted")
        return row

    def _went_down(self, row: McpServer, reason: str) -> McpUnavailable:
        """A server that made its callers wait out the timeout: until MCP_RETRY_SECONDS
        pass, callers are told at once instead of each waiting again."""
        self._down[row.id] = _Down(row.updated_at, reason, time.monotonic() + self._retry)
        log.warning("MCP server %r cannot be reached: %s; not tried again for %g s", row.name, reason, self._retry)
        return McpUnavailable(reason)

    def _drop(self, connection: Connection) -> None:
        if self._connections.get(connection.config.id) is connection:
            del self._connections[connection.config.id]
        self._retire(connection)

    def _retire(self, connection: Connection) -> None:
        """Close it in the background: a stdio process gets seconds to exit, which no
        turn should wait for (close() waits for them all)."""
        task = asyncio.create_task(connection.close(), name=f"mcp-close:{connection.config.name}")
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    def _config(self, row: McpServer) -> ServerConfig:
        try:
            env = json.loads(self._box.decrypt(row.env_encrypted)) if row.env_encrypted else {}
            headers = json.loads(self._box.decrypt(row.headers_encrypted)) if row.headers_encrypted else {}
        except ValueError as exc:
            raise McpUnavailable(str(exc)) from None
        return ServerConfig(id=row.id, name=row.name, version=row.updated_at, transport=row.transport,
                            command=row.command, args=list(row.args or []), env=env, url=row.url, headers=headers)

    def _tool(self, config: ServerConfig, listed: types.Tool) -> Tool:
        async def invoke(arguments: Any) -> Any:
            return await self.call(config, listed.name, arguments)

        schema = dict(listed.inputSchema or {})
        schema.setdefault("type", "object")
        return Tool(name=model_name(config.name, listed.name), description=listed.description or listed.title or "",
                    parameters=schema, invoke=invoke, capability_id=capability_id(config.name, listed.name))
