from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from tortoise import fields
from tortoise.models import Model

from app.models.enums import SessionKind, SessionStatus

if TYPE_CHECKING:
    from app.models.agent import Agent
    from app.models.auth import User
    from app.models.llm import LlmModel


class Session(Model):
    # One conversation (agent loop) or one externally reported agent run.
    #
    # Ids are strings: UUIDs when the server makes them, client-chosen otherwise.

    id = fields.CharField(max_length=128, primary_key=True)
    # Who made it (full auth mode); null when made without an account (modes none/admin, or
    # from the environment), which only admins see.
    owner: fields.ForeignKeyNullableRelation[User] = fields.ForeignKeyField(
        "models.User", related_name="sessions", null=True, on_delete=fields.CASCADE
    )
    owner_id: uuid.UUID | None
    agent: fields.ForeignKeyNullableRelation[Agent] = fields.ForeignKeyField(
        "models.Agent", related_name="sessions", null=True, on_delete=fields.CASCADE
    )
    agent_id: uuid.UUID | None
    # "agent": driven by this server's agent loop; "external": reported by an outside
    # agent through the Agent Runtime API (its status is running | finished).
    kind = fields.CharEnumField(SessionKind, max_length=16, default=SessionKind.AGENT, db_default="agent", description="")
    title = fields.CharField(max_length=500, null=True)  # the Agent Runtime's session_name
    project_dir = fields.CharField(max_length=1000, null=True)
    agent_name = fields.CharField(max_length=200, null=True)
    last_resumed_at = fields.DatetimeField(null=True)
    parent_session_name = fields.CharField(max_length=500, null=True)  # the session that started this one
    # True when the first thing heard of this external session was an event other than
    # session_start (hooks installed mid-session, a lost first event): its start, and
    # maybe earlier events, were never seen.
    implicit = fields.BooleanField(default=False, db_default=False)
    tags: fields.JSONField[list[str]] = fields.JSONField(default=list)
    metadata: fields.JSONField[dict[str, Any]] = fields.JSONField(default=dict, db_default="{}")  # free-form, set by AgentSpec clients
    model: fields.ForeignKeyNullableRelation[LlmModel] = fields.ForeignKeyField(
        "models.LlmModel", related_name="sessions", null=True, on_delete=fields.SET_NULL
    )
    model_id: uuid.UUID | None
    status = fields.CharEnumField(SessionStatus, max_length=32, default=SessionStatus.PENDING, db_index=True, description="")
    last_error = fields.TextField(null=True)
    usage: fields.JSONField[dict[str, Any]] = fields.JSONField(default=dict)
    # The last event and message numbers handed out, kept on PostgreSQL only (SQLite has
    # one writing process, which numbers from memory): see app/models/sequences.py.
    event_seq = fields.IntField(default=0, db_default=0)
    message_seq = fields.IntField(default=0, db_default=0)
    # Its user messages (AgentSpec's and the /v1 session's `turns`), counted by the
    # database's triggers (migrations/0015_session_turns.py): never written here.
    turns = fields.IntField(default=0, db_default=0)
    created_at = fields.DatetimeField(auto_now_add=True, db_index=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "sessions"
