from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.migrations.constraints import UniqueConstraint

class Migration(migrations.Migration):
    dependencies = [('models', '0006_oauth_identity_index')]

    initial = False

    operations = [
        ops.AddConstraint(
            model_name='Pipeline',
            constraint=UniqueConstraint(fields=('owner', 'name'), name=None),
        ),
    ]
