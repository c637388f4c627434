"""The one place errors become responses.

Domain code raises ApiError (or a subclass); framework errors (unknown route, bad JSON,
schema validation, body too large) and unexpected exceptions are translated here, so
every /v1 error has the documented shape:
    {"error": {"code": "<snake_case>", "message": "..."}, "message": "...", "status": <http status>}
and every Agent Runtime error (/sessions, /events) the shape that API documents:
    {"detail": "..."}
"""

from __future__ import annotations

import logging

from pydantic import ValidationError
from quart import Quart, g, has_request_context, request, websocket
from quart_schema import RequestSchemaValidationError
from tortoise.exceptions import IntegrityError
from werkzeug.exceptions import HTTPException, MethodNotAllowed
from werkzeug.routing import WebsocketMismatch

from app.db import DatabaseUnavailable

log = logging.getLogger("app.errors")


class ApiError(Exception):
    status = 400
    code = "invalid_request"

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status


class InvalidRequest(ApiError):
    status, code = 400, "invalid_request"


class NotFound(ApiError):
    status, code = 404, "not_found"


class SessionGone(NotFound):
    """A write to a session whose row was deleted meanwhile (the foreign key refused it):
    to a request, the 404 of any missing session; a turn ends on it without a word
    (app/runtime/turn.py). Raised by the event log (app/events/log.py)."""

    def __init__(self, session_id: str):
        super().__init__(f"session '{session_id}' not found")
        self.session_id = session_id


class Conflict(ApiError):
    status, code = 409, "conflict"


class Unauthorized(ApiError):
    status, code = 401, "unauthorized"


class Forbidden(ApiError):
    status, code = 403, "forbidden"


class ServiceUnavailable(ApiError):
    status, code = 503, "service_unavailable"


class ProviderError(ApiError):
    """A provider we call failed or answered something unusable: an LLM provider (codes
    `provider_*`, most ending a turn rather than a request) or an OAuth sign-in provider
    (`oauth_provider_error`)."""

    status, code = 502, "provider_error"


_HTTP_CODES = {
    400: "invalid_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}


# The Agent Runtime API (root-level /sessions, /events) answers errors in its own shape.
DETAIL_SHAPE_PREFIXES = ("/sessions", "/events")


def error_body(status: int, code: str, message: str) -> dict:
    if request and request.path.startswith(DETAIL_SHAPE_PREFIXES):
        return {"detail": message}
    # The top-level `message` repeats error.message for clients that read it there (the
    # AgentSpec Python SDK's APIError, which otherwise shows only "HTTP Error 400: ").
    return {"error": {"code": code, "message": message}, "message": message, "status": status}


def describe_validation_error(exc: Exception) -> str:
    """One readable sentence per problem, each naming the field, e.g. "name: Field required"."""
    if isinstance(exc, ValidationError):
        parts = []
        for err in exc.errors(include_url=False):
            loc = ".".join(str(p) for p in err["loc"] if p not in ("body", "query")) or "body"
            # pydantic names the model class ("… or instance of Denial"): ours, not the API's
            msg = "Input should be a valid dictionary (a JSON object)" if err["type"] == "model_type" else err["msg"]
            parts.append(f"{loc}: {msg}")
        return "; ".join(parts)
    if isinstance(exc, TypeError):  # quart-schema: body is not an object at all
        return "request body must be a JSON object"
    return str(exc) or "invalid request"


def _http_message(exc: HTTPException) -> str:
    if exc.code == 404:
        return f"No route for {request.method} {request.path}"
    if exc.code == 405:
        return f"Method {request.method} is not allowed on {request.path}"
    if exc.code == 413:
        limit = request.max_content_length
        return f"Request body is larger than the limit of {limit} bytes (MAX_BODY_BYTES)"
    if isinstance(exc, WebsocketMismatch):  # a plain GET of /ws: werkzeug's text says nothing of WebSocket
        return f"{request.path} is a WebSocket endpoint: connect with a WebSocket client (Upgrade: websocket)"
    if exc.code == 400:  # the framework's own refusals; JSON bodies are app/api/json_body.py's
        return f"Bad request: {exc.description}" if exc.description else "Bad request"
    if exc.code == 429:
        return "Too many attempts; wait for the number of seconds in Retry-After"
    return exc.description or exc.name


def register_error_handlers(app: Quart) -> None:
    @app.errorhandler(ApiError)
    async def _api_error(exc: ApiError):
        return error_body(exc.status, exc.code, exc.message), exc.status

    @app.errorhandler(RequestSchemaValidationError)
    async def _schema_error(exc: RequestSchemaValidationError):
        message = describe_validation_error(exc.validation_error)
        return error_body(400, "invalid_request", message), 400

    @app.errorhandler(ValidationError)
    async def _model_error(exc: ValidationError):
        # A handler validating part of a request itself (a body that may also come as a
        # cookie, say): the same 400 as a schema-validated body. Responses are checked by
        # quart-schema with its own exception type, so this is always the client's input.
        return error_body(400, "invalid_request", describe_validation_error(exc)), 400

    @app.errorhandler(IntegrityError)
    async def _integrity_error(exc: IntegrityError):
        # Two requests raced for the same unique name or id (the loser gets a 409, not a
        # 500), or a row vanished while being referenced.
        log.info("integrity error on %s %s: %s", request.method, request.path, exc)
        message = "the request conflicts with the current state (a name or id already taken, or a row just deleted)"
        return error_body(409, "conflict", message), 409

    @app.errorhandler(DatabaseUnavailable)
    async def _database_unavailable(exc: DatabaseUnavailable):
        # The database is down, unreachable, too slow, read-only or full (app/db.py turns
        # the driver's errors into this): not the request's fault and not a bug, and
        # worth trying again later. The message names the reason, never the driver's text.
        log.warning("database unavailable on %s %s: %s (%r)", request.method, request.path, exc.reason, exc.__cause__)
        return error_body(503, "database_unavailable", str(exc)), 503

    @app.errorhandler(HTTPException)
    async def _http_error(exc: HTTPException):
        status = exc.code or 500
        code = _HTTP_CODES.get(status, "http_error")
        headers = {name: value for name, value in exc.get_headers() if name in ("Allow", "Retry-After")}
        if status == 405 and isinstance(exc, MethodNotAllowed) and exc.valid_methods:
            headers["Allow"] = ", ".join(exc.valid_methods)
        if status == 413:
            # The rest of the body was never read, so this connection cannot carry another
            # request: say so, or a keep-alive client's next request is lost on it.
            headers["Connection"] = "close"
        return error_body(status, code, _http_message(exc)), status, headers

    @app.errorhandler(Exception)
    async def _unexpected(exc: Exception):
        if isinstance(exc, HTTPException):  # raised from inside another handler
            return await _http_error(exc)
        request_id = getattr(g, "request_id", "-")
        method, path = (request.method, request.path) if has_request_context() else ("WEBSOCKET", websocket.path)
        log.exception("unhandled error on %s %s (request %s)", method, path, request_id)
        message = f"Internal error; quote request id {request_id} when reporting it"
        return error_body(500, "internal_error", message), 500
