"""Logging with the request id on every line, so a 500 can be traced from its response."""

from __future__ import annotations

import logging
import re
import uuid

from quart import g, has_request_context, request, websocket

_REQUEST_ID_OK = re.compile(r"^[A-Za-z0-9._-]{1,128}$")


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = getattr(g, "request_id", "-") if has_request_context() else "-"
        return True


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler()
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"))
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level)


async def assign_request_id() -> None:  # async: Quart runs sync hooks in a thread pool
    """Reuse a well-formed incoming X-Request-ID (so callers can correlate), else make one."""
    source = request if has_request_context() else websocket
    incoming = source.headers.get("X-Request-ID", "")
    g.request_id = incoming if _REQUEST_ID_OK.match(incoming) else uuid.uuid4().hex


async def request_id_header(response):
    response.headers["X-Request-ID"] = getattr(g, "request_id", "-")
    return response
