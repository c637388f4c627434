"""Which model answers a session: session.model_id → agent.default_model_id →
the default model of the default provider.

Every turn needs the answer before it can call the provider, so it is cached: for a
few seconds at most, and forgotten at once when providers or models are written
through this server (`ModelResolver.forget`, called by the LLM routes). The time limit
bounds how long a change made by another process sharing the database goes unseen.
"""

from __future__ import annotations

import time
import uuid

from app.models import Agent, LlmModel, LlmProvider, Session
from app.models.enums import LlmStatus

CACHE_SECONDS = 5.0
MAX_CACHED = 1000


class NoModel(Exception):
    """Nothing is configured that could answer; the message says what to set."""


CacheKey = tuple[uuid.UUID | None, uuid.UUID | None, uuid.UUID | None]


class ModelResolver:
    def __init__(self, ttl: float = CACHE_SECONDS):
        self.ttl = ttl
        self._cache: dict[CacheKey, tuple[float, LlmModel]] = {}

    async def resolve(self, session: Session, agent: Agent | None) -> LlmModel:
        key = (session.model_id, agent.default_model_id if agent else None, session.owner_id)
        cached = self._cache.get(key)
        if cached is not None and cached[0] > time.monotonic():
            return _usable(cached[1])
        model = await _lookup(*key)
        if len(self._cache) >= MAX_CACHED:
            self._cache.clear()
        self._cache[key] = (time.monotonic() + self.ttl, model)
        return _usable(model)  # checked on every use: a disabled model is cached, not usable

    def forget(self) -> None:
        self._cache.clear()


async def _lookup(session_model_id: uuid.UUID | None, agent_model_id: uuid.UUID | None,
                  owner_id: uuid.UUID | None) -> LlmModel:
    for model_id in (session_model_id, agent_model_id):
        if model_id is not None:
            model = await LlmModel.get_or_none(id=model_id).select_related("provider")
            if model is not None:
                return model
    # The owner's own default provider first, then the server-wide one (no owner).
    provider = (await LlmProvider.get_or_none(is_default=True, owner_id=owner_id) if owner_id else None) \
        or await LlmProvider.get_or_none(is_default=True, owner_id=None)
    if provider is None:
        raise NoModel(
            "No LLM model configured for this session. Set the session's model_id or the agent's "
            "default_model_id, or create a provider with \"is_default\": true (POST /v1/llm-providers) "
            "and a model under it with \"is_default\": true (POST /v1/llm-providers/{id}/models)."
        )
    model = (await LlmModel.filter(provider_id=provider.id, is_default=True).select_related("provider").first()
             or await LlmModel.filter(provider_id=provider.id, status=LlmStatus.ACTIVE).order_by("created_at").select_related("provider").first())
    if model is None:
        raise NoModel(
            f"The default LLM provider '{provider.name}' has no models. Add one with "
            f"POST /v1/llm-providers/{provider.id}/models (e.g. {{\"model_id\": \"gpt-4o-mini\", \"is_default\": true}})."
        )
    return model


def _usable(model: LlmModel) -> LlmModel:
    provider = model.provider
    if provider.status != LlmStatus.ACTIVE:
        raise NoModel(
            f"LLM provider '{provider.name}' is disabled. Enable it with PATCH /v1/llm-providers/{provider.id} "
            "{\"status\": \"active\"} or choose a model of another provider."
        )
    if model.status != LlmStatus.ACTIVE:
        raise NoModel(f"LLM model '{model.model_id}' is disabled. Enable it with PATCH /v1/llm-models/{model.id}.")
    return model
