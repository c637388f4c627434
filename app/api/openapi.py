"""OpenAPI tweaks in one place, so the document says what the server does:

* every API operation documents the errors it can answer, in the shape its API uses
  (`ErrorResponse` on /v1, `{"detail"}` on the Agent Runtime's /sessions and /events;
  app/errors.py `error_body`), chosen per operation by `error_statuses`;
* routes marked `@no_content` document a bodiless 204 (quart-schema has no response model
  for them), and responses quart-schema cannot see (text, streams, plain dicts) are added;
* URL rules that differ only in their parameters' names (AgentSpec's `{agent_ref}` and
  Everruns' `{agent_id}`) are one path in the document, as they are one URL to a client.
"""

from __future__ import annotations

import re
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field
from quart_schema.openapi import OpenAPIProvider

from app.api.common import ErrorResponse
from app.auth.policy import PUBLIC, required_scope
from app.errors import DETAIL_SHAPE_PREFIXES

NO_CONTENT_RESPONSE = {"description": "No content: the body is empty"}
NO_CONTENT_ATTRIBUTE = "_answers_no_content"

ERROR_DESCRIPTIONS = {
    400: "Invalid request: the body, query or a path parameter fails validation",
    401: "Credentials missing, invalid or expired (when authentication is on)",
    403: "The credentials lack the scope this route needs",
    404: "Not found: the resource named in the path (or body) does not exist",
    409: "Conflict with the current state: a name or id already taken, an ambiguous agent or pipeline "
         "name (`ambiguous_agent_name`, `ambiguous_pipeline_name`), a row deleted meanwhile, or a session "
         "in the wrong state",
    413: "The request body is larger than MAX_BODY_BYTES",
    429: "Too many attempts; wait for the number of seconds in Retry-After",
    500: "Internal error (the message quotes the request id); on routes that run a turn, also a turn that failed",
    502: "The upstream provider (the LLM, the OAuth provider, or an MCP server: `mcp_unavailable`) failed or refused",
    503: "The database (or another backing service) is unavailable, or no LLM model is configured for a turn",
}
# Routes throttled with app.auth.throttle.limit_attempts (app/api/auth.py).
RATE_LIMITED = {("post", "/v1/auth/register"), ("post", "/v1/auth/login"), ("get", "/v1/auth/oauth/{provider}")}
WRITE_METHODS = {"post", "put", "patch", "delete"}
# Endpoints that wait on a provider: AgentSpec's turns (app/dialects/agentspec.py
# raise_for_failure) and the OAuth callback (app/auth/oauth.py).
UPSTREAM_ENDPOINTS = {"agentspec.invoke", "agentspec.stream", "agentspec.continue_session", "auth.oauth_callback",
                      "mcp_servers.list_mcp_server_tools"}

# Routes that answer with a redirect (the browser's sign-in flow), not a body.
REDIRECTS = {"/v1/auth/oauth/{provider}", "/v1/auth/oauth/{provider}/callback"}
REDIRECT_RESPONSE = {"description": "Redirect to the URL in Location", "headers": {"Location": {"schema": {"type": "string"}}}}

# Routes whose success body is not JSON (quart-schema only knows JSON models).
TEXT_RESPONSES = {
    "/v1/metrics": ("text/plain; version=0.0.4", "Prometheus text exposition"),
    "/v1/agents/{agent_ref}/stream": ("text/event-stream", "SSE: token, tool_call, tool_result, error, done"),
    "/v1/sessions/{session_id}/sse": ("text/event-stream", "SSE: the session's events (§4.4 of docs/api.md)"),
}
# Routes that answer either their JSON model or a stream (?format=, else Accept).
ALSO_STREAMED = {"/v1/sessions/{session_id}/events", "/v1/agents/{agent_id}/sessions/{session_id}/events"}


class Liveness(BaseModel):
    """ok (200), or degraded (503) with the failing checks."""

    model_config = ConfigDict(extra="allow")
    status: Literal["ok", "degraded"]
    version: str
    uptime_seconds: float
    checks: dict[str, str] | None = Field(None, description="Per backing service: ok, or error: <reason>")


class AgentRuntimeError(BaseModel):
    """The Agent Runtime API's error shape."""

    detail: str


class DeletedCounts(BaseModel):
    session: bool
    events_count: int


