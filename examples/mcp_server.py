"""A small MCP tool server for the README walkthrough, written with the `mcp` SDK's
FastMCP. The agent runtime starts it itself (transport stdio):

    curl -s -X POST localhost:9000/v1/mcp-servers -H 'Content-Type: application/json' \
      -d "{\"name\": \"words\", \"transport\": \"stdio\", \"command\": \"$PWD/.venv/bin/python\",
           \"args\": [\"$PWD/examples/mcp_server.py\"]}"

Its tools are then the capabilities `mcp:words:word_count` and `mcp:words:add` (or
`mcp:words:*`), offered to the model as `words__word_count` and `words__add`.
Run it by hand with `python examples/mcp_server.py` (it speaks JSON-RPC on stdin/stdout).
"""

from __future__ import annotations

from collections import Counter

from mcp.server.fastmcp import FastMCP

server = FastMCP("words", log_level="WARNING")


@server.tool()
def word_count(text: str, top: int = 3) -> dict:
    """Count the words of a text, and name the most frequent ones."""
    words = [word.strip(".,;:!?\"'()").lower() for word in text.split()]
    words = [word for word in words if word]
    return {"words": len(words), "most_common": [w for w, _ in Counter(words).most_common(top)]}


@server.tool()
def add(a: float, b: float) -> float:
    """Add two numbers."""
    return a + b


if __name__ == "__main__":
    server.run("stdio")
