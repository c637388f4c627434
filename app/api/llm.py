"""/v1/llm-providers and /v1/llm-models. Provider API keys are write-only."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import AfterValidator, BaseModel, Field, HttpUrl, StrictBool, StrictInt, StringConstraints
from quart import Blueprint, request
from quart_schema import tag, validate_querystring, validate_request, validate_response

from app.api.common import INT32_MAX, Name, Page, PageQuery, PatchBody, RequestBody, page_of
from app.api.openapi import no_content
from app.config import API_KEY_RULE, bad_api_key
from app.services import llm as service
from app.wiring import current_runtime

bp = Blueprint("llm", __name__)


@bp.after_request
async def _forget_resolved_models(response):
    """Turns cache which model answers them; any change here must be seen by the next one."""
    if request.method not in ("GET", "HEAD", "OPTIONS"):
        current_runtime().models_changed()
    return response

ProviderType = Literal["openai", "anthropic", "azure_openai", "ollama", "custom"]
Status = Literal["active", "disabled"]


def _box():
    return current_runtime().box


def _key_text(value: str) -> str:
    """Whitespace around a key (a line break pasted with it) is dropped (StringConstraints);
    inside it, only what an HTTP header can carry (app/config.py bad_api_key)."""
    if bad_api_key(value):
        raise ValueError(API_KEY_RULE)
    return value


def _api_base(url: HttpUrl | None) -> HttpUrl | None:
    """The SDKs append their paths (/chat/completions, /v1/messages) to base_url, after
    any query or fragment, so every call would go to the wrong URL."""
    if url is not None and (url.query or url.fragment):
        raise ValueError("base_url must not have a query (?…) or a fragment (#…)")
    return url


ApiKey = Annotated[str, StringConstraints(strip_whitespace=True, max_length=4096), AfterValidator(_key_text)]
ApiBase = Annotated[HttpUrl, Field(max_length=500), AfterValidator(_api_base)]


class ProviderCreate(RequestBody):
    name: Name
    provider_type: ProviderType
    base_url: ApiBase | None = None
    api_version: str | None = Field(None, max_length=50)
    api_key: ApiKey | None = Field(None, description="Write-only; stored encrypted (whitespace around it removed)")
    is_default: StrictBool = False
    status: Status = "active"

    def fields(self) -> dict:
        data = self.model_dump()
        data["base_url"] = str(self.base_url).rstrip("/") if self.base_url else None
        return data


class ProviderPatch(PatchBody):
    NOT_NULL = ("name", "provider_type", "is_default", "status")
    name: Name | None = None
    provider_type: ProviderType | None = None
    base_url: ApiBase | None = None
    api_version: str | None = Field(None, max_length=50)
    api_key: ApiKey | None = Field(None, description="Write-only; null or empty clears it")
    is_default: StrictBool | None = None
    status: Status | None = None

    def changes(self) -> dict:
        data = super().changes()
        if data.get("base_url") is not None:
            data["base_url"] = str(self.base_url).rstrip("/")
        return data


class ProviderOut(BaseModel):
    id: UUID
    name: str
    provider_type: str
    base_url: str | None
    api_version: str | None
    api_key_set: bool
    api_key_hint: str | None
    is_default: bool
    status: str
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, p) -> ProviderOut:
        return cls(
            id=p.id, name=p.name, provider_type=p.provider_type, base_url=p.base_url,
            api_version=p.api_version, api_key_set=p.api_key_encrypted is not None,
            api_key_hint=p.api_key_hint, is_default=p.is_default, status=p.status,
            created_at=p.created_at, updated_at=p.updated_at,
        )


class ModelCreate(RequestBody):
    model_id: Name
    display_name: str | None = Field(None, max_length=200)
    context_window: StrictInt | None = Field(None, ge=1, le=INT32_MAX)
    is_default: StrictBool = False
    status: Status = "active"


class ModelPatch(PatchBody):
    NOT_NULL = ("model_id", "is_default", "status")
    model_id: Name | None = None
    display_name: str | None = Field(None, max_length=200)
    context_window: StrictInt | None = Field(None, ge=1, le=INT32_MAX)
    is_default: StrictBool | None = None
    status: Status | None = None


class ModelOut(BaseModel):
    id: UUID
    provider_id: UUID
    provider_name: str
    provider_type: str
    model_id: str
    display_name: str | None
    context_window: int | None
    is_default: bool
    status: str
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, m) -> ModelOut:
        return cls(
            id=m.id, provider_id=m.provider_id, provider_name=m.provider.name,
            provider_type=m.provider.provider_type, model_id=m.model_id, display_name=m.display_name,
            context_window=m.context_window, is_default=m.is_default, status=m.status,
            created_at=m.created_at, updated_at=m.updated_at,
        )


# --- providers -------------------------------------------------------------------

@bp.post("/v1/llm-providers")
@tag(["LLM providers"])
@validate_request(ProviderCreate)
@validate_response(ProviderOut, 201)
async def create_provider(data: ProviderCreate):
    """Add a provider. The api_key is stored encrypted and never returned."""
    return ProviderOut.of(await service.create_provider(data.fields(), _box())), 201


@bp.get("/v1/llm-providers")
@tag(["LLM providers"])
@validate_querystring(PageQuery)
@validate_response(Page[ProviderOut])
async def list_providers(query_args: PageQuery):
    """List providers."""
    items, total = await service.list_providers(query_args.offset, query_args.limit)
    return page_of(ProviderOut.of, items, total, query_args)


@bp.get("/v1/llm-providers/<provider_id>")
@tag(["LLM providers"])
@validate_response(ProviderOut)
async def get_provider(provider_id: str):
    """Get a provider."""
    return ProviderOut.of(await service.get_provider(provider_id))


@bp.patch("/v1/llm-providers/<provider_id>")
@tag(["LLM providers"])
@validate_request(ProviderPatch)
@validate_response(ProviderOut)
async def update_provider(provider_id: str, data: ProviderPatch):
    """Update a provider; a new api_key replaces the stored one."""
    return ProviderOut.of(await service.update_provider(provider_id, data.changes(), _box()))


@bp.delete("/v1/llm-providers/<provider_id>")
@tag(["LLM providers"])
@no_content
async def delete_provider(provider_id: str):
    """Delete a provider and its models."""
    await service.delete_provider(provider_id)
    return "", 204


# --- models ----------------------------------------------------------------------

@bp.post("/v1/llm-providers/<provider_id>/models")
@tag(["LLM models"])
@validate_request(ModelCreate)
@validate_response(ModelOut, 201)
async def create_model(provider_id: str, data: ModelCreate):
    """Add a model to a provider."""
    model = await service.create_model(provider_id, data.model_dump())
    return ModelOut.of(await service.get_model(str(model.id))), 201


@bp.get("/v1/llm-providers/<provider_id>/models")
@bp.get("/v1/llm-models")
@tag(["LLM models"])
@validate_querystring(PageQuery)
@validate_response(Page[ModelOut])
async def list_models(query_args: PageQuery, provider_id: str | None = None):
    """List models: one provider's, or all with their provider's name and type."""
    items, total = await service.list_models(provider_id, query_args.offset, query_args.limit)
    return page_of(ModelOut.of, items, total, query_args)


@bp.get("/v1/llm-models/<model_id>")
@tag(["LLM models"])
@validate_response(ModelOut)
async def get_model(model_id: str):
    """Get a model."""
    return ModelOut.of(await service.get_model(model_id))


@bp.patch("/v1/llm-models/<model_id>")
@tag(["LLM models"])
@validate_request(ModelPatch)
@validate_response(ModelOut)
async def update_model(model_id: str, data: ModelPatch):
    """Update a model."""
    return ModelOut.of(await service.update_model(model_id, data.changes()))


@bp.delete("/v1/llm-models/<model_id>")
@tag(["LLM models"])
@no_content
async def delete_model(model_id: str):
    """Delete a model; agents and sessions that used it fall back to the default."""
    await service.delete_model(model_id)
    return "", 204
