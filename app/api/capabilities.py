"""/v1/capabilities: the built-in registry of tool bundles, and the tools of the MCP
servers the caller can see (`mcp:<server>:<tool>`, `mcp:<server>:*`), listed live."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from quart import Blueprint
from quart_schema import tag, validate_response

from app.api.common import Page
from app.runtime.capabilities import REGISTRY, Capability
from app.services.mcp_servers import mcp_capabilities
from app.wiring import current_runtime

bp = Blueprint("capabilities", __name__)


class ToolOut(BaseModel):
    name: str
    description: str
    parameters: dict[str, Any]


class CapabilityOut(BaseModel):
    id: str
    name: str
    description: str
    status: str
    tools: list[ToolOut]


@bp.get("/v1/capabilities")
@tag(["Capabilities"])
@validate_response(Page[CapabilityOut])
async def list_capabilities():
    """List the built-in capabilities and the MCP servers' tools, with the JSON schema of
    each tool; an MCP server that cannot be reached is `mcp:<server>:*`, status unavailable."""
    runtime = current_runtime()
    mcp = await mcp_capabilities(runtime.mcp)
    data = [_out(cap) for cap in (*REGISTRY.values(), *mcp)]
    return Page[CapabilityOut](data=data, total=len(data), offset=0, limit=len(data))


def _out(cap: Capability) -> CapabilityOut:
    return CapabilityOut(
        id=cap.id, name=cap.name, description=cap.description, status=cap.status,
        tools=[ToolOut(name=t.name, description=t.description, parameters=t.parameters) for t in cap.tools],
    )
