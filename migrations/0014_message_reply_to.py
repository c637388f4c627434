from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

# A turn's own messages name the user message they answer (app/runtime/history.py puts
# each answer after its question). Nullable: rows stored before keep their place by
# number. One ALTER TABLE ADD COLUMN on both databases.


class Migration(migrations.Migration):
    dependencies = [('models', '0013_tool_call_wait_variables')]

    initial = False

    operations = [
        ops.AddField(
            model_name='Message',
            name='reply_to',
            field=fields.UUIDField(null=True),
        ),
    ]
