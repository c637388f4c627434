"""A fake LLM provider speaking the real OpenAI Chat Completions and Anthropic
Messages wire formats, so the official SDKs (and the app under test) can be
pointed at it with `base_url` and run unmodified.

    with FakeLLM(api_key="sk-test") as fake:
        fake.script(Text(["Hel", "lo"]), ToolCalls([("call_1", "get_time", {})]))
        client = openai.AsyncOpenAI(base_url=fake.openai_base_url, api_key="sk-test")

The server runs Quart on Hypercorn in a background thread with its own event
loop, so it works from sync tests, async tests (any loop) and scripts alike.
Replies are consumed one per request, in order, shared by both protocols; with
an empty queue the fake echoes the last user message.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from quart import Quart, Response, request

from tests.fakes.threaded_server import ThreadedServer

__all__ = ["FakeLLM", "Text", "ToolCalls", "Error", "Hang", "Broken", "Cut", "Reply"]


# --------------------------------------------------------------------------- replies


def _as_list(chunks: list[str] | str) -> list[str]:
    return [chunks] if isinstance(chunks, str) else list(chunks)  # Text("hi") must not stream per character


@dataclass
class Text:
    """Plain assistant text, streamed as one delta per chunk."""

    chunks: list[str]
    input_tokens: int = 10
    output_tokens: int = 5
    delay: float = 0.0  # seconds slept between chunks (not before the first)

    def __post_init__(self) -> None:
        self.chunks = _as_list(self.chunks)


@dataclass
class ToolCalls:
    """Tool calls: (call_id, tool_name, arguments). A str argument is sent
    verbatim, so tests can feed malformed JSON to the code under test."""

    calls: list[tuple[str, str, dict | str]]
    text: str = ""  # streamed before the calls when non-empty
    input_tokens: int = 10
    output_tokens: int = 5


@dataclass
class Error:
    """An HTTP error with the provider's real error body. `sticky` errors are
    never consumed, so every request fails (e.g. to test exhausted retries)."""

    status: int
    message: str = "fake error"
    retry_after: float | None = None  # sent as `retry-after` (seconds)
    sticky: bool = False
    # Without `retry_after`, the fake asks for this short wait in `retry-after-ms` (as
    # OpenAI does), which the SDKs honour before their own 0.5-8 s backoff: tests of
    # retries take milliseconds. None sends no header (the SDK's backoff applies).
    retry_after_ms: float | None = 10.0


@dataclass
class Hang:
    """Send `first_chunks`, then stall for `seconds` (only this request's task
    sleeps; the server keeps answering others) and finish normally."""

    first_chunks: list[str] = field(default_factory=lambda: ["..."])
    seconds: float = 30.0

    def __post_init__(self) -> None:
        self.first_chunks = _as_list(self.first_chunks)


@dataclass
class Broken:
    """Send `first_chunks`, then an error event inside the stream (the HTTP status was
    already 200), as providers do when they fail mid-answer."""

    first_chunks: list[str] = field(default_factory=lambda: ["..."])
    message: str = "The server had an error while processing your request."

    def __post_init__(self) -> None:
        self.first_chunks = _as_list(self.first_chunks)


@dataclass
class Cut:
    """Send `first_chunks`, then fail as a broken network, proxy or server would, in a
    reply that began 200 and has no error event:
    - "end": the body ends cleanly, but without the stream's end ([DONE] after the
      finish reason; Anthropic's message_delta and message_stop);
    - "drop": the connection is dropped in the middle of the body;
    - "garbage": a `data:` line that is not JSON, then the rest of the stream;
    - "html": no stream at all: a web page with status 200 (`first_chunks` unused)."""

    how: str
    first_chunks: list[str] = field(default_factory=lambda: ["partial "])

    def __post_init__(self) -> None:
        self.first_chunks = _as_list(self.first_chunks)


Reply = Text | ToolCalls | Error | Hang | Broken | Cut

# Real error "type"s per status (OpenAI: type, code; Anthropic: error.type).
_OPENAI_ERRORS = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("invalid_request_error", "unsupported_country_region_territory"),
    404: ("invalid_request_error", "model_not_found"),
    429: ("requests", "rate_limit_exceeded"),
}
_ANTHROPIC_ERRORS = {
    400: "invalid_request_error", 401: "authentication_error", 403: "permission_error", 404: "not_found_error",
    413: "request_too_large", 429: "rate_limit_error", 529: "overloaded_error",
}

_ids = itertools.count(1)


def _split(s: str, parts: int = 3) -> list[str]:
    """Split into up to `parts` non-empty fragments, like a model emitting tokens."""
    if len(s) <= 1:
        return [s]
    size = max(1, -(-len(s) // parts))
    return [s[i : i + size] for i in range(0, len(s), size)]


def _sse(data: Any, event: str | None = None) -> bytes:
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {json.dumps(data)}\n\n".encode()


def _event(data: dict) -> bytes:
    """Anthropic SSE: the `event:` name always repeats the payload's "type"."""
    return _sse(data, data["type"])


