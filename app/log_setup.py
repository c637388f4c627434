"""Logging with the request id on every line, so a 500 can be traced from its response."""

from __future__ import annotations

import logging
import re
import uuid

from quart import g, has_request_context, request, websocket

_REQUEST_ID_OK = re.compile(r"^[A-Za-z0-9._-]{1,128}$")


# Control characters (C0, DEL, C1, and the Unicode line and paragraph separators) shown
# as escapes, so text from a request (a path holding %0A, a header) cannot start a forged
# line in the logs.
_ESCAPES = {code: f"\\x{code:02x}" for code in (*range(0x20), *range(0x7F, 0xA0))}
_ESCAPES |= {ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t", 0x2028: "\\u2028", 0x2029: "\\u2029"}


def escape_control_characters(text: str) -> str:
    return text.translate(_ESCAPES)


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


async def assign_request_id() -> None:  # async: Quart runs sync hooks in a thread pool
    """Reuse a well-formed incoming X-Request-ID (so callers can correlate), else make one."""
    source = request if has_request_context() else websocket
    incoming = source.headers.get("X-Request-ID", "")
    g.request_id = incoming if _REQUEST_ID_OK.match(incoming) else uuid.uuid4().hex


async def request_id_header(response):
    response.headers["X-Request-ID"] = getattr(g, "request_id", "-")
    return response
