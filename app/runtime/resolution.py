"""Which model answers a session: session.model_id → agent.default_model_id →
the default model of the default provider."""

from __future__ import annotations

from app.models import LlmModel, LlmProvider, Session


class NoModel(Exception):
    """Nothing is configured that could answer; the message says what to set."""


async def resolve_model(session: Session) -> LlmModel:
    agent = session.agent
    for model_id in (session.model_id, agent.default_model_id if agent else None):
        if model_id is not None:
            model = await LlmModel.get_or_none(id=model_id).select_related("provider")
            if model is not None:
                return _usable(model)
    # The owner's own default provider first, then the server-wide one (no owner).
    provider = (await LlmProvider.get_or_none(is_default=True, owner_id=session.owner_id) if session.owner_id else None) \
        or await LlmProvider.get_or_none(is_default=True, owner_id=None)
    if provider is None:
        raise NoModel(
            "No LLM model configured for this session. Set the session's model_id or the agent's "
            "default_model_id, or create a provider with \"is_default\": true (POST /v1/llm-providers) "
            "and a model under it with \"is_default\": true (POST /v1/llm-providers/{id}/models)."
        )
    model = (await LlmModel.filter(provider_id=provider.id, is_default=True).select_related("provider").first()
             or await LlmModel.filter(provider_id=provider.id, status="active").order_by("created_at").select_related("provider").first())
    if model is None:
        raise NoModel(
            f"The default LLM provider '{provider.name}' has no models. Add one with "
            f"POST /v1/llm-providers/{provider.id}/models (e.g. {{\"model_id\": \"gpt-4o-mini\", \"is_default\": true}})."
        )
    return _usable(model)


def _usable(model: LlmModel) -> LlmModel:
    provider = model.provider
    if provider.status != "active":
        raise NoModel(
            f"LLM provider '{provider.name}' is disabled. Enable it with PATCH /v1/llm-providers/{provider.id} "
            "{\"status\": \"active\"} or choose a model of another provider."
        )
    if model.status != "active":
        raise NoModel(f"LLM model '{model.model_id}' is disabled. Enable it with PATCH /v1/llm-models/{model.id}.")
    return model
