from tortoise import fields, migrations
from tortoise.migrations import operations as ops

# A session's turns (its user messages) kept on its row by the database itself: AgentSpec's
# `turns` and the /v1 session's were a COUNT over the session's messages on every read,
# which on a conversation of 100,000 messages took ~19 ms on SQLite, on the event loop's
# thread (issue 13). Triggers count each user message stored and each deleted, in the
# statement that stores or deletes it, whoever writes it (any process, raw SQL or the ORM).
BACKFILL = ("UPDATE sessions SET turns = (SELECT COUNT(*) FROM messages "
            "WHERE messages.session_id = sessions.id AND messages.role = 'user')")

SQLITE = (
    "CREATE TRIGGER IF NOT EXISTS messages_count_turn AFTER INSERT ON messages WHEN NEW.role = 'user' "
    "BEGIN UPDATE sessions SET turns = turns + 1 WHERE id = NEW.session_id; END",
    "CREATE TRIGGER IF NOT EXISTS messages_uncount_turn AFTER DELETE ON messages WHEN OLD.role = 'user' "
    "BEGIN UPDATE sessions SET turns = turns - 1 WHERE id = OLD.session_id; END",
)

POSTGRES = (
    "CREATE OR REPLACE FUNCTION messages_count_turn() RETURNS trigger LANGUAGE plpgsql AS $$ "
    "BEGIN UPDATE sessions SET turns = turns + 1 WHERE id = NEW.session_id; RETURN NULL; END $$",
    "CREATE OR REPLACE FUNCTION messages_uncount_turn() RETURNS trigger LANGUAGE plpgsql AS $$ "
    "BEGIN UPDATE sessions SET turns = turns - 1 WHERE id = OLD.session_id; RETURN NULL; END $$",
    "DROP TRIGGER IF EXISTS messages_count_turn ON messages",
    "CREATE TRIGGER messages_count_turn AFTER INSERT ON messages FOR EACH ROW WHEN (NEW.role = 'user') "
    "EXECUTE FUNCTION messages_count_turn()",
    "DROP TRIGGER IF EXISTS messages_uncount_turn ON messages",
    "CREATE TRIGGER messages_uncount_turn AFTER DELETE ON messages FOR EACH ROW WHEN (OLD.role = 'user') "
    "EXECUTE FUNCTION messages_uncount_turn()",
)


async def create_triggers(apps, schema_editor) -> None:
    client = schema_editor.client
    for sql in (POSTGRES if client.capabilities.dialect == "postgres" else SQLITE):
        await client.execute_script(sql)


class Migration(migrations.Migration):
    dependencies = [('models', '0014_message_reply_to')]

    initial = False

    operations = [
        ops.AddField(model_name='Session', name='turns', field=fields.IntField(default=0, db_default=0)),
        ops.RunSQL(BACKFILL, reverse_sql=""),
        ops.RunPython(create_triggers),
    ]