class AgentRuntimeSessionDeleted(BaseModel):
    """The session is gone, with its events and messages."""

    ok: bool
    session_id: str
    deleted: DeletedCounts


class AgentRuntimeSession(BaseModel):
    """app/dialects/agent_runtime.py `ar_session`."""

    session_id: str
    session_name: str
    status: str
    created_at: str | None
    project_dir: str | None
    agent_name: str | None
    last_resumed_at: str | None
    parent_session_name: str | None
    implicit: bool
    kind: str
    agent_id: str | None
    runtime_status: str
    last_error: str | None
    updated_at: str | None


class AgentRuntimeSessionPage(BaseModel):
    """Sessions newest first; `next` is the cursor for ?before=, null on the last page."""

    sessions: list[AgentRuntimeSession]
    has_more: bool
    next: str | None


class AgentRuntimeSessionBody(BaseModel):
    session: AgentRuntimeSession


class AgentRuntimeSessionSaved(BaseModel):
    ok: bool
    session: AgentRuntimeSession


class AgentRuntimeSessionStopped(BaseModel):
    ok: bool
    stopped: bool
    session: AgentRuntimeSession


class AgentRuntimeStatus(BaseModel):
    status: str = Field(description="running | finished | not_existent")


class AgentRuntimeResult(BaseModel):
    result: str


class AgentRuntimeEvent(BaseModel):
    """app/dialects/agent_runtime.py `ar_event`: the hook-style fields, then the core ones."""

    model_config = ConfigDict(extra="allow")
    id: int
    event_type: str
    session_id: str
    session_name: str
    timestamp: Any = Field(description="The reporter's own timestamp when it sent one, else the log's")
    type: str
    sequence: int
    data: dict[str, Any]


class AgentRuntimeEventList(BaseModel):
    events: list[AgentRuntimeEvent]


class AgentRuntimeEventRecorded(BaseModel):
    ok: bool
    id: int


# Agent Runtime handlers return plain dicts, so quart-schema knows nothing of their bodies;
# a route that documents its own response (document_response) wins over this table.
JSON_RESPONSES: dict[tuple[str, str], dict[int, type[BaseModel]]] = {
    ("get", "/healthz"): {200: Liveness, 503: Liveness},
    ("get", "/sessions"): {200: AgentRuntimeSessionPage},
    ("post", "/sessions"): {200: AgentRuntimeSessionSaved},
    ("get", "/sessions/{session_id}"): {200: AgentRuntimeSessionBody},
    ("delete", "/sessions/{session_id}"): {200: AgentRuntimeSessionDeleted},
    ("get", "/sessions/{session_id}/status"): {200: AgentRuntimeStatus},
    ("get", "/sessions/{session_id}/result"): {200: AgentRuntimeResult},
    ("patch", "/sessions/{session_id}/metadata"): {200: AgentRuntimeSessionSaved},
    ("post", "/sessions/{session_id}/stop"): {200: AgentRuntimeSessionStopped},
    ("get", "/sessions/{session_id}/events"): {200: AgentRuntimeEventList},
    ("get", "/events/{session_id}"): {200: AgentRuntimeEventList},
    ("post", "/sessions/{session_id}/events"): {200: AgentRuntimeEventRecorded},
    ("post", "/events"): {200: AgentRuntimeEventRecorded},
}

F = TypeVar("F")
PARAMETER = re.compile(r"\{[^}]+\}")


def no_content(func: F) -> F:
    """Mark a route whose success is 204 with an empty body, so the document says exactly
    that instead of guessing from the absence of a response model."""
    setattr(func, NO_CONTENT_ATTRIBUTE, True)
    return func


def is_api_path(path: str) -> bool:
    return path.startswith("/v1/") or path.startswith(DETAIL_SHAPE_PREFIXES)


def error_statuses(method: str, path: str, operation: dict, endpoint: str) -> list[int]:
    """The error statuses an operation can answer (beyond those it documents itself)."""
    statuses = [400]
    # Public sign-in routes refuse bad credentials (or a disabled sign-up) with 401/403 too.
    if required_scope(endpoint, method.upper()) != PUBLIC or path.startswith("/v1/auth/"):
        statuses += [401, 403]
    # /v1 bodies name other resources too (an agent, a model, a pipeline's steps).
    if "{" in path or path.startswith("/v1/"):
        statuses.append(404)
    # Any write may lose a race for a unique name (IntegrityError); an agent or a pipeline
    # named rather than identified may be ambiguous (docs/api.md 10.5).
    if method in WRITE_METHODS or path.startswith(("/v1/agents/{", "/v1/pipelines/{")):
        statuses.append(409)
    if "requestBody" in operation or method in ("post", "put", "patch"):
        statuses.append(413)
    if (method, path) in RATE_LIMITED:
        statuses.append(429)
    if endpoint in UPSTREAM_ENDPOINTS:
        statuses.append(502)
    return statuses + [500, 503]


