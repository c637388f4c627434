"""/v1/mcp-servers: MCP tool servers whose tools agents can be given (capability ids
`mcp:<server>:<tool>` and `mcp:<server>:*`). `env` and `headers` are write-only."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, Field, HttpUrl, StrictBool, StringConstraints
from quart import Blueprint
from quart_schema import tag, validate_querystring, validate_request, validate_response

from app.api.common import Page, PageQuery, PatchBody, RequestBody, page_of
from app.api.openapi import no_content
from app.services import mcp_servers as service
from app.wiring import current_runtime

bp = Blueprint("mcp_servers", __name__)

ServerName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9_-]{1,64}$")]
Transport = Literal["stdio", "http"]
# (NUL, which no process takes in its arguments or environment, is refused for every
# body by app/api/json_body.py.) No line breaks in a header.
Text = Annotated[str, StringConstraints(max_length=4096)]
Command = Annotated[str, StringConstraints(min_length=1, max_length=1000)]
Args = Annotated[list[Text], Field(max_length=100)]
EnvName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")]
HeaderName = Annotated[str, StringConstraints(pattern=r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}$")]
HeaderValue = Annotated[str, StringConstraints(max_length=8192, pattern=r"^[^\r\n]*$")]
Env = Annotated[dict[EnvName, Text], Field(max_length=100, description="Write-only; stored encrypted")]
Headers = Annotated[dict[HeaderName, HeaderValue], Field(max_length=100, description="Write-only; stored encrypted")]
Url = Annotated[HttpUrl, Field(max_length=2000, description="The streamable HTTP endpoint, e.g. http://host:8000/mcp")]


def _box():
    return current_runtime().box


class McpServerCreate(RequestBody):
    name: ServerName = Field(description="Unique per owner; capability ids use it: mcp:<name>:<tool>")
    transport: Transport
    command: Command | None = Field(None, description="stdio: the program to run (admins only when auth is on)")
    args: Args = Field(default_factory=list, description="stdio: its arguments")
    env: Env | None = Field(None, description="stdio: variables added to a minimal environment; write-only")
    url: Url | None = None
    headers: Headers | None = Field(None, description="http: sent with every request (e.g. Authorization); write-only")
    enabled: StrictBool = True

    def fields(self) -> dict[str, Any]:
        data = self.model_dump()
        data["url"] = str(self.url) if self.url else None
        return data


class McpServerPatch(PatchBody):
    NOT_NULL = ("name", "transport", "enabled", "args")
    name: ServerName | None = None
    transport: Transport | None = None
    command: Command | None = None
    args: Args | None = None
    env: Env | None = Field(None, description="Replaces the whole map; null clears it")
    url: Url | None = None
    headers: Headers | None = Field(None, description="Replaces the whole map; null clears it")
    enabled: StrictBool | None = None

    def changes(self) -> dict[str, Any]:
        data = super().changes()
        if data.get("url") is not None:
            data["url"] = str(self.url)
        return data


class McpServerOut(BaseModel):
    id: UUID
    name: str
    transport: str
    command: str | None
    args: list[str]
    env_hints: dict[str, str] = Field(description="Variable name -> masked value")
    url: str | None
    header_hints: dict[str, str] = Field(description="Header name -> masked value")
    enabled: bool
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, s) -> McpServerOut:
        return cls(id=s.id, name=s.name, transport=s.transport, command=s.command, args=list(s.args or []),
                   env_hints=s.env_hints or {}, url=s.url, header_hints=s.header_hints or {}, enabled=s.enabled,
                   created_at=s.created_at, updated_at=s.updated_at)


class McpToolOut(BaseModel):
    name: str = Field(description="The tool's name on its server")
    model_name: str = Field(description="The name the model calls it by: <server>__<tool>, "
                                        "made to fit [A-Za-z0-9_-]{1,64}")
    capability_id: str = Field(description="mcp:<server>:<tool>")
    description: str
    input_schema: dict[str, Any]


class McpToolList(BaseModel):
    data: list[McpToolOut]
    total: int
    offset: int
    limit: int


@bp.post("/v1/mcp-servers")
@tag(["MCP servers"])
@validate_request(McpServerCreate)
@validate_response(McpServerOut, 201)
async def create_mcp_server(data: McpServerCreate):
    """Register an MCP server. env and headers are stored encrypted and never returned."""
    return McpServerOut.of(await service.create_server(data.fields(), _box())), 201


@bp.get("/v1/mcp-servers")
@tag(["MCP servers"])
@validate_querystring(PageQuery)
@validate_response(Page[McpServerOut])
async def list_mcp_servers(query_args: PageQuery):
    """List MCP servers."""
    items, total = await service.list_servers(query_args.offset, query_args.limit)
    return page_of(McpServerOut.of, items, total, query_args)


@bp.get("/v1/mcp-servers/<server_id>")
@tag(["MCP servers"])
@validate_response(McpServerOut)
async def get_mcp_server(server_id: str):
    """Get an MCP server."""
    return McpServerOut.of(await service.get_server(server_id))


@bp.patch("/v1/mcp-servers/<server_id>")
@tag(["MCP servers"])
@validate_request(McpServerPatch)
@validate_response(McpServerOut)
async def update_mcp_server(server_id: str, data: McpServerPatch):
    """Update an MCP server; its session is restarted with the new settings."""
    server = await service.update_server(server_id, data.changes(), _box(), current_runtime().mcp)
    return McpServerOut.of(server)


@bp.delete("/v1/mcp-servers/<server_id>")
@tag(["MCP servers"])
@no_content
async def delete_mcp_server(server_id: str):
    """Delete an MCP server (agents naming it no longer get its tools)."""
    await service.delete_server(server_id, current_runtime().mcp)
    return "", 204


@bp.get("/v1/mcp-servers/<server_id>/tools")
@tag(["MCP servers"])
@validate_response(McpToolList)
async def list_mcp_server_tools(server_id: str):
    """List the server's tools live; 502 mcp_unavailable when it cannot be reached."""
    tools = await service.list_server_tools(server_id, current_runtime().mcp)
    return McpToolList(data=[McpToolOut(**tool) for tool in tools], total=len(tools), offset=0, limit=len(tools))
