from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tortoise import fields
from tortoise.models import Model

if TYPE_CHECKING:
    from app.models.session import Session


class Event(Model):
    # One entry of a session's durable event log, stored before anyone receives it.

    id = fields.BigIntField(primary_key=True)
    session: fields.ForeignKeyRelation[Session] = fields.ForeignKeyField(
        "models.Session", related_name="events", on_delete=fields.CASCADE
    )
    session_id: str
    sequence = fields.IntField()
    type = fields.CharField(max_length=64)
    data: fields.JSONField[dict[str, Any]] = fields.JSONField(default=dict)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "events"
        unique_together = (("session", "sequence"),)
