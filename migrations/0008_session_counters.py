from tortoise import migrations
from tortoise import fields
from tortoise.migrations import operations as ops

# The session row carries its last event and message numbers again (0004 dropped them):
# on PostgreSQL, several processes number one session's events, and one statement that
# bumps the counter and inserts the row keeps the numbers gap-free without any lock
# held beyond that statement (app/models/sequences.py).
BACKFILL = (
    "UPDATE sessions SET "
    "event_seq = COALESCE((SELECT MAX(sequence) FROM events WHERE events.session_id = sessions.id), 0), "
    "message_seq = COALESCE((SELECT MAX(sequence) FROM messages WHERE messages.session_id = sessions.id), 0)"
)


class Migration(migrations.Migration):
    dependencies = [('models', '0007_pipeline_name_per_owner')]

    initial = False

    operations = [
        ops.AddField(model_name='Session', name='event_seq', field=fields.IntField(default=0, db_default=0)),
        ops.AddField(model_name='Session', name='message_seq', field=fields.IntField(default=0, db_default=0)),
        ops.RunSQL(BACKFILL, reverse_sql=""),
    ]
