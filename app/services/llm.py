"""LLM providers and their models.

API keys are write-only: encrypted on the way in, never decrypted for a response
(only the runtime decrypts, to call the provider). At most one provider, and one model
per provider, is the default; setting a new default clears the old one in the same
transaction.
"""

from __future__ import annotations

from typing import Any

from tortoise.transactions import in_transaction

from app.auth.principal import new_owner, visible
from app.errors import InvalidRequest, NotFound
from app.models import LlmModel, LlmProvider
from app.secrets import SecretBox, mask_secret
from app.services.common import paginate, parse_uuid

NEEDS_BASE_URL = ("ollama", "custom", "azure_openai")


def _apply_api_key(provider: LlmProvider, api_key: str | None, box: SecretBox) -> None:
    if api_key:
        provider.api_key_encrypted = box.encrypt(api_key)
        provider.api_key_hint = mask_secret(api_key)
    else:  # explicit null or "" clears the key
        provider.api_key_encrypted = None
        provider.api_key_hint = None


def _check_base_url(provider: LlmProvider) -> None:
    if provider.provider_type in NEEDS_BASE_URL and not provider.base_url:
        raise InvalidRequest(f"base_url: required for provider_type '{provider.provider_type}'")


async def create_provider(fields: dict[str, Any], box: SecretBox) -> LlmProvider:
    api_key = fields.pop("api_key", None)
    provider = LlmProvider(**fields, owner_id=new_owner())
    _check_base_url(provider)
    _apply_api_key(provider, api_key, box)
    async with in_transaction():
        if provider.is_default:  # one default per owner (the server-wide one has no owner)
            await LlmProvider.filter(is_default=True, owner_id=provider.owner_id).update(is_default=False)
        await provider.save()
    return provider


async def list_providers(offset: int, limit: int) -> tuple[list[LlmProvider], int]:
    return await paginate(visible(LlmProvider.all()).order_by("created_at", "id"), offset, limit)


async def get_provider(provider_id: str) -> LlmProvider:
    provider = await visible(LlmProvider.filter(id=parse_uuid(provider_id, "LLM provider"))).first()
    if provider is None:
        raise NotFound(f"LLM provider '{provider_id}' not found")
    return provider


async def update_provider(provider_id: str, changes: dict[str, Any], box: SecretBox) -> LlmProvider:
    provider = await get_provider(provider_id)
    if "api_key" in changes:
        _apply_api_key(provider, changes.pop("api_key"), box)
    provider.update_from_dict(changes)
    _check_base_url(provider)
    async with in_transaction():
        if changes.get("is_default"):
            await LlmProvider.filter(is_default=True, owner_id=provider.owner_id).exclude(id=provider.id).update(is_default=False)
        await provider.save()
    return provider


async def delete_provider(provider_id: str) -> None:
    """Deletes the provider and its models; agents and sessions using them fall back."""
    provider = await get_provider(provider_id)
    await provider.delete()


async def create_model(provider_id: str, fields: dict[str, Any]) -> LlmModel:
    provider = await get_provider(provider_id)
    async with in_transaction():
        if fields.get("is_default"):
            await LlmModel.filter(provider_id=provider.id, is_default=True).update(is_default=False)
        model = await LlmModel.create(provider=provider, owner_id=new_owner(), **fields)
    return model


async def list_models(provider_id: str | None, offset: int, limit: int) -> tuple[list[LlmModel], int]:
    query = visible(LlmModel.all()).select_related("provider").order_by("created_at", "id")
    if provider_id is not None:
        provider = await get_provider(provider_id)
        query = query.filter(provider_id=provider.id)
    return await paginate(query, offset, limit)


async def get_model(model_id: str) -> LlmModel:
    model = await visible(LlmModel.filter(id=parse_uuid(model_id, "LLM model"))).select_related("provider").first()
    if model is None:
        raise NotFound(f"LLM model '{model_id}' not found")
    return model


async def update_model(model_id: str, changes: dict[str, Any]) -> LlmModel:
    model = await get_model(model_id)
    model.update_from_dict(changes)
    async with in_transaction():
        if changes.get("is_default"):
            await LlmModel.filter(provider_id=model.provider_id, is_default=True).exclude(id=model.id).update(is_default=False)
        await model.save()
    return model


async def check_model_exists(model_id: object, field: str) -> None:
    """For references from agents and sessions: an unknown model is a 400 naming the field."""
    if model_id is not None and not await visible(LlmModel.filter(id=model_id)).exists():
        raise InvalidRequest(f"{field}: no LLM model with id '{model_id}'; see GET /v1/llm-models")


async def delete_model(model_id: str) -> None:
    model = await get_model(model_id)
    await model.delete()
