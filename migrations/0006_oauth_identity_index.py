from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.migrations.constraints import UniqueConstraint

class Migration(migrations.Migration):
    dependencies = [('models', '0005_agentspec')]

    initial = False

    operations = [
        ops.AddConstraint(
            model_name='User',
            constraint=UniqueConstraint(fields=('oauth_provider', 'oauth_subject'), name=None),
        ),
    ]
