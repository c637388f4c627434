from tortoise import migrations
from tortoise.migrations import operations as ops

# On SQLite, 0004 (RemoveField) rebuilt the sessions table without the indexes the model
# declares (created_at and status, db_index=True); PostgreSQL kept them (ALTER TABLE ...
# DROP COLUMN). Every session list then read and sorted the whole table. The names are
# the ones Tortoise gave them on PostgreSQL, so there this changes nothing.
INDEXES = (
    "CREATE INDEX IF NOT EXISTS idx_sessions_created_4e3e88 ON sessions (created_at)",
    "CREATE INDEX IF NOT EXISTS idx_sessions_status_2d233b ON sessions (status)",
)


class Migration(migrations.Migration):
    dependencies = [('models', '0008_session_counters')]

    initial = False

    operations = [ops.RunSQL(list(INDEXES), reverse_sql="")]
