"""What the agent loop knows about a model provider: a neutral chat history in, a stream
of text deltas and one final summary (tool calls, usage) out, and one error type."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Literal, Protocol

from app.errors import ProviderError  # the one error type (also the OAuth providers')
from app.text import storable_text


def storable(value: Any) -> Any:
    """storable_text on every string of a parsed JSON value (tool arguments)."""
    if isinstance(value, str):
        return storable_text(value)
    if isinstance(value, dict):
        return {storable_text(k): storable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [storable(v) for v in value]
    return value


@dataclass(frozen=True)
class ToolSpec:
    name: str
    description: str
    parameters: dict


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # raw JSON text as the model produced it (may be malformed)

    def __post_init__(self) -> None:
        for name in ("id", "name", "arguments"):
            object.__setattr__(self, name, storable_text(getattr(self, name)))


@dataclass
class ChatMessage:
    role: Literal["user", "assistant", "tool"]
    text: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)  # assistant only
    tool_call_id: str | None = None  # tool only
    is_error: bool = False  # tool only


@dataclass(frozen=True)
class TextDelta:
    text: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "text", storable_text(self.text))


@dataclass(frozen=True)
class Finished:
    tool_calls: list[ToolCall]
    input_tokens: int
    output_tokens: int
    finish_reason: str | None


def error_from_status(provider: str, status: int, detail: str, provider_id: str) -> ProviderError:
    """Turn an HTTP status from a provider into an error whose message says what to do."""
    if status in (401, 403):
        return ProviderError(
            f"{provider} rejected the API key ({status}): {detail.rstrip('.')}. "
            f"Update it with PATCH /v1/llm-providers/{provider_id}",
            code="provider_auth_failed")
    if status == 404:
        return ProviderError(f"{provider} does not know this model or endpoint (404): {detail}",
                             code="provider_model_not_found")
    if status == 429:
        return ProviderError(f"{provider} rate limit (429): {detail}", code="provider_rate_limited")
    if status >= 500:
        return ProviderError(f"{provider} server error ({status}): {detail}", code="provider_unavailable")
    return ProviderError(f"{provider} refused the request ({status}): {detail}")


def _sdk_error_detail(exc) -> str:
    """The provider's own message: OpenAI's body is the inner error, Anthropic's the whole."""
    body = exc.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])
    return exc.message


def _attempts(exc) -> str:
    """' (after N attempts)' when the SDK retried the request before it gave up. The SDKs
    retry by themselves (429, 408, 409, 5xx, timeouts, connection errors; only until the
    response begins, so never after output) and number each try in a request header."""
    try:
        retries = int(exc.request.headers.get("x-stainless-retry-count", 0))
    except (AttributeError, TypeError, ValueError):
        return ""
    return f" (after {retries + 1} attempts)" if retries else ""


@dataclass
class ReplyProgress:
    """Set by an adapter once the provider's answer has begun to arrive (its first chunk)."""

    began: bool = False


def malformed(label: str, what: Any) -> ProviderError:
    return ProviderError(f"{label} sent a malformed reply: {what}", code="provider_bad_response")


def incomplete(label: str) -> ProviderError:
    """A stream that ended without its finish reason: a connection or proxy cut it, or
    base_url answered with something that is not a stream (a web page). Not a success
    with a cut answer."""
    return ProviderError(f"{label} ended its answer before the end (no finish reason): the connection "
                         "may have been cut, or base_url does not point at the provider's API",
                         code="provider_bad_response")


async def streamed_texts(stream: Any, take: Callable[[dict[str, Any]], str], progress: ReplyProgress,
                         label: str) -> AsyncGenerator[str, None]:
    """The text of each event of an SDK stream, as `take` (which also keeps the rest of
    the event: tool calls, usage, the finish reason) finds it; the stream closed after."""
    try:
        async for event in stream:
            progress.began = True
            try:
                text = take(event)
            except (AttributeError, TypeError, KeyError) as exc:  # not the shape the API documents
                raise malformed(label, f"{type(exc).__name__}: {exc}") from None
            if text:
                yield text
    finally:
        await stream.close()


@contextmanager
def provider_errors(label: str, sdk: ModuleType, provider_id: str, api_key: str | None = None) -> Iterator[ReplyProgress]:
    """Translate an SDK's exceptions (openai and anthropic name them alike), and what its
    transport (httpx2) raises while a streamed answer is read, which the SDKs do not
    always wrap, to ProviderError. The provider's API key is taken out of the message:
    some providers quote the key they refused, and the message goes to the session's
    `last_error`, its events and the log."""
    import httpx2  # the SDKs' transport: imported by them already (not at start-up, see import_sdks)

    progress = ReplyProgress()
    try:
        yield progress
    except Exception as exc:
        error = _translated(exc, label, sdk, httpx2, provider_id, progress.began)
        if error is None:
            raise
        if api_key and (message := without_key(error.message, api_key)) != error.message:
            error = ProviderError(message, code=error.code)
        raise error from None


LONG_KEY = 8


def without_key(message: str, api_key: str) -> str:
    """The message with the API key replaced by `[API key]`. A key of LONG_KEY characters
    or more is replaced wherever it appears. A shorter one (a local or test key such as
    `sk-test`) only where it stands alone, with no letter or digit touching it: replaced
    everywhere, a key like `test` or `401` would also cut into the words and numbers of
    the message (docs/decisions.md 169)."""
    if len(api_key) >= LONG_KEY:
        return message.replace(api_key, "[API key]")
    return re.sub(rf"(?<![A-Za-z0-9]){re.escape(api_key)}(?![A-Za-z0-9])", "[API key]", message)


def _translated(exc: Exception, label: str, sdk: ModuleType, httpx2: ModuleType, provider_id: str,
                began: bool) -> ProviderError | None:
    if isinstance(exc, sdk.APIStatusError):
        if exc.status_code < 400:  # anthropic: an error event inside a stream that began 200
            return ProviderError(f"{label} failed while answering: {_sdk_error_detail(exc)}{_attempts(exc)}")
        error = error_from_status(label, exc.status_code, _sdk_error_detail(exc), provider_id)
        return ProviderError(error.message + _attempts(exc), code=error.code)
    if isinstance(exc, (sdk.APITimeoutError, httpx2.TimeoutException)):
        what = "stopped sending its answer for longer than the timeout" if began else "did not answer in time"
        return ProviderError(f"{label} {what}{_attempts(exc)}", code="provider_timeout")
    if isinstance(exc, (sdk.APIConnectionError, httpx2.TransportError)):
        if began:
            return ProviderError(f"{label} lost the connection while answering: {exc}", code="provider_unreachable")
        return ProviderError(f"cannot reach {label}: {exc}{_attempts(exc)}", code="provider_unreachable")
    if isinstance(exc, sdk.APIError):  # openai: the base class, so last; an error event in a 200 stream
        return ProviderError(f"{label} failed while answering: {exc.message}{_attempts(exc)}", code="provider_error")
    if isinstance(exc, json.JSONDecodeError):  # a streamed event that is not JSON
        return malformed(label, exc)
    return None


class SdkAdapter:
    """What both adapters share: the SDK client they keep, and a label and the provider's
    id for messages."""

    def __init__(self, client: Any, label: str, provider_id: str):
        self.client = client
        self.label = label
        self.provider_id = provider_id

    async def close(self) -> None:
        await self.client.close()


class ChatAdapter(Protocol):
    def stream(self, model: str, system: str, messages: list[ChatMessage],
               tools: list[ToolSpec]) -> AsyncIterator[TextDelta | Finished]: ...

    async def close(self) -> None: ...
