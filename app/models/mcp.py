from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from tortoise import fields
from tortoise.models import Model

from app.models.enums import McpTransport

if TYPE_CHECKING:
    from app.models.auth import User


class McpServer(Model):
    # A Model Context Protocol server whose tools agents can be given (capability ids
    # `mcp:<name>:<tool>` and `mcp:<name>:*`). Secrets in `env` and `headers` are stored
    # encrypted like provider keys (app/secrets.py) and never returned, only hints.

    id = fields.UUIDField(primary_key=True)
    # Who made it (full auth mode); null when made without an account, which only admins see.
    owner: fields.ForeignKeyNullableRelation[User] = fields.ForeignKeyField(
        "models.User", related_name="mcp_servers", null=True, on_delete=fields.CASCADE
    )
    owner_id: uuid.UUID | None
    name = fields.CharField(max_length=64, db_index=True)  # [a-z0-9_-], unique per owner
    transport = fields.CharEnumField(McpTransport, max_length=8, description="")
    command = fields.TextField(null=True)  # stdio
    args: fields.JSONField[list[str]] = fields.JSONField(default=list)  # stdio
    # Typed for what an instance holds (Tortoise types every TextField as never null).
    env_encrypted: str | None = fields.TextField(null=True)  # stdio: a JSON object, encrypted
    env_hints: fields.JSONField[dict[str, str]] = fields.JSONField(default=dict)  # name -> masked value
    url = fields.CharField(max_length=2000, null=True)  # http (streamable HTTP)
    headers_encrypted: str | None = fields.TextField(null=True)  # http: a JSON object, encrypted
    header_hints: fields.JSONField[dict[str, str]] = fields.JSONField(default=dict)
    enabled = fields.BooleanField(default=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "mcp_servers"
