"""Running one tool call. Every failure becomes an error string the model can read."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from pydantic import ValidationError

from app.errors import describe_validation_error
from app.runtime.capabilities import Tool, ToolError
from app.runtime.providers.base import ToolCall, storable, storable_text

log = logging.getLogger("app.runtime.tools")


def parse_arguments(call: ToolCall) -> tuple[Any, str | None]:
    try:
        # storable: a \u0000 escape in the JSON text would put NUL into the tool's input.
        return (storable(json.loads(call.arguments)) if call.arguments.strip() else {}), None
    except json.JSONDecodeError as exc:
        return call.arguments, f"arguments are not valid JSON ({exc.msg}); send a JSON object"


async def execute_tool(tools: dict[str, Tool], call: ToolCall, timeout: float) -> tuple[Any, str | None]:
    """Returns (result, None) on success or (None, error message)."""
    tool = tools.get(call.name)
    if tool is None:
        available = ", ".join(sorted(tools)) or "none"
        return None, f"unknown tool '{call.name}'; available tools: {available}"
    arguments, error = parse_arguments(call)
    if error:
        return None, error
    if tool.invoke is None:
        return None, f"tool '{call.name}' is run by the client, not the server"
    try:
        return storable(await asyncio.wait_for(tool.invoke(arguments), timeout)), None
    except ValidationError as exc:
        return None, f"invalid arguments: {describe_validation_error(exc)}"
    except ToolError as exc:
        return None, storable_text(str(exc))
    except TimeoutError:
        return None, f"tool '{call.name}' timed out after {timeout:g} s"
    except Exception as exc:  # a tool bug must not crash the turn
        log.exception("tool %s failed", call.name)
        return None, f"tool '{call.name}' failed: {type(exc).__name__}"
