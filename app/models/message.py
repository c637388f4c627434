from tortoise import fields
from tortoise.models import Model


class Message(Model):
    # A stored conversation item: user, assistant, tool_call or tool_result.

    id = fields.UUIDField(primary_key=True)
    session = fields.ForeignKeyField("models.Session", related_name="messages", on_delete=fields.CASCADE)
    sequence = fields.IntField()
    role = fields.CharField(max_length=16)
    content = fields.JSONField()
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "messages"
        unique_together = (("session", "sequence"),)
