"""Capability ids of MCP tools: `mcp:<server>:<tool>`, and `mcp:<server>:*` for all of
a server's tools. Server names are `[a-z0-9_-]{1,64}`; a tool's name is the server's own
(1 to 200 characters, no white space; it may hold further colons)."""

from __future__ import annotations

import re

PREFIX = "mcp:"
ALL_TOOLS = "*"
SERVER_NAME = re.compile(r"^[a-z0-9_-]{1,64}$")
_CAPABILITY = re.compile(r"^mcp:([a-z0-9_-]{1,64}):(\S{1,200})$")


def split_capability_id(capability_id: str) -> tuple[str, str] | None:
    """(server, tool or "*"), or None when the id is not a well-formed MCP one."""
    match = _CAPABILITY.match(capability_id)
    return (match.group(1), match.group(2)) if match else None


def parse_capability_ids(capability_ids: list[str]) -> dict[str, set[str] | None]:
    """Server name -> the tools wanted from it (None: all of them). Ids of other kinds
    and malformed ones are ignored (agents are checked when they are saved)."""
    wanted: dict[str, set[str] | None] = {}
    for capability_id in capability_ids:
        parts = split_capability_id(capability_id)
        if parts is None:
            continue
        server, tool = parts
        if tool == ALL_TOOLS:
            wanted[server] = None
        elif (tools := wanted.setdefault(server, set())) is not None:  # None: all its tools already
            tools.add(tool)
    return wanted
