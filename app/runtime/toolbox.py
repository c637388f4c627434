"""The tools an agent may call in a turn: its built-in capabilities, the tools of its
MCP servers (app/runtime/mcp/), and the tools its client runs; each with the agent's
settings for the capability that gave it (`requires_approval`).

A client tool is declared on the agent (name, description, JSON schema) and never run
here: the turn asks the client for its result (app/runtime/waits.py).
"""

from __future__ import annotations

import dataclasses
import re
from typing import TYPE_CHECKING, Any

from app.models.enums import ToolCallKind
from app.runtime.capabilities import REGISTRY, Tool

if TYPE_CHECKING:
    from app.models import Agent
    from app.runtime.mcp import McpPool

MCP_PREFIX = "mcp:"
CLIENT_PREFIX = "client:"
# What OpenAI and Anthropic both accept as a function name.
TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")

# How a call is settled: at once, after a person approves it, or by the client.
RUN, APPROVAL, CLIENT = ToolCallKind.RUN, ToolCallKind.APPROVAL, ToolCallKind.CLIENT


def kind_of(tool: Tool | None) -> ToolCallKind:
    """An unknown tool runs at once (and answers the model with an error)."""
    if tool is None:
        return RUN
    if tool.runs_on_client:
        return CLIENT
    return APPROVAL if tool.requires_approval else RUN


def setting(settings: dict[str, Any], capability_id: str, name: str) -> Any:
    """An agent's setting for a capability; an MCP tool also takes its server's `*`."""
    own = settings.get(capability_id) or {}
    if name in own:
        return own[name]
    if capability_id.startswith(MCP_PREFIX):
        server = capability_id.split(":")[1]
        return (settings.get(f"{MCP_PREFIX}{server}:*") or {}).get(name)
    return None


def client_tool(spec: dict[str, Any]) -> Tool:
    parameters = spec.get("parameters") or {"type": "object", "properties": {}}
    return Tool(spec["name"], spec.get("description") or "", parameters, None,
                capability_id=CLIENT_PREFIX + spec["name"])


class Toolbox:
    def __init__(self, mcp: McpPool | None = None):
        self.mcp = mcp

    async def for_agent(self, agent: Agent | None) -> dict[str, Tool]:
        """By the name the model calls them; a later capability does not hide an earlier one."""
        if agent is None:
            return {}
        tools: list[Tool] = [dataclasses.replace(tool, capability_id=cap_id)
                             for cap_id in agent.capability_ids if cap_id in REGISTRY
                             for tool in REGISTRY[cap_id].tools]
        mcp_ids = [cap_id for cap_id in agent.capability_ids if cap_id.startswith(MCP_PREFIX)]
        if mcp_ids and self.mcp is not None:
            tools.extend((await self.mcp.tools_for(agent.owner_id, mcp_ids)).values())
        tools.extend(client_tool(spec) for spec in agent.client_tools or ())
        settings = agent.capability_settings or {}
        by_name: dict[str, Tool] = {}
        for tool in tools:
            if tool.name not in by_name:
                approval = bool(setting(settings, tool.capability_id, "requires_approval"))
                by_name[tool.name] = dataclasses.replace(tool, requires_approval=approval) if approval else tool
        return by_name
