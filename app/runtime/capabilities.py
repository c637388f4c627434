"""The built-in capability registry: named bundles of tools an agent can be given.

A tool is a pydantic model for its arguments (which gives both the JSON schema shown to
the model and the validation of what the model sends) and an async function.
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
    name: str
    description: str
    args_model: type[BaseModel]
    run: Callable[[Any], Awaitable[Any]]

    @property
    def parameters(self) -> dict[str, Any]:
        schema = self.args_model.model_json_schema()
        schema.pop("title", None)
        return schema


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
                Tool(
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