def _steps(reply: Reply) -> list[tuple]:
    """Flatten a reply into protocol-neutral steps: ("text", s), ("sleep", secs),
    ("tool", id, name, args_json). Each protocol renders the same steps."""
    if isinstance(reply, Text):
        steps: list[tuple] = []
        for i, chunk in enumerate(reply.chunks):
            if i and reply.delay:
                steps.append(("sleep", reply.delay))
            steps.append(("text", chunk))
        return steps
    if isinstance(reply, Hang):
        return [("text", c) for c in reply.first_chunks] + [("sleep", reply.seconds)]
    if isinstance(reply, Broken):
        return [("text", c) for c in reply.first_chunks] + [("error", reply.message)]
    if isinstance(reply, Cut):
        return [("text", c) for c in reply.first_chunks] + [("cut", reply.how)]
    steps = [("text", reply.text)] if reply.text else []
    for call_id, name, args in reply.calls:
        steps.append(("tool", call_id, name, args if isinstance(args, str) else json.dumps(args)))
    return steps


def _usage(reply: Reply) -> tuple[int, int]:
    return getattr(reply, "input_tokens", 10), getattr(reply, "output_tokens", 5)


def _openai_usage(reply: Reply) -> dict:
    inp, out = _usage(reply)
    return {"prompt_tokens": inp, "completion_tokens": out, "total_tokens": inp + out}


