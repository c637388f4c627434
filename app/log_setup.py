"""Logging with the request id on every line, so a 500 can be traced from its response."""

from __future__ import annotations

import logging
import random
import re
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote_plus

from hypercorn.logging import Logger as HypercornLogger
from quart import g, has_request_context, websocket

_REQUEST_ID_OK = re.compile(r"^[A-Za-z0-9._-]{1,128}$")


# Control characters (C0, DEL, C1, and the Unicode line and paragraph separators) shown
# as escapes, so text from a request (a path holding %0A, a header) cannot start a forged
# line in the logs.
_ESCAPES = {code: f"\\x{code:02x}" for code in (*range(0x20), *range(0x7F, 0xA0))}
_ESCAPES |= {ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t", 0x2028: "\\u2028", 0x2029: "\\u2029"}


_NEEDS_ESCAPE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def escape_control_characters(text: str) -> str:
    # Searched first: translate() looks every character up in the table (2 µs for an
    # access line), where nearly every line has nothing to escape.
    return text.translate(_ESCAPES) if _NEEDS_ESCAPE.search(text) else text


class SingleLineFilter(logging.Filter):
    """Renders the message once with its control characters escaped. A traceback is
    added by the formatter afterwards, on lines of its own, untouched."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        escaped = escape_control_characters(message)
        if escaped != message:
            record.msg, record.args = escaped, None
        return True


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = getattr(g, "request_id", "-") if has_request_context() else "-"
        return True


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler()
    handler.addFilter(RequestIdFilter())
    handler.addFilter(SingleLineFilter())
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"))
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level)
    # Hypercorn replaces these loggers' handlers when it starts (accesslog/errorlog "-"),
    # but keeps a logger's own filters.
    for name in ("hypercorn.access", "hypercorn.error"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, SingleLineFilter) for f in logger.filters):
            logger.addFilter(SingleLineFilter())


def request_id_for(scope: Mapping[str, Any]) -> str:
    """A well-formed incoming X-Request-ID (so callers can correlate), else a new one.
    Read from the ASGI scope: werkzeug's `headers.get` raises and catches an exception
    for every header a request lacks, and most lack this one."""
    for name, value in scope["headers"]:
        if name == b"x-request-id":  # ASGI servers (and Quart's test client) lower-case names
            incoming = value.decode("latin-1")
            return incoming if _REQUEST_ID_OK.match(incoming) else new_request_id()
    return new_request_id()


def new_request_id() -> str:
    """32 random hex digits, as uuid4().hex has them. Not from the OS's secure source
    (uuid4 asks it each time: a system call, about 3% of a `GET /health` here): a request
    id only has to tell requests apart in the logs, it guards nothing."""
    return f"{random.getrandbits(128):032x}"


async def assign_websocket_request_id() -> None:  # async: Quart runs sync hooks in a thread pool
    """HTTP requests get theirs in app/api/request_hooks.py."""
    g.request_id = request_id_for(websocket.scope)


# `?access_token=` carries an access token or an API key (streams and /ws, whose browser
# APIs cannot send headers: docs/api.md §8.3). Secrets are never logged: its value is not.
CREDENTIAL_PARAMETER = "access_token"


def _without_credentials(query: str) -> str:
    if "=" not in query:
        return query
    parts = query.split("&")
    for i, part in enumerate(parts):
        name, equals, _ = part.partition("=")
        if equals and unquote_plus(name).lower() == CREDENTIAL_PARAMETER:
            parts[i] = f"{name}=[redacted]"
    return "&".join(parts)


class AccessLogger(HypercornLogger):
    """Hypercorn's logger with a cheaper access line that also names the request id.

    Hypercorn builds each access line from a dict of every request and response header
    and every environment variable (AccessLogAtoms), about a tenth of a small request's
    cost here. This writes the same fields as its default format, plus the X-Request-ID
    the response carries and the time taken:
    `127.0.0.1:50412 - - [30/Nov/2026:02:21:44 +0000] "GET /health 1.1" 200 93 "-" "curl/7.88" 3b6566... 1.2ms`
    Text from the request is escaped here (the SingleLineFilter then finds nothing to do).
    ACCESS_LOG=false turns the line off altogether."""

    def __init__(self, config) -> None:
        super().__init__(config)
        if self.access_logger is not None:  # ACCESS_LOG turns these on and off, whatever LOG_LEVEL is
            self.access_logger.setLevel(logging.INFO)
        if self.error_logger is not None:
            # Hypercorn gives it a handler of its own (its format, with the process id that
            # tells WORKERS apart); propagating too, every line was written twice.
            self.error_logger.propagate = False

    async def access(self, request, response, request_time: float) -> None:
        if self.access_logger is None or not self.access_logger.isEnabledFor(logging.INFO):
            return
        referer = agent = "-"
        for name, value in request["headers"]:
            if name == b"user-agent":
                agent = value.decode("latin1")
            elif name == b"referer":
                referer = value.decode("latin1")
        status, size, request_id = "-", "-", "-"
        if response is not None:
            status = response["status"]
            for name, value in response.get("headers", ()):
                if name == b"content-length":
                    size = value.decode("latin1")
                elif name == b"x-request-id":
                    request_id = value.decode("latin1")
        client = request.get("client")
        remote = f"{client[0]}:{client[1]}" if client and len(client) == 2 else (client[0] if client else "-")
        method = request["method"] if request["type"] == "http" else "GET"
        query = request["query_string"]
        target = request["path"] + ("?" + _without_credentials(query.decode("latin1")) if query else "")
        line = (f'{remote} - - {time.strftime("[%d/%b/%Y:%H:%M:%S %z]")} "{method} {target} '
                f'{request.get("http_version", "ws")}" {status} {size} "{referer}" "{agent}" {request_id} '
                f'{request_time * 1000:.1f}ms')
        self.access_logger.info(escape_control_characters(line))  # no args: never %-formatted
