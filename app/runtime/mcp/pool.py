"""The MCP sessions of one process: one per server, reused across calls and turns.

A session is keyed by the server's id and checked against its row's `updated_at`, so a
server edited by another process (an API process, a Temporal worker) is reconnected
with its new settings the next time a turn starts. A session that died (a crashed stdio
process, an HTTP server that went away) is started again by the next call; a call the
server never received is sent once more on the new session, a call it may have run is
not (the model is told it failed). A server that cannot be reached when a turn starts
is left out of the turn's tools, with a warning in the log: the turn goes on.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections import defaultdict
from datetime import datetime
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


class McpPool:
    def __init__(self, settings: Settings, box: SecretBox):
        self._timeout = settings.mcp_connect_timeout_seconds
        self._box = box
        self._connections: dict[uuid.UUID, Connection] = {}
        self._locks: defaultdict[uuid.UUID, asyncio.Lock] = defaultdict(asyncio.Lock)
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
            await self._drop(connection)
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
                await self._drop(connection)
                if attempt == 2:
                    raise ToolError(f"MCP server '{config.name}' is unavailable: {exc}") from None
                continue  # it never saw the call: once more, on a new session
            except ConnectionLost as exc:
                await self._drop(connection)
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

    async def forget(self, server_id: uuid.UUID) -> None:
        """A server was edited or deleted here: close its session now."""
        async with self._locks[server_id]:
            connection = self._connections.pop(server_id, None)
        if connection is not None:
            await connection.close()

    async def close(self) -> None:
        """Shutdown: end every session (and stdio process)."""
        self._closed = True
        connections, self._connections = list(self._connections.values()), {}
        await asyncio.gather(*(connection.close() for connection in connections))

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
        from the stored row when there is none, it died, or it is older."""
        async with self._locks[server_id]:
            connection = self._connections.get(server_id)
            if connection is not None and connection.alive and connection.config.version >= version:
                return connection
            if connection is not None:
                self._connections.pop(server_id, None)
                await connection.close()
            if row is None or row.updated_at < version:
                # A turn's tools outlive edits: always connect with the stored settings.
                row = await McpServer.get_or_none(id=server_id)
                if row is not None and not row.enabled:
                    raise McpUnavailable("the server is disabled")
            if row is None:
                raise McpUnavailable("the server was deleted")
            if self._closed:
                raise McpUnavailable("the server is shutting down")
            from app.runtime.mcp.connection import Connection

            connection = Connection(self._config(row), self._timeout)
            await connection.open()
            if self._closed:  # shutdown began while it connected: close() did not see it
                await connection.close()
                raise McpUnavailable("the server is shutting down")
            self._connections[server_id] = connection
            return connection

    async def _drop(self, connection: Connection) -> None:
        server_id = connection.config.id
        if self._connections.get(server_id) is connection:
            del self._connections[server_id]
        await connection.close()

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
