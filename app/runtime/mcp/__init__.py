"""MCP (Model Context Protocol) tool servers as capabilities, through the official `mcp`
SDK: `McpPool` holds one live session per server per process (app/wiring.py makes one
for each API and worker process); its tools are ordinary `Tool`s."""

from app.runtime.mcp.base import McpUnavailable
from app.runtime.mcp.ids import ALL_TOOLS, PREFIX, SERVER_NAME, parse_capability_ids, split_capability_id
from app.runtime.mcp.pool import McpPool
from app.runtime.mcp.results import capability_id, model_name

__all__ = ["ALL_TOOLS", "PREFIX", "SERVER_NAME", "McpPool", "McpUnavailable", "capability_id", "model_name",
           "parse_capability_ids", "split_capability_id"]