class RuntimeOpenAPIProvider(OpenAPIProvider):
    def schema(self) -> dict[str, Any]:
        document = super().schema()
        document["paths"] = merge_same_urls(document["paths"])
        return document

    def build_paths(self, rule):
        paths, components = super().build_paths(rule)
        self._document_json_responses(paths, components)
        error_model = AgentRuntimeError if rule.rule.startswith(DETAIL_SHAPE_PREFIXES) else ErrorResponse
        error_object, error_components = self.build_response_object(error_model, None)
        if not is_api_path(rule.rule):  # /health, /healthz: only an unexpected error
            components.update(error_components)
            for operations in paths.values():
                for operation in operations.values():
                    operation["responses"].setdefault(500, {**error_object, "description": ERROR_DESCRIPTIONS[500]})
            return paths, components
        answers_no_content = getattr(self._app.view_functions[rule.endpoint], NO_CONTENT_ATTRIBUTE, False)
        components.update(error_components)
        for path, operations in paths.items():
            for method, operation in operations.items():
                responses = dict(operation["responses"])
                if path in TEXT_RESPONSES:
                    content_type, description = TEXT_RESPONSES[path]
                    responses[200] = {"description": description,
                                      "content": {content_type: {"schema": {"type": "string"}}}}
                if path in ALSO_STREAMED:
                    ok = responses[200]
                    responses[200] = {**ok, "description": "The JSON page (?format=json), or the SSE stream",
                                      "content": {**ok["content"], "text/event-stream": {"schema": {"type": "string"}}}}
                if path in REDIRECTS:
                    responses[302] = REDIRECT_RESPONSE
                elif answers_no_content:
                    responses[204] = NO_CONTENT_RESPONSE
                elif method != "delete" and not any(str(code).startswith("2") for code in responses):
                    # Unmarked routes without a model (logout) are still taken to be 204s; a
                    # DELETE must say what it answers (tests/api/test_openapi_deletes.py).
                    responses[204] = NO_CONTENT_RESPONSE
                documented = {int(code) for code in responses}
                for status in error_statuses(method, path, operation, rule.endpoint):
                    if status not in documented:  # route-specific documentation wins
                        responses[status] = {**error_object, "description": ERROR_DESCRIPTIONS[status]}
                operation["responses"] = responses
        return paths, components

    def _document_json_responses(self, paths: dict, components: dict) -> None:
        for path, operations in paths.items():
            for method, operation in operations.items():
                if (method, path) not in JSON_RESPONSES or operation["responses"]:
                    continue
                for status, model in JSON_RESPONSES[method, path].items():
                    response_object, model_components = self.build_response_object(model, None)
                    components.update(model_components)
                    operation["responses"][status] = response_object


def merge_same_urls(paths: dict[str, dict]) -> dict[str, dict]:
    """One path per URL: rules that differ only in their parameters' names (Werkzeug
    matches them as one URL, and answers 405 with one Allow for them) are documented
    under the template seen first, their parameters renamed to match it."""
    merged: dict[str, dict] = {}
    template_of: dict[str, str] = {}
    for path, operations in paths.items():
        shape = PARAMETER.sub("{}", path)
        if shape not in template_of:
            template_of[shape] = path
            merged[path] = dict(operations)
            continue
        template = template_of[shape]
        renames = {old[1:-1]: new[1:-1] for old, new in zip(PARAMETER.findall(path), PARAMETER.findall(template), strict=True)}
        for method, operation in operations.items():
            if method in merged[template]:
                raise ValueError(f"{method.upper()} {path} and {template} are the same URL")
            operation = dict(operation)
            operation["parameters"] = [{**p, "name": renames.get(p["name"], p["name"])} if p.get("in") == "path" else p
                                       for p in operation.get("parameters", [])]
            merged[template][method] = operation
    return merged
