from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from tortoise import fields
from tortoise.models import Model

from app.models.enums import LlmStatus

if TYPE_CHECKING:
    from app.models.auth import User


class LlmProvider(Model):
    # Where model calls go. The API key is stored encrypted (see app/secrets.py).

    id = fields.UUIDField(primary_key=True)
    # Who made it (full auth mode); null when made without an account (modes none/admin, or
    # from the environment), which only admins see.
    owner: fields.ForeignKeyNullableRelation[User] = fields.ForeignKeyField(
        "models.User", related_name="llm_providers", null=True, on_delete=fields.CASCADE
    )
    owner_id: uuid.UUID | None
    name = fields.CharField(max_length=200)
    provider_type = fields.CharField(max_length=32)  # openai|anthropic|azure_openai|ollama|custom
    base_url = fields.CharField(max_length=500, null=True)
    api_version = fields.CharField(max_length=50, null=True)  # azure_openai only
    api_key_encrypted: str | None = fields.TextField(null=True)  # as an instance holds it (Tortoise: never null)
    api_key_hint = fields.CharField(max_length=32, null=True)
    is_default = fields.BooleanField(default=False)
    status = fields.CharEnumField(LlmStatus, max_length=16, default=LlmStatus.ACTIVE, description="")
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "llm_providers"


class LlmModel(Model):
    # A model offered by a provider; one per provider may be its default.

    id = fields.UUIDField(primary_key=True)
    # Who made it (full auth mode); null when made without an account (modes none/admin, or
    # from the environment), which only admins see.
    owner: fields.ForeignKeyNullableRelation[User] = fields.ForeignKeyField(
        "models.User", related_name="llm_models", null=True, on_delete=fields.CASCADE
    )
    owner_id: uuid.UUID | None
    provider: fields.ForeignKeyRelation[LlmProvider] = fields.ForeignKeyField(
        "models.LlmProvider", related_name="models", on_delete=fields.CASCADE
    )
    provider_id: uuid.UUID
    model_id = fields.CharField(max_length=200)
    display_name = fields.CharField(max_length=200, null=True)
    context_window = fields.IntField(null=True)
    is_default = fields.BooleanField(default=False)
    status = fields.CharEnumField(LlmStatus, max_length=16, default=LlmStatus.ACTIVE, description="")
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "llm_models"
