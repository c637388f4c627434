"""Anthropic Messages streaming with tool use, on the official `anthropic` SDK."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import anthropic

from app.runtime.providers.base import (
    ChatMessage, Finished, ProviderError, SdkAdapter, TextDelta, ToolCall, ToolSpec, provider_errors,
)

# Anthropic requires max_tokens on every call; this is a ceiling, not a target.
MAX_TOKENS = 4096


def _tool_input(arguments: str) -> Any:
    try:
        value = json.loads(arguments) if arguments else {}
    except json.JSONDecodeError:
        return {"_raw": arguments}
    return value if isinstance(value, dict) else {"value": value}


def to_anthropic_messages(messages: list[ChatMessage]) -> list[dict[str, Any]]:
    """Anthropic wants alternating roles and tool results as user content blocks."""
    out: list[dict[str, Any]] = []
    for m in messages:
        if m.role == "user":
            role, blocks = "user", [{"type": "text", "text": m.text}]
        elif m.role == "assistant":
            role = "assistant"
            blocks = [{"type": "text", "text": m.text}] if m.text else []
            blocks += [{"type": "tool_use", "id": c.id, "name": c.name, "input": _tool_input(c.arguments)}
                       for c in m.tool_calls]
            if not blocks:
                continue
        else:
            role, blocks = "user", [{"type": "tool_result", "tool_use_id": m.tool_call_id,
                                     "content": m.text, "is_error": m.is_error}]
        if out and out[-1]["role"] == role:
            out[-1]["content"].extend(blocks)
        else:
            out.append({"role": role, "content": blocks})
    return out


class AnthropicMessagesAdapter(SdkAdapter):
    async def stream(self, model: str, system: str, messages: list[ChatMessage],
                     tools: list[ToolSpec]) -> AsyncIterator[TextDelta | Finished]:
        kwargs: dict[str, Any] = {"model": model, "max_tokens": MAX_TOKENS, "messages": to_anthropic_messages(messages)}
        if system:
            kwargs["system"] = system
        if tools:
            kwargs["tools"] = [{"name": t.name, "description": t.description, "input_schema": t.parameters} for t in tools]
        try:
            with provider_errors(self.label, anthropic):
                async with self.client.messages.stream(**kwargs) as stream:
                    async for event in stream:
                        if event.type == "text" and event.text:
                            yield TextDelta(event.text)
                    final = await stream.get_final_message()
        except ValueError as exc:  # the SDK parses tool input JSON as it streams
            raise ProviderError(f"{self.label} sent a malformed reply: {exc}", code="provider_bad_response") from None
        calls = [ToolCall(b.id, b.name, json.dumps(b.input)) for b in final.content if b.type == "tool_use"]
        yield Finished(calls, final.usage.input_tokens, final.usage.output_tokens, final.stop_reason)
