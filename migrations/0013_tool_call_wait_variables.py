from tortoise import migrations
from tortoise.migrations import operations as ops
from orjson import loads
from tortoise.fields.data import JSON_DUMPS
from tortoise import fields

# A waiting tool call's row keeps its turn's prompt variables (AgentSpec), so that an
# in-process turn resumed after a restart renders the agent's prompt as it began. A
# nullable column: one ALTER TABLE ADD COLUMN on both databases, rows kept as they are.


class Migration(migrations.Migration):
    dependencies = [('models', '0012_status_enums')]

    initial = False

    operations = [
        ops.AddField(
            model_name='ToolCallWait',
            name='variables',
            field=fields.JSONField(null=True, encoder=JSON_DUMPS, decoder=loads),
        ),
    ]
