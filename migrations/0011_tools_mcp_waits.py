from tortoise import migrations
from tortoise.migrations import operations as ops
from orjson import loads
from tortoise.fields.base import OnDelete
from tortoise.fields.data import JSON_DUMPS
from uuid import uuid4
from tortoise import fields

# Issue 14: MCP servers as capabilities, per-capability settings and client tools on
# agents, and the table of tool calls that wait for an approval or a client's result.
# Session statuses gain waiting_for_approval and waiting_for_client (18 characters).
# On SQLite, AlterField rebuilds the sessions table without its indexes (as 0004 did;
# see 0009): they are made again, under the names PostgreSQL kept.
SESSION_INDEXES = (
    "CREATE INDEX IF NOT EXISTS idx_sessions_created_4e3e88 ON sessions (created_at)",
    "CREATE INDEX IF NOT EXISTS idx_sessions_status_2d233b ON sessions (status)",
)


class Migration(migrations.Migration):
    dependencies = [('models', '0010_session_parent_and_implicit')]

    initial = False

    operations = [
        ops.CreateModel(
            name='McpServer',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('owner', fields.ForeignKeyField('models.User', source_field='owner_id', null=True, db_constraint=True, to_field='id', related_name='mcp_servers', on_delete=OnDelete.CASCADE)),
                ('name', fields.CharField(db_index=True, max_length=64)),
                ('transport', fields.CharField(max_length=8)),
                ('command', fields.TextField(null=True, unique=False)),
                ('args', fields.JSONField(default=list, encoder=JSON_DUMPS, decoder=loads)),
                ('env_encrypted', fields.TextField(null=True, unique=False)),
                ('env_hints', fields.JSONField(default=dict, encoder=JSON_DUMPS, decoder=loads)),
                ('url', fields.CharField(null=True, max_length=2000)),
                ('headers_encrypted', fields.TextField(null=True, unique=False)),
                ('header_hints', fields.JSONField(default=dict, encoder=JSON_DUMPS, decoder=loads)),
                ('enabled', fields.BooleanField(default=True)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'mcp_servers', 'app': 'models', 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='ToolCallWait',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('session', fields.ForeignKeyField('models.Session', source_field='session_id', db_constraint=True, to_field='id', related_name='tool_call_waits', on_delete=OnDelete.CASCADE)),
                ('call_id', fields.CharField(max_length=200)),
                ('message_id', fields.UUIDField()),
                ('step_id', fields.CharField(max_length=64)),
                ('iteration', fields.IntField()),
                ('started_at_seq', fields.IntField()),
                ('position', fields.IntField()),
                ('tool_name', fields.CharField(max_length=200)),
                ('arguments', fields.JSONField(null=True, encoder=JSON_DUMPS, decoder=loads)),
                ('kind', fields.CharField(max_length=16)),
                ('status', fields.CharField(db_index=True, max_length=16)),
                ('reason', fields.TextField(null=True, unique=False)),
                ('result', fields.JSONField(null=True, encoder=JSON_DUMPS, decoder=loads)),
                ('error', fields.TextField(null=True, unique=False)),
                ('expires_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('answered_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'tool_call_waits', 'app': 'models', 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.AddField(
            model_name='Agent',
            name='capability_settings',
            field=fields.JSONField(default=dict, db_default='{}', encoder=JSON_DUMPS, decoder=loads),
        ),
        ops.AddField(
            model_name='Agent',
            name='client_tools',
            field=fields.JSONField(default=list, db_default='[]', encoder=JSON_DUMPS, decoder=loads),
        ),
        ops.AlterField(
            model_name='Session',
            name='status',
            field=fields.CharField(default='pending', db_index=True, max_length=32),
        ),
        ops.RunSQL(list(SESSION_INDEXES), reverse_sql=""),
    ]
