"""The built-in capability registry: named bundles of tools an agent can be given.

A tool is what the model may call: a name, a description, the JSON schema of its
arguments, and `invoke`, which runs it. A built-in tool (`Tool.builtin`) is a pydantic
model for its arguments (which gives both the schema shown to the model and the
validation of what the model sends) and an async function. MCP tools
(app/runtime/mcp/) and client tools (app/runtime/toolbox.py) are Tools too.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field


class ToolError(Exception):
    """A tool failed in a way the model should be told about (not a server error)."""


@dataclass(frozen=True)
class Tool:
    name: str  # as the model sees it: [A-Za-z0-9_-]{1,64}, what both providers accept
    description: str
    parameters: dict[str, Any]  # JSON schema of the arguments object
    # Runs the tool with the model's arguments (a JSON object). Raises ToolError (or
    # pydantic's ValidationError) for what the model should be told; None: a client tool.
    invoke: Callable[[Any], Awaitable[Any]] | None
    capability_id: str = ""  # the capability that gave it (its settings apply)
    requires_approval: bool = False  # the agent's setting for that capability

    @property
    def runs_on_client(self) -> bool:
        return self.invoke is None

    @classmethod
    def builtin(cls, name: str, description: str, args_model: type[BaseModel],
                run: Callable[[Any], Awaitable[Any]]) -> Tool:
        schema = args_model.model_json_schema()
        schema.pop("title", None)

        async def invoke(arguments: Any) -> Any:
            return await run(args_model.model_validate(arguments))

        return cls(name, description, schema, invoke)


@dataclass(frozen=True)
class Capability:
    id: str
    name: str
    description: str
    status: str = "available"
    tools: tuple[Tool, ...] = field(default_factory=tuple)


class CurrentTimeArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    timezone: str = Field("UTC", description="IANA time zone name, e.g. Europe/Paris")
    format: Literal["iso8601", "unix", "human"] = Field("iso8601", description="Output format")


async def get_current_time(args: CurrentTimeArgs) -> dict[str, Any]:
    try:
        zone = ZoneInfo(args.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ToolError(f"unknown timezone {args.timezone!r}; use an IANA name such as 'Europe/Paris'") from None
    now = dt.datetime.now(zone)
    if args.format == "unix":
        value: Any = int(now.timestamp())
    elif args.format == "human":
        value = now.strftime("%A, %d %B %Y, %H:%M:%S %Z")
    else:
        value = now.isoformat()
    return {"timezone": args.timezone, "format": args.format, "time": value}


REGISTRY: dict[str, Capability] = {
    cap.id: cap
    for cap in (
        Capability(
            id="noop",
            name="No-op",
            description="Adds no tools; useful for testing capability wiring.",
        ),
        Capability(
            id="current_time",
            name="Current time",
            description="Lets the agent read the current date and time in any time zone.",
            tools=(
                Tool.builtin(
                    name="get_current_time",
                    description="Get the current date and time in an IANA time zone.",
                    args_model=CurrentTimeArgs,
                    run=get_current_time,
                ),
            ),
        ),
    )
}


def unknown_capabilities(ids: list[str]) -> list[str]:
    return [cap_id for cap_id in ids if cap_id not in REGISTRY]


def tools_for(capability_ids: list[str]) -> dict[str, Tool]:
    """The tools an agent with these capabilities may call, by tool name."""
    return {
        tool.name: tool
        for cap_id in capability_ids
        if cap_id in REGISTRY
        for tool in REGISTRY[cap_id].tools
    }
