"""The values of every status-like column, as `StrEnum`s.

One module for all of them, standard library only; the models store them through
Tortoise's `CharEnumField`. (Importing it still runs the `app.models` package first,
so the Temporal workflows, which only compare payload strings, keep plain strings.) A
`StrEnum` member is a `str` and equals its value, so JSON, query filters and comparisons
with plain strings (payloads, request bodies) behave as before.

The fields keep the columns they had (same length, default and index) and pass
`description=""`: CharEnumField would otherwise write its members into a column
comment. Migration 0012 records the new field type without touching the database.
"""

from __future__ import annotations

from enum import StrEnum


class SessionKind(StrEnum):
    AGENT = "agent"  # driven by this server's agent loop
    EXTERNAL = "external"  # reported by an outside agent (Agent Runtime API): running | finished


class SessionStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    WAITING_FOR_APPROVAL = "waiting_for_approval"
    WAITING_FOR_CLIENT = "waiting_for_client"
    FAILED = "failed"
    FINISHED = "finished"


class AgentStatus(StrEnum):
    ACTIVE = "active"
    ARCHIVED = "archived"


class LlmStatus(StrEnum):
    """An LLM provider's or model's."""

    ACTIVE = "active"
    DISABLED = "disabled"


class PipelineRunStatus(StrEnum):
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"


class ToolCallKind(StrEnum):
    RUN = "run"  # runs at once
    APPROVAL = "approval"  # waits for a person's approval
    CLIENT = "client"  # waits for the result the client computes


class ToolCallStatus(StrEnum):
    WAITING = "waiting"  # for an answer
    APPROVED = "approved"
    DENIED = "denied"
    ANSWERED = "answered"  # a client's result
    EXPIRED = "expired"  # APPROVAL_TIMEOUT_SECONDS passed
    CANCELLED = "cancelled"  # the turn ended first
    DONE = "done"  # the result is in the row


class McpTransport(StrEnum):
    STDIO = "stdio"
    HTTP = "http"  # streamable HTTP


class UserRole(StrEnum):
    USER = "user"
    ADMIN = "admin"
