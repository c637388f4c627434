from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0001_initial')]

    initial = False

    operations = [
        ops.AddField(
            model_name='Session',
            name='agent_name',
            field=fields.CharField(null=True, max_length=200),
        ),
        ops.AddField(
            model_name='Session',
            name='kind',
            field=fields.CharField(default='agent', db_default='agent', max_length=16),
        ),
        ops.AddField(
            model_name='Session',
            name='last_resumed_at',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.AddField(
            model_name='Session',
            name='project_dir',
            field=fields.CharField(null=True, max_length=1000),
        ),
    ]
