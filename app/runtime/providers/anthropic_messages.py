"""Anthropic Messages streaming with tool use, on the official `anthropic` SDK."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

import anthropic

from app.runtime.providers.base import (
    ChatMessage,
    Finished,
    SdkAdapter,
    TextDelta,
    ToolCall,
    ToolSpec,
    incomplete,
    malformed,
    provider_errors,
    streamed_texts,
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
    blocks: list[dict[str, Any]]
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
        reply = _Reply()
        with provider_errors(self.label, anthropic, self.provider_id, self.client.api_key) as progress:
            # The SDK's generic request method, as messages.create(stream=True) calls it, with
            # events decoded to plain dicts instead of model objects (as the OpenAI adapter).
            stream = await self.client.post("/v1/messages", body={**kwargs, "stream": True}, cast_to=object,
                                            stream=True, stream_cls=anthropic.AsyncStream[dict[str, Any]])
            async with aclosing(streamed_texts(stream, reply.take, progress, self.label)) as texts:
                async for text in texts:  # aclosing: the HTTP stream closes at once when this one is closed
                    yield TextDelta(text)
            if reply.stop_reason is None:
                raise incomplete(self.label)
        calls = [ToolCall(use["id"], use["name"], self._tool_arguments(use["input"]))
                 for _, use in sorted(reply.tool_uses.items())]
        yield Finished(calls, reply.input_tokens, reply.output_tokens, reply.stop_reason)

    def _tool_arguments(self, streamed: str) -> str:
        """Tool input arrives as JSON fragments; the whole must be a JSON object."""
        try:
            value = json.loads(streamed) if streamed else {}
        except json.JSONDecodeError as exc:
            raise malformed(self.label, exc) from None
        return json.dumps(value)


class _Reply:
    """What the events of one streamed answer add up to."""

    def __init__(self) -> None:
        self.tool_uses: dict[int, dict[str, str]] = {}  # content block index -> id, name, input JSON so far
        self.input_tokens = self.output_tokens = 0
        self.stop_reason: str | None = None

    def take(self, event: dict[str, Any]) -> str:
        """Add an event; its text."""
        kind = event.get("type")
        if kind == "content_block_delta":
            delta = event.get("delta") or {}
            if delta.get("type") == "text_delta":
                return delta.get("text") or ""
            if delta.get("type") == "input_json_delta" and event.get("index") in self.tool_uses:
                self.tool_uses[event["index"]]["input"] += delta.get("partial_json") or ""
        elif kind == "content_block_start" and (event.get("content_block") or {}).get("type") == "tool_use":
            block = event["content_block"]
            self.tool_uses[event.get("index", len(self.tool_uses))] = {"id": block["id"], "name": block["name"],
                                                                      "input": ""}
        elif kind == "message_start":
            usage = (event.get("message") or {}).get("usage") or {}
            self.input_tokens, self.output_tokens = usage.get("input_tokens") or 0, usage.get("output_tokens") or 0
        elif kind == "message_delta":
            self.stop_reason = (event.get("delta") or {}).get("stop_reason") or self.stop_reason
            self.output_tokens = (event.get("usage") or {}).get("output_tokens") or self.output_tokens
        return ""
