"""Provider adapters, one SDK client per provider, kept and reused across turns.

A client is rebuilt only when its provider row changed (its `updated_at` moved), e.g.
after a new API key or base_url was saved.
"""

from __future__ import annotations

import asyncio
import email.utils
import importlib
import logging
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from app.config import Settings
from app.models import LlmProvider
from app.runtime.providers.base import ChatAdapter, ProviderError
from app.secrets import SecretBox
from app.tasks import BackgroundTasks

log = logging.getLogger("app.runtime.providers")

AZURE_DEFAULT_API_VERSION = "2024-10-21"
KEYLESS_TYPES = ("ollama", "custom")  # local OpenAI-compatible servers often need no key


ADAPTER_MODULES = ("app.runtime.providers.openai_chat", "app.runtime.providers.anthropic_messages")


def import_sdks(*, log_failure: bool = False) -> None:
    """Import both SDKs (with their adapters). Together they take about 3 s on a small
    machine: most of `import app.main`'s time when they were imported with it."""
    started = time.monotonic()
    try:
        for name in ADAPTER_MODULES:
            importlib.import_module(name)
    except Exception:
        if not log_failure:
            raise
        log.exception("importing the provider SDKs failed; turns will fail until this is fixed")
        return
    log.info("provider SDKs imported in %.1f s", time.monotonic() - started)


def import_sdks_in_background() -> threading.Thread:
    """The server answers as soon as it has started while the SDKs load on a thread; a
    turn that needs one before it is loaded waits for that import (Python's import lock),
    never imports it again. A thread, not a task of BackgroundTasks: an import cannot be
    cancelled, and a daemon thread never holds up the process's exit; a failure is logged."""
    thread = threading.Thread(target=import_sdks, kwargs={"log_failure": True}, name="import-provider-sdks",
                              daemon=True)
    thread.start()
    return thread


def build_adapter(provider: LlmProvider, api_key: str | None, settings: Settings) -> ChatAdapter:
    if not api_key and provider.provider_type not in KEYLESS_TYPES:
        raise ProviderError(
            f"LLM provider '{provider.name}' has no API key; set one with PATCH /v1/llm-providers/{provider.id}",
            code="provider_not_configured")
    # The SDKs retry 429, 408, 409, 5xx, timeouts and connection errors, only before the
    # response begins, with jitter, `retry-after-ms`, `Retry-After` and `x-should-retry`.
    common: dict[str, Any] = {"timeout": settings.llm_timeout_seconds, "max_retries": settings.llm_max_retries}
    kind = provider.provider_type
    # Imported here, not with this module: see import_sdks.
    if kind == "anthropic":
        import anthropic

        from app.runtime.providers.anthropic_messages import AnthropicMessagesAdapter

        # Its SDK waits as long as any Retry-After says (hours, even); OpenAI's gives up
        # past 2 minutes, which is what the docs promise for both (§5.4).
        http_client = anthropic.DefaultAsyncHttpxClient(event_hooks={"response": [end_retries_after_long_waits]})
        anthropic_client = anthropic.AsyncAnthropic(api_key=api_key, base_url=provider.base_url or None,
                                                    http_client=http_client, **common)
        return AnthropicMessagesAdapter(anthropic_client, label=f"Anthropic provider '{provider.name}'",
                                        provider_id=str(provider.id))
    import openai

    from app.runtime.providers.openai_chat import OpenAIChatAdapter

    client: openai.AsyncOpenAI
    if kind == "azure_openai":
        # The SDK takes None (then reads AZURE_OPENAI_ENDPOINT), though its overloads say str.
        client = openai.AsyncAzureOpenAI(api_key=api_key, azure_endpoint=provider.base_url,  # type: ignore[arg-type]
                                         api_version=provider.api_version or AZURE_DEFAULT_API_VERSION, **common)
    else:
        client = openai.AsyncOpenAI(api_key=api_key or "not-needed", base_url=provider.base_url or None, **common)
    return OpenAIChatAdapter(client, label=f"{kind} provider '{provider.name}'", provider_id=str(provider.id))


MAX_RETRY_AFTER_S = 120.0  # as the openai SDK's MAX_RETRY_AFTER_DELAY


def retry_after_seconds(headers: Any) -> float | None:
    """The wait a response asks for: `retry-after-ms`, or `Retry-After` in seconds or as
    an HTTP date."""
    try:
        if (ms := headers.get("retry-after-ms")) is not None:
            return float(ms) / 1000
        value = headers.get("retry-after")
        if value is None:
            return None
        try:
            return float(value)
        except ValueError:
            return (email.utils.parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds()
    except (TypeError, ValueError, OverflowError):
        return None


async def end_retries_after_long_waits(response: Any) -> None:
    """An httpx response hook: a response asking for a wait over MAX_RETRY_AFTER_S gets
    `x-should-retry: false`, which the SDK obeys: the call fails at once (429 ->
    provider_rate_limited) instead of holding the turn `running` for that long."""
    wait = retry_after_seconds(response.headers)
    if wait is not None and wait > MAX_RETRY_AFTER_S:
        response.headers["x-should-retry"] = "false"


class ProviderClients:
    def __init__(self, settings: Settings, box: SecretBox, tasks: BackgroundTasks):
        self.settings = settings
        self.box = box
        self.tasks = tasks
        self._cache: dict[uuid.UUID, tuple[datetime, ChatAdapter]] = {}
        self._retired: set[ChatAdapter] = set()  # replaced, closed a while later (or by close())

    def adapter_for(self, provider: LlmProvider) -> ChatAdapter:
        cached = self._cache.get(provider.id)
        if cached is not None and cached[0] == provider.updated_at:
            return cached[1]
        try:
            api_key = self.box.decrypt(provider.api_key_encrypted) if provider.api_key_encrypted else None
        except ValueError as exc:
            raise ProviderError(f"LLM provider '{provider.name}': {exc}; set the key again", code="provider_not_configured") from None
        adapter = build_adapter(provider, api_key, self.settings)
        self._cache[provider.id] = (provider.updated_at, adapter)
        if cached is not None:  # let turns still using the old client finish, then close it
            self._retired.add(cached[1])
            self.tasks.start(self._close_later(cached[1]), name=f"close-provider-client:{provider.id}")
        return adapter

    async def _close_later(self, adapter: ChatAdapter) -> None:
        await asyncio.sleep(self.settings.llm_timeout_seconds)
        self._retired.discard(adapter)
        await adapter.close()

    async def close(self) -> None:
        for adapter in [*(adapter for _, adapter in self._cache.values()), *self._retired]:
            try:
                await adapter.close()
            except Exception:  # closing is best effort at shutdown
                log.debug("closing provider client failed", exc_info=True)
        self._cache.clear()
        self._retired.clear()
