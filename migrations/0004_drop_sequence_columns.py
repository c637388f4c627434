from tortoise import migrations
from tortoise.migrations import operations as ops

class Migration(migrations.Migration):
    dependencies = [('models', '0003_auth')]

    initial = False

    operations = [
        ops.RemoveField(model_name='Session', name='event_seq'),
        ops.RemoveField(model_name='Session', name='message_seq'),
    ]
