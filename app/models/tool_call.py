from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tortoise import fields
from tortoise.models import Model

from app.models.enums import ToolCallKind, ToolCallStatus

if TYPE_CHECKING:
    from app.models.session import Session


class ToolCallWait(Model):
    # One tool call of a step in which some call waits for someone outside the server:
    # a person's approval, or a result the client runs the tool for. Every call of such
    # a step has a row (the ones that run at once too, with their results), so a turn
    # paused here can be resumed from the database alone: after a restart (in-process
    # runner) or on another worker (Temporal). Steps without waits write no rows.

    id = fields.UUIDField(primary_key=True)
    session: fields.ForeignKeyRelation[Session] = fields.ForeignKeyField(
        "models.Session", related_name="tool_call_waits", on_delete=fields.CASCADE
    )
    session_id: str
    call_id = fields.CharField(max_length=200)  # the model's id for the call
    message_id = fields.UUIDField()  # the user message the turn answers
    step_id = fields.CharField(max_length=64)
    iteration = fields.IntField()  # the step's number in the turn
    started_at_seq = fields.IntField()  # the turn's history start (see runtime/history.py)
    position = fields.IntField()  # the call's place in the step
    tool_name = fields.CharField(max_length=200)
    arguments: fields.JSONField[Any] = fields.JSONField(null=True)
    kind = fields.CharEnumField(ToolCallKind, max_length=16, description="")
    status = fields.CharEnumField(ToolCallStatus, max_length=16, db_index=True, description="")
    reason = fields.TextField(null=True)  # a denial's reason
    result: fields.JSONField[Any] = fields.JSONField(null=True)
    error = fields.TextField(null=True)
    expires_at = fields.DatetimeField(null=True)  # APPROVAL_TIMEOUT_SECONDS after the request
    created_at = fields.DatetimeField(auto_now_add=True)
    answered_at = fields.DatetimeField(null=True)
    # The turn's prompt variables (AgentSpec), for a turn resumed after a restart; the
    # Temporal runner keeps them in its workflow instead.
    variables: fields.JSONField[Any] = fields.JSONField(null=True)

    class Meta:
        table = "tool_call_waits"
