"""The API's Literal types are the documented contract; the enums are what the models
store. They must name the same values (or the API a deliberate subset)."""

from __future__ import annotations

from typing import get_args

from app.api import agents, llm, mcp_servers, pipelines, sessions, tool_calls
from app.models import Agent, LlmModel, LlmProvider, McpServer, PipelineRun, Session, ToolCallWait, User
from app.models.enums import (
    AgentStatus,
    LlmStatus,
    McpTransport,
    PipelineRunStatus,
    SessionKind,
    SessionStatus,
    ToolCallKind,
    ToolCallStatus,
    UserRole,
)


def values(literal) -> set[str]:
    return set(get_args(literal))


def field_type(model, name):
    return model.model_fields[name].annotation


def test_api_literals_name_the_enum_values():
    assert values(sessions.Status) == set(SessionStatus)
    assert values(field_type(sessions.SessionOut, "kind")) == set(SessionKind)
    assert values(field_type(agents.AgentOut, "status")) == set(AgentStatus)
    assert values(llm.Status) == set(LlmStatus)
    assert values(mcp_servers.Transport) == set(McpTransport)
    assert values(pipelines.RunStatusValue) == set(PipelineRunStatus)
    # Calls that ran at once (kind run, status done) are not listed as waiting calls.
    assert values(tool_calls.Status) == set(ToolCallStatus) - {ToolCallStatus.DONE}
    assert values(field_type(tool_calls.ToolCallOut, "kind")) == set(ToolCallKind) - {ToolCallKind.RUN}


def test_the_models_store_the_enums():
    for model, name, enum in [(Session, "status", SessionStatus), (Session, "kind", SessionKind),
                              (Agent, "status", AgentStatus), (LlmProvider, "status", LlmStatus),
                              (LlmModel, "status", LlmStatus), (McpServer, "transport", McpTransport),
                              (PipelineRun, "status", PipelineRunStatus), (ToolCallWait, "kind", ToolCallKind),
                              (ToolCallWait, "status", ToolCallStatus), (User, "role", UserRole)]:
        field = model._meta.fields_map[name]
        assert field.enum_type is enum, (model, name)
        assert field.max_length >= max(len(v) for v in enum), (model, name)
