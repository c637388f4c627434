"""What the model sees of an MCP server's tools: their names, and their results.

Names: OpenAI and Anthropic both require a function name to match
`^[a-zA-Z0-9_-]{1,64}$`, while MCP allows longer tool names with other characters, and
two servers may both have a tool called `search`. So the model sees
`<server>__<tool>`; when the tool's name has other characters (they become `_`) or the
whole is longer than 64, it is cut to fit and ends in `_` and 8 hex digits of a hash of
the exact capability id, which keeps different tools apart.

Results go into the event log (`tool.completed`) and back to the model: text as text,
JSON as JSON, and binary content (images, audio, blobs) only as a reference that says
what it was and how big, never the base64 itself.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the SDK is imported on first use (see base.py)
    from mcp import types

MAX_NAME = 64
_UNSAFE = re.compile(r"[^a-zA-Z0-9_-]")


def capability_id(server: str, tool: str) -> str:
    return f"mcp:{server}:{tool}"


def model_name(server: str, tool: str) -> str:
    """The name the model calls `tool` of `server` by (see the module's docstring)."""
    plain = f"{server}__{tool}"
    safe = _UNSAFE.sub("_", plain)
    if safe == plain and len(safe) <= MAX_NAME:
        return safe
    digest = hashlib.sha256(capability_id(server, tool).encode()).hexdigest()[:8]
    return f"{safe[:MAX_NAME - 9]}_{digest}"


def decoded_size(data: str) -> int:
    """The number of bytes a base64 text holds, without keeping them."""
    try:
        return len(base64.b64decode(data, validate=False))
    except (binascii.Error, ValueError):
        return len(data) * 3 // 4


def _block(block: Any) -> dict[str, Any]:
    """One content block as stored: text as is, anything binary as a reference."""
    from mcp import types

    if isinstance(block, types.TextContent):
        return {"type": "text", "text": block.text}
    if isinstance(block, (types.ImageContent, types.AudioContent)):
        return {"type": block.type, "mime_type": block.mimeType, "bytes": decoded_size(block.data)}
    if isinstance(block, types.EmbeddedResource):
        resource = block.resource
        ref = {"type": "resource", "uri": str(resource.uri), "mime_type": resource.mimeType}
        if isinstance(resource, types.TextResourceContents):
            return {**ref, "text": resource.text}
        return {**ref, "bytes": decoded_size(getattr(resource, "blob", ""))}
    if isinstance(block, types.ResourceLink):
        return {"type": "resource_link", "uri": str(block.uri), "name": block.name, "mime_type": block.mimeType}
    return {"type": getattr(block, "type", "unknown")}


def error_text(result: types.CallToolResult) -> str:
    from mcp import types

    texts = [block.text for block in result.content if isinstance(block, types.TextContent)]
    return "\n".join(texts).strip() or "the tool reported an error"


def tool_result(result: types.CallToolResult) -> Any:
    """A successful result as stored and shown to the model: the structured result when
    the tool gives one; else its text (a JSON object or array parsed), a single
    reference, or the list of blocks when they are mixed."""
    if result.structuredContent is not None:
        return result.structuredContent
    blocks = [_block(block) for block in result.content]
    if all(block["type"] == "text" for block in blocks):
        text = "\n".join(block["text"] for block in blocks)
        if len(blocks) == 1 and text.lstrip()[:1] in ("{", "["):
            try:
                return json.loads(text)
            except ValueError:
                pass
        return text
    return blocks[0] if len(blocks) == 1 else blocks
