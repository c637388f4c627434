from tortoise import migrations
from tortoise import fields
from tortoise.migrations import operations as ops

# Agent Runtime clients send parent_session_name (a child run names the session that
# started it) and the original server stored it. `implicit` marks an external session the
# server created for an event whose session it had never seen, instead of dropping it.


class Migration(migrations.Migration):
    dependencies = [('models', '0009_restore_session_indexes')]

    initial = False

    operations = [
        ops.AddField(model_name='Session', name='parent_session_name', field=fields.CharField(max_length=500, null=True)),
        ops.AddField(model_name='Session', name='implicit', field=fields.BooleanField(default=False, db_default=False)),
    ]
