"""MCP servers: the ones a caller can see, their live tools, the capabilities they give,
and checks of `mcp:` capability ids.

`env` (stdio) and `headers` (http) hold secrets: encrypted on the way in like provider
keys, never returned (masked hints only). A stdio server runs a command on this host,
so only admins (or anyone when authentication is off) may create one, switch a server
to stdio, or change what a stdio server runs (its command, args or env).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

from app.auth.principal import current_principal, new_owner, visible
from app.errors import ApiError, Conflict, Forbidden, InvalidRequest, NotFound
from app.models import McpServer
from app.models.enums import McpTransport
from app.runtime.capabilities import Capability
from app.runtime.mcp import ALL_TOOLS, PREFIX, McpPool, McpUnavailable, split_capability_id
from app.secrets import SecretBox, mask_secret
from app.services.common import paginate, parse_uuid

STDIO_FIELDS = ("command", "args", "env")
HTTP_FIELDS = ("url", "headers")
# What a field left over from the other transport is reset to when the transport changes.
_CLEARED: dict[str, Any] = {"command": None, "args": [], "env": None, "url": None, "headers": None}


class McpServerUnavailable(ApiError):
    status, code = 502, "mcp_unavailable"


# --- CRUD ------------------------------------------------------------------------------

async def create_server(fields: dict[str, Any], box: SecretBox) -> McpServer:
    if fields["transport"] == McpTransport.STDIO:
        _require_admin("create a stdio MCP server")
    owner = new_owner()
    await _check_name_free(fields["name"], owner)
    server = McpServer(owner_id=owner, name=fields["name"], transport=fields["transport"], enabled=fields["enabled"])
    _check_transport_fields(fields["transport"], fields)
    _apply(server, {key: fields.get(key) for key in (*STDIO_FIELDS, *HTTP_FIELDS) if fields.get(key) is not None}, box)
    _check_complete(server)
    await server.save()
    return server


async def list_servers(offset: int, limit: int) -> tuple[list[McpServer], int]:
    return await paginate(visible(McpServer.all()).order_by("created_at", "id"), offset, limit)


async def get_server(server_id: str) -> McpServer:
    server = await visible(McpServer.filter(id=parse_uuid(server_id, "MCP server"))).first()
    if server is None:
        raise NotFound(f"MCP server '{server_id}' not found")
    return server


async def update_server(server_id: str, changes: dict[str, Any], box: SecretBox, pool: McpPool) -> McpServer:
    server = await get_server(server_id)
    transport = changes.get("transport", server.transport)
    _check_transport_fields(transport, changes)
    if transport == McpTransport.STDIO and (transport != server.transport or any(key in changes for key in STDIO_FIELDS)):
        _require_admin("make a server run a command (stdio: command, args, env)")
    if changes.get("name", server.name) != server.name:
        await _check_name_free(changes["name"], server.owner_id)
    if transport != server.transport:  # the old transport's settings no longer apply
        other = HTTP_FIELDS if transport == McpTransport.STDIO else STDIO_FIELDS
        changes = {**{key: _CLEARED[key] for key in other}, **changes}
    for key in ("name", "transport", "enabled"):
        if key in changes:
            setattr(server, key, changes[key])
    _apply(server, {key: value for key, value in changes.items() if key in _CLEARED}, box)
    _check_complete(server)
    await server.save()
    await pool.forget(server.id)  # this process reconnects at once; others see the new updated_at
    return server


async def delete_server(server_id: str, pool: McpPool) -> None:
    """Agents naming it keep the id; their turns simply do not get its tools."""
    server = await get_server(server_id)
    await server.delete()
    await pool.forget(server.id)


def _require_admin(action: str) -> None:
    # Without authentication everyone is an admin (sees_everything); with it, the admin
    # role and, for API keys, the admin scope.
    if not current_principal().sees_everything:
        raise Forbidden(f"only admins may {action}: a stdio MCP server runs a command on the server's host")


async def _check_name_free(name: str, owner: uuid.UUID | None) -> None:
    if await McpServer.filter(name=name, owner_id=owner).exists():
        raise Conflict(f"an MCP server named '{name}' already exists; choose another name or update that one")


def _check_transport_fields(transport: McpTransport, fields: dict[str, Any]) -> None:
    """Settings of the other transport are a mistake worth saying (null clears them)."""
    other = HTTP_FIELDS if transport == McpTransport.STDIO else STDIO_FIELDS
    for key in other:
        if fields.get(key) not in (None, [], {}):
            raise InvalidRequest(f"{key}: only for transport '{McpTransport.HTTP if transport == McpTransport.STDIO else McpTransport.STDIO}'")


def _check_complete(server: McpServer) -> None:
    if server.transport == McpTransport.STDIO and not server.command:
        raise InvalidRequest("command: required for transport 'stdio'")
    if server.transport == McpTransport.HTTP and not server.url:
        raise InvalidRequest("url: required for transport 'http'")


def _apply(server: McpServer, values: dict[str, Any], box: SecretBox) -> None:
    for key, value in values.items():
        if key == "env":
            server.env_encrypted, server.env_hints = _sealed(value, box)
        elif key == "headers":
            server.headers_encrypted, server.header_hints = _sealed(value, box)
        elif key == "args":
            server.args = list(value or [])
        else:
            setattr(server, key, value)


def _sealed(values: dict[str, str] | None, box: SecretBox) -> tuple[str | None, dict[str, str]]:
    """A secret map as stored: encrypted as one JSON object, plus a hint per name."""
    if not values:
        return None, {}
    return box.encrypt(json.dumps(values)), {name: mask_secret(value) for name, value in values.items()}


# --- live tools and capabilities -----------------------------------------------------

async def list_server_tools(server_id: str, pool: McpPool) -> list[dict[str, Any]]:
    server = await get_server(server_id)
    try:
        return await pool.list_tools(server)
    except McpUnavailable as exc:
        raise McpServerUnavailable(f"MCP server '{server.name}' cannot be reached: {exc}") from None
    finally:
        if not server.enabled:  # listed on request only: no session kept for it
            await pool.forget(server.id, edited=False)


async def mcp_capabilities(pool: McpPool) -> list[Capability]:
    """For GET /v1/capabilities: per enabled server the caller can see, `mcp:<server>:*`
    and one capability per tool; a server that cannot be reached only as
    `mcp:<server>:*`, status `unavailable` (within the connect timeout, which the pool
    keeps; at once while the pool knows the server is down)."""
    servers = await visible(McpServer.filter(enabled=True)).order_by("name", "created_at")
    listed = await asyncio.gather(*(_capabilities_of(server, pool) for server in servers))
    return [capability for capabilities in listed for capability in capabilities]


async def _capabilities_of(server: McpServer, pool: McpPool) -> list[Capability]:
    everything = f"{PREFIX}{server.name}:{ALL_TOOLS}"
    title = f"MCP server {server.name}"
    try:
        tools = await pool.catalog(server)
    except McpUnavailable as exc:
        return [Capability(everything, title, f"Cannot be reached: {exc}", "unavailable")]
    # The tool's own name: all after `mcp:<server>:` (split_capability_id refuses names with white space)
    each = [Capability(tool.capability_id, f"{tool.capability_id.split(':', 2)[2]} ({server.name})",
                       tool.description, tools=(tool,)) for tool in tools]
    return [Capability(everything, title, f"All {len(tools)} tools of the MCP server '{server.name}'",
                       tools=tuple(tools)), *each]


async def unknown_mcp_capabilities(ids: list[str]) -> list[str]:
    """The `mcp:<server>:<tool>` / `mcp:<server>:*` ids that are malformed or name a
    server the caller cannot see. (Tools are not checked: the server may be offline.)"""
    parsed = {cap_id: split_capability_id(cap_id) for cap_id in ids if cap_id.startswith(PREFIX)}
    names = {parts[0] for parts in parsed.values() if parts}
    known = set(await visible(McpServer.filter(name__in=names)).values_list("name", flat=True)) if names else set()
    return [cap_id for cap_id, parts in parsed.items() if not parts or parts[0] not in known]
