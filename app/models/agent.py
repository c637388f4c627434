from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from tortoise import fields
from tortoise.models import Model

from app.models.enums import AgentStatus

if TYPE_CHECKING:
    from app.models.auth import User
    from app.models.llm import LlmModel


class Agent(Model):
    # A system prompt, a default model and a list of capabilities (tools).

    id = fields.UUIDField(primary_key=True)
    # Who made it (full auth mode); null when made without an account (modes none/admin, or
    # from the environment), which only admins see.
    owner: fields.ForeignKeyNullableRelation[User] = fields.ForeignKeyField(
        "models.User", related_name="agents", null=True, on_delete=fields.CASCADE
    )
    owner_id: uuid.UUID | None
    name = fields.CharField(max_length=200, db_index=True)
    description = fields.TextField(null=True)
    system_prompt = fields.TextField()
    tags: fields.JSONField[list[str]] = fields.JSONField(default=list)
    default_model: fields.ForeignKeyNullableRelation[LlmModel] = fields.ForeignKeyField(
        "models.LlmModel", related_name="default_for_agents", null=True, on_delete=fields.SET_NULL
    )
    default_model_id: uuid.UUID | None
    capability_ids: fields.JSONField[list[str]] = fields.JSONField(default=list)
    # Per capability id, its settings on this agent: {"requires_approval": true}.
    capability_settings: fields.JSONField[dict[str, dict[str, Any]]] = fields.JSONField(default=dict, db_default="{}")
    # Tools the client runs: [{"name", "description", "parameters"}] (runtime/toolbox.py).
    client_tools: fields.JSONField[list[dict[str, Any]]] = fields.JSONField(default=list, db_default="[]")
    status = fields.CharEnumField(AgentStatus, max_length=16, default=AgentStatus.ACTIVE, db_index=True, description="")
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "agents"
