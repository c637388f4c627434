"""What the pool and a connection share, without the `mcp` SDK: importing the SDK costs
about half a second, which a process pays only once it talks to an MCP server
(connection.py and the SDK are imported on first use)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime

from app.models.enums import McpTransport


class McpUnavailable(Exception):
    """The server cannot be started, reached, or does not answer in time."""


class NotDelivered(Exception):
    """The request never reached the server (its session had already ended)."""


class ConnectionLost(Exception):
    """The session ended while the server had the request."""


@dataclass(frozen=True)
class ServerConfig:
    """A server's settings, secrets decrypted, as one connection was opened with them."""

    id: uuid.UUID
    name: str
    version: datetime  # the row's updated_at: an edit anywhere makes a new version
    transport: McpTransport
    command: str | None = None
    args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    url: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


def describe(exc: BaseException | None) -> str:
    """A short reason from an error (the first one of an exception group)."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    if exc is None:
        return "unknown error"
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
