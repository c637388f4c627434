"""OpenAI Chat Completions streaming with tools (also Azure OpenAI, Ollama and any
OpenAI-compatible server through base_url), on the official `openai` SDK."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

import openai

from app.runtime.providers.base import (
    ChatMessage,
    Finished,
    SdkAdapter,
    TextDelta,
    ToolCall,
    ToolSpec,
    incomplete,
    provider_errors,
    streamed_texts,
)


def to_openai_messages(system: str, messages: list[ChatMessage]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [{"role": "system", "content": system}] if system else []
    for m in messages:
        if m.role == "user":
            out.append({"role": "user", "content": m.text})
        elif m.role == "assistant":
            item: dict[str, Any] = {"role": "assistant", "content": m.text or None}
            if m.tool_calls:
                item["tool_calls"] = [
                    {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                    for c in m.tool_calls
                ]
            out.append(item)
        else:
            out.append({"role": "tool", "tool_call_id": m.tool_call_id, "content": m.text})
    return out


class OpenAIChatAdapter(SdkAdapter):
    async def stream(self, model: str, system: str, messages: list[ChatMessage],
                     tools: list[ToolSpec]) -> AsyncIterator[TextDelta | Finished]:
        body: dict[str, Any] = {
            "model": model,
            "messages": to_openai_messages(system, messages),
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if tools:
            body["tools"] = [
                {"type": "function", "function": {"name": t.name, "description": t.description, "parameters": t.parameters}}
                for t in tools
            ]
        reply = _Reply()
        with provider_errors(self.label, openai, self.provider_id, self.client.api_key) as progress:
            # The SDK's generic request method, as chat.completions.create would call it,
            # but with chunks decoded to plain dicts: create() runs a typed transform over
            # the request (~0.2 ms per message) and builds a model object per chunk, which
            # together cost about a third of the SDK's time per call. Auth, retries
            # settings, Azure routing, SSE decoding and errors stay the SDK's.
            stream = await self.client.post("/chat/completions", body=body, cast_to=object, stream=True,
                                            stream_cls=openai.AsyncStream[dict])
            async with aclosing(streamed_texts(stream, reply.take, progress, self.label)) as texts:
                async for text in texts:  # aclosing: the HTTP stream closes at once when this one is closed
                    yield TextDelta(text)
            if reply.finish_reason is None:
                raise incomplete(self.label)
        tool_calls = [ToolCall(c["id"], c["name"], c["arguments"]) for _, c in sorted(reply.calls.items())]
        yield Finished(tool_calls, reply.usage[0], reply.usage[1], reply.finish_reason)


class _Reply:
    """What the chunks of one streamed answer add up to."""

    def __init__(self) -> None:
        self.calls: dict[int, dict[str, str]] = {}
        self.usage = (0, 0)
        self.finish_reason: str | None = None

    def take(self, chunk: dict[str, Any]) -> str:
        """Add a chunk; its text."""
        text = ""
        if chunk.get("usage"):
            self.usage = (chunk["usage"].get("prompt_tokens") or 0, chunk["usage"].get("completion_tokens") or 0)
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta") or {}
            text += delta.get("content") or ""
            for part in delta.get("tool_calls") or ():
                # Tool calls arrive in fragments keyed by index: id and name first, then
                # the JSON arguments a few characters at a time.
                entry = self.calls.setdefault(part.get("index", 0), {"id": "", "name": "", "arguments": ""})
                entry["id"] = part.get("id") or entry["id"]
                function = part.get("function") or {}
                entry["name"] += function.get("name") or ""
                entry["arguments"] += function.get("arguments") or ""
            self.finish_reason = choice.get("finish_reason") or self.finish_reason
        return text
