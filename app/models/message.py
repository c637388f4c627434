from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tortoise import fields
from tortoise.models import Model

if TYPE_CHECKING:
    from app.models.session import Session


class Message(Model):
    # A stored conversation item: user, assistant, tool_call or tool_result.

    id = fields.UUIDField(primary_key=True)
    session: fields.ForeignKeyRelation[Session] = fields.ForeignKeyField(
        "models.Session", related_name="messages", on_delete=fields.CASCADE
    )
    session_id: str
    sequence = fields.IntField()
    role = fields.CharField(max_length=16)
    content: fields.JSONField[Any] = fields.JSONField()
    # A turn's own messages name the user message they answer: queued messages get their
    # numbers before the replies to earlier ones, so the order of the conversation the
    # model sees comes from this, not from `sequence` (app/runtime/history.py).
    reply_to = fields.UUIDField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "messages"
        unique_together = (("session", "sequence"),)
