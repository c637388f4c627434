from tortoise import migrations
from tortoise.migrations import operations as ops
from app.models.enums import AgentStatus, LlmStatus, McpTransport, PipelineRunStatus, SessionKind, SessionStatus, ToolCallKind, ToolCallStatus, UserRole
from tortoise import fields

# Statuses and kinds become StrEnums (app/models/enums.py) through CharEnumField: the
# columns stay what they were (same SQL type, length, default, index, no comment), only
# the Python type read back changes. So this only records the new fields in the
# migration state and sends nothing to the database. A real AlterField would only
# clear column comments on PostgreSQL, but on SQLite it would rebuild each of these
# tables (copying every row and losing their indexes, see 0009 and 0011) for nothing.


class AlterFieldType(ops.AlterField):
    """An AlterField whose column does not change: state only."""

    async def database_forward(self, app_label, old_state, new_state, state_editor=None) -> None:
        return None

    async def database_backward(self, app_label, old_state, new_state, state_editor=None) -> None:
        return None


class Migration(migrations.Migration):
    dependencies = [('models', '0011_tools_mcp_waits')]

    initial = False

    operations = [
        AlterFieldType(
            model_name='Agent',
            name='status',
            field=fields.CharEnumField(default=AgentStatus.ACTIVE, db_index=True, description='', enum_type=AgentStatus, max_length=16),
        ),
        AlterFieldType(
            model_name='LlmModel',
            name='status',
            field=fields.CharEnumField(default=LlmStatus.ACTIVE, description='', enum_type=LlmStatus, max_length=16),
        ),
        AlterFieldType(
            model_name='LlmProvider',
            name='status',
            field=fields.CharEnumField(default=LlmStatus.ACTIVE, description='', enum_type=LlmStatus, max_length=16),
        ),
        AlterFieldType(
            model_name='McpServer',
            name='transport',
            field=fields.CharEnumField(description='', enum_type=McpTransport, max_length=8),
        ),
        AlterFieldType(
            model_name='PipelineRun',
            name='status',
            field=fields.CharEnumField(default=PipelineRunStatus.RUNNING, description='', enum_type=PipelineRunStatus, max_length=16),
        ),
        AlterFieldType(
            model_name='Session',
            name='kind',
            field=fields.CharEnumField(default=SessionKind.AGENT, description='', db_default='agent', enum_type=SessionKind, max_length=16),
        ),
        AlterFieldType(
            model_name='Session',
            name='status',
            field=fields.CharEnumField(default=SessionStatus.PENDING, db_index=True, description='', enum_type=SessionStatus, max_length=32),
        ),
        AlterFieldType(
            model_name='ToolCallWait',
            name='kind',
            field=fields.CharEnumField(description='', enum_type=ToolCallKind, max_length=16),
        ),
        AlterFieldType(
            model_name='ToolCallWait',
            name='status',
            field=fields.CharEnumField(db_index=True, description='', enum_type=ToolCallStatus, max_length=16),
        ),
        AlterFieldType(
            model_name='User',
            name='role',
            field=fields.CharEnumField(default=UserRole.USER, description='', enum_type=UserRole, max_length=16),
        ),
    ]
