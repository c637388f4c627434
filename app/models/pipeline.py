from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from tortoise import fields
from tortoise.models import Model

from app.models.enums import PipelineRunStatus

if TYPE_CHECKING:
    from app.models.auth import User


class Pipeline(Model):
    # A named graph of steps; each step runs one agent. Steps are stored as a list of
    # {"name", "agent", "depends_on": [...], "input": str | None}.
    id = fields.UUIDField(primary_key=True)
    owner: fields.ForeignKeyNullableRelation[User] = fields.ForeignKeyField(
        "models.User", related_name="pipelines", null=True, on_delete=fields.CASCADE
    )
    owner_id: uuid.UUID | None
    name = fields.CharField(max_length=200, db_index=True)
    description = fields.TextField(null=True)
    steps: fields.JSONField[list[dict[str, Any]]] = fields.JSONField()
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "pipelines"
        unique_together = (("owner", "name"),)  # names are per owner; enforced under concurrency too


class PipelineRun(Model):
    # One execution. `steps` holds each step's progress: {"name", "status" (pending |
    # running | completed | failed | skipped), "output", "usage", "error", "session_id",
    # "started_at", "finished_at", "duration_ms"}, updated as the run goes.
    id = fields.UUIDField(primary_key=True)
    pipeline: fields.ForeignKeyRelation[Pipeline] = fields.ForeignKeyField(
        "models.Pipeline", related_name="runs", on_delete=fields.CASCADE
    )
    pipeline_id: uuid.UUID
    owner: fields.ForeignKeyNullableRelation[User] = fields.ForeignKeyField(
        "models.User", related_name="pipeline_runs", null=True, on_delete=fields.CASCADE
    )
    owner_id: uuid.UUID | None
    status = fields.CharEnumField(PipelineRunStatus, max_length=16, default=PipelineRunStatus.RUNNING, description="")
    input = fields.TextField(null=True)
    output = fields.TextField(null=True)
    usage: fields.JSONField[dict[str, Any]] = fields.JSONField(default=dict)
    steps: fields.JSONField[list[dict[str, Any]]] = fields.JSONField(default=list)
    started_at = fields.DatetimeField(auto_now_add=True)
    finished_at = fields.DatetimeField(null=True)

    class Meta:
        table = "pipeline_runs"