def _content_text(content: Any) -> str:
    """Text of a message `content` (str, or a list of OpenAI parts / Anthropic blocks)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


def _last_user_text(body: dict) -> str:
    for msg in reversed(body.get("messages") or []):
        if isinstance(msg, dict) and msg.get("role") == "user":
            return _content_text(msg.get("content"))
    return ""


# --------------------------------------------------------------------------- server


class FakeLLM(ThreadedServer):
    def __init__(self, api_key: str | None = None) -> None:
        super().__init__()
        self.api_key = api_key  # None = accept any key
        self.requests: list[dict] = []
        self._queue: deque[Reply] = deque()
        self._lock = threading.Lock()  # queue/requests are touched from test and server threads
        self._app = self._make_app()

    # ---- public API

    @property
    def openai_base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def anthropic_base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"  # the SDK appends /v1/messages

    def script(self, *replies: Reply) -> FakeLLM:
        with self._lock:
            self._queue.extend(replies)
        return self

    def reset(self) -> None:
        with self._lock:
            self._queue.clear()
            self.requests.clear()


    # ---- request plumbing

    def _next_reply(self, body: dict) -> Reply:
        with self._lock:
            if not self._queue:
                return Text(["echo: ", _last_user_text(body)])
            head = self._queue[0]
            if not (isinstance(head, Error) and head.sticky):
                self._queue.popleft()
            return head

    async def _receive(self) -> dict:
        body = await request.get_json(force=True, silent=True)
        body = body if isinstance(body, dict) else {}
        headers = {k.lower(): v for k, v in request.headers.items()}
        with self._lock:
            self.requests.append({"path": request.path, "query": request.args.to_dict(), "headers": headers, "json": body})
        return body

    def _make_app(self) -> Quart:
        app = Quart("fake_llm")
        app.config["RESPONSE_TIMEOUT"] = None  # long Hang/delay streams must not be cut at 60s
        app.before_serving(self._ready.set)

        @app.post("/v1/chat/completions")
        @app.post("/openai/deployments/<deployment>/chat/completions")  # Azure OpenAI's path
        async def chat_completions(deployment: str | None = None) -> Response:
            body = await self._receive()
            key = request.headers.get("api-key") if deployment else _bearer_token()
            if self.api_key is not None and key != self.api_key:
                return _openai_error(Error(401, "Incorrect API key provided."))
            reply = self._next_reply(body)
            if isinstance(reply, Error):
                return _openai_error(reply)
            if isinstance(reply, Cut) and reply.how == "html":
                return _web_page()
            model = body.get("model", "gpt-fake")
            if body.get("stream"):
                usage = bool((body.get("stream_options") or {}).get("include_usage"))
                return _stream(_openai_stream(reply, model, usage))
            return await _openai_complete(reply, model)

        @app.post("/v1/messages")
        async def messages() -> Response:
            body = await self._receive()
            # Real API uses x-api-key, but anthropic SDK 2.x sends api_key as
            # `Authorization: Bearer`, so accept either.
            key = request.headers.get("x-api-key") or _bearer_token()
            if self.api_key is not None and key != self.api_key:
                return _anthropic_error(Error(401, "invalid x-api-key"))
            reply = self._next_reply(body)
            if isinstance(reply, Error):
                return _anthropic_error(reply)
            if isinstance(reply, Cut) and reply.how == "html":
                return _web_page()
            model = body.get("model", "claude-fake")
            if body.get("stream"):
                return _stream(_anthropic_stream(reply, model))
            return await _anthropic_complete(reply, model)

        return app


# --------------------------------------------------------------------------- responses


def _bearer_token() -> str | None:
    auth = request.headers.get("authorization", "")
    return auth[7:] if auth.startswith("Bearer ") else None


class DroppedConnection(Exception):
    """Raised inside a streamed body: Hypercorn then closes the connection without
    ending the chunked body, as a connection lost mid-answer looks to the client."""


def _cut(how: str, event: str | None = None) -> bytes | None:
    """A Cut's step: the bytes to send (garbage, as an `event` of that name), or None to
    end the body here (end)."""
    if how == "drop":
        raise DroppedConnection
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {{not json\n\n".encode() if how == "garbage" else None


def _web_page() -> Response:
    return Response("<html><body>Welcome to nginx!</body></html>", status=200, content_type="text/html")


def _stream(gen: AsyncIterator[bytes]) -> Response:
    resp = Response(gen, status=200, content_type="text/event-stream")
    resp.headers["cache-control"] = "no-cache"
    resp.timeout = None
    return resp


def _error_response(err: Error, body: dict) -> Response:
    resp = Response(json.dumps(body), status=err.status, content_type="application/json")
    if err.retry_after is not None:
        resp.headers["retry-after"] = f"{err.retry_after:g}"
    elif err.retry_after_ms is not None:
        resp.headers["retry-after-ms"] = f"{err.retry_after_ms:g}"
    return resp


def _openai_error(err: Error) -> Response:
    default = ("server_error" if err.status >= 500 else "invalid_request_error", None)
    etype, code = _OPENAI_ERRORS.get(err.status, default)
    return _error_response(err, {"error": {"message": err.message, "type": etype, "param": None, "code": code}})


def _anthropic_error(err: Error) -> Response:
    etype = _ANTHROPIC_ERRORS.get(err.status, "api_error" if err.status >= 500 else "invalid_request_error")
    error = {"type": etype, "message": err.message}
    return _error_response(err, {"type": "error", "error": error, "request_id": f"req_fake{next(_ids)}"})


async def _openai_stream(reply: Reply, model: str, include_usage: bool) -> AsyncIterator[bytes]:
    base = {"id": f"chatcmpl-fake{next(_ids)}", "object": "chat.completion.chunk", "created": int(time.time()),
            "model": model}
    first = True

    def chunk(delta: dict, finish: str | None = None) -> bytes:
        nonlocal first
        if first:  # the first delta carries the role, as OpenAI does
            delta, first = {"role": "assistant", **delta}, False
        obj = {**base, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}
        if include_usage:
            obj["usage"] = None  # OpenAI sends usage: null on every chunk but the last
        return _sse(obj)

    tool_index = 0
    for step in _steps(reply):
        if step[0] == "sleep":
            await asyncio.sleep(step[1])
        elif step[0] == "text":
            yield chunk({"content": step[1]})
        elif step[0] == "error":  # OpenAI ends a failed stream with a bare error object
            yield _sse({"error": {"message": step[1], "type": "server_error", "param": None, "code": None}})
            return
        elif step[0] == "cut":
            if (garbage := _cut(step[1])) is None:
                return
            yield garbage
        else:
            _, call_id, name, args = step
            # Header chunk (id/type/name, empty arguments), then bare argument fragments.
            fn = {"name": name, "arguments": ""}
            head = {"index": tool_index, "id": call_id, "type": "function", "function": fn}
            yield chunk({"content": None, "tool_calls": [head]} if first else {"tool_calls": [head]})
            for frag in _split(args):
                yield chunk({"tool_calls": [{"index": tool_index, "function": {"arguments": frag}}]})
            tool_index += 1
    yield chunk({}, "tool_calls" if tool_index else "stop")
    if include_usage:
        yield _sse({**base, "choices": [], "usage": _openai_usage(reply)})
    yield b"data: [DONE]\n\n"


async def _openai_complete(reply: Reply, model: str) -> Response:
    text, calls = "", []
    for step in _steps(reply):
        if step[0] == "sleep":
            await asyncio.sleep(step[1])
        elif step[0] == "error":  # unstreamed, a failure is a plain 500
            return _openai_error(Error(500, step[1]))
        elif step[0] == "text":
            text += step[1]
        else:
            calls.append({"id": step[1], "type": "function", "function": {"name": step[2], "arguments": step[3]}})
    message: dict = {"role": "assistant", "content": text or None, "refusal": None}
    if calls:
        message["tool_calls"] = calls
    choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": "tool_calls" if calls else "stop"}
    body = {"id": f"chatcmpl-fake{next(_ids)}", "object": "chat.completion", "created": int(time.time()),
            "model": model, "choices": [choice], "usage": _openai_usage(reply)}
    return Response(json.dumps(body), content_type="application/json")


def _anthropic_message(model: str, content: list, stop_reason: str | None, inp: int, out: int) -> dict:
    return {
        "id": f"msg_fake{next(_ids)}", "type": "message", "role": "assistant", "model": model, "content": content,
        "stop_reason": stop_reason, "stop_sequence": None, "usage": {"input_tokens": inp, "output_tokens": out},
    }


async def _anthropic_stream(reply: Reply, model: str) -> AsyncIterator[bytes]:
    inp, out = _usage(reply)
    yield _event({"type": "message_start", "message": _anthropic_message(model, [], None, inp, 1)})
    index, open_block, pinged, used_tool = -1, None, False, False

    def start_block(block: dict) -> list[bytes]:
        nonlocal index, open_block, pinged
        events = [_event({"type": "content_block_stop", "index": index})] if open_block else []
        index, open_block = index + 1, block["type"]
        events.append(_event({"type": "content_block_start", "index": index, "content_block": block}))
        if not pinged:  # the real API pings once, right after the first block starts
            events.append(_event({"type": "ping"}))
            pinged = True
        return events

    def delta(d: dict) -> bytes:
        return _event({"type": "content_block_delta", "index": index, "delta": d})

    for step in _steps(reply):
        if step[0] == "sleep":
            await asyncio.sleep(step[1])
        elif step[0] == "text":
            if open_block != "text":
                for ev in start_block({"type": "text", "text": ""}):
                    yield ev
            yield delta({"type": "text_delta", "text": step[1]})
        elif step[0] == "error":
            yield _event({"type": "error", "error": {"type": "overloaded_error", "message": step[1]}})
            return
        elif step[0] == "cut":
            if (garbage := _cut(step[1], "content_block_delta")) is None:
                return
            yield garbage
        else:
            _, call_id, name, args = step
            used_tool = True
            for ev in start_block({"type": "tool_use", "id": call_id, "name": name, "input": {}}):
                yield ev
            for frag in [""] + _split(args):  # the real API opens with an empty fragment
                yield delta({"type": "input_json_delta", "partial_json": frag})
    if open_block:
        yield _event({"type": "content_block_stop", "index": index})
    stop = {"stop_reason": "tool_use" if used_tool else "end_turn", "stop_sequence": None}
    yield _event({"type": "message_delta", "delta": stop, "usage": {"output_tokens": out}})
    yield _event({"type": "message_stop"})


async def _anthropic_complete(reply: Reply, model: str) -> Response:
    content: list[dict] = []
    for step in _steps(reply):
        if step[0] == "sleep":
            await asyncio.sleep(step[1])
        elif step[0] == "error":
            return _anthropic_error(Error(500, step[1]))
        elif step[0] == "text":
            if content and content[-1]["type"] == "text":
                content[-1]["text"] += step[1]
            else:
                content.append({"type": "text", "text": step[1]})
        else:
            try:
                tool_input = json.loads(step[3])
            except ValueError:
                tool_input = step[3]  # malformed: passed through verbatim (the SDK doesn't validate)
            content.append({"type": "tool_use", "id": step[1], "name": step[2], "input": tool_input})
    stop = "tool_use" if any(b["type"] == "tool_use" for b in content) else "end_turn"
    body = _anthropic_message(model, content, stop, *_usage(reply))
    return Response(json.dumps(body), content_type="application/json")
