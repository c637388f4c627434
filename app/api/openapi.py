"""OpenAPI tweaks in one place: every /v1 operation documents the shared error shape,
routes marked `@no_content` document a bodiless 204 (quart-schema has no response model
for them), and responses quart-schema cannot see (text, streams, plain dicts) are added."""

from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel
from quart_schema.openapi import OpenAPIProvider

from app.api.common import ErrorResponse

ERROR_STATUSES = {400: "Invalid request", 404: "Not found", 500: "Internal error"}
NO_CONTENT_RESPONSE = {"description": "No content: the body is empty"}
NO_CONTENT_ATTRIBUTE = "_answers_no_content"

# Routes whose success body is not JSON (quart-schema only knows JSON models).
TEXT_RESPONSES = {
    "/v1/metrics": ("text/plain; version=0.0.4", "Prometheus text exposition"),
    "/v1/agents/{agent_ref}/stream": ("text/event-stream", "SSE: token, tool_call, tool_result, error, done"),
    "/v1/sessions/{session_id}/sse": ("text/event-stream", "SSE: the session's events (§4.4 of docs/api.md)"),
}
# Routes that answer either their JSON model or a stream (?format=, else Accept).
ALSO_STREAMED = {"/v1/sessions/{session_id}/events", "/v1/agents/{agent_id}/sessions/{session_id}/events"}


class DeletedCounts(BaseModel):
    session: bool
    events_count: int


class AgentRuntimeSessionDeleted(BaseModel):
    """The session is gone, with its events and messages."""

    ok: bool
    session_id: str
    deleted: DeletedCounts


# Agent Runtime handlers return plain dicts, so quart-schema knows nothing of their bodies;
# a route that documents its own response (document_response) wins over this table.
JSON_RESPONSES = {
    ("delete", "/sessions/{session_id}"): (200, AgentRuntimeSessionDeleted),
}

F = TypeVar("F")


def no_content(func: F) -> F:
    """Mark a route whose success is 204 with an empty body, so the document says exactly
    that instead of guessing from the absence of a response model."""
    setattr(func, NO_CONTENT_ATTRIBUTE, True)
    return func


class RuntimeOpenAPIProvider(OpenAPIProvider):
    def build_paths(self, rule):
        paths, components = super().build_paths(rule)
        self._document_json_responses(paths, components)
        if not rule.rule.startswith("/v1/"):
            return paths, components
        answers_no_content = getattr(self._app.view_functions[rule.endpoint], NO_CONTENT_ATTRIBUTE, False)
        error_object, error_components = self.build_response_object(ErrorResponse, None)
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
                if answers_no_content:
                    responses[204] = NO_CONTENT_RESPONSE
                elif method != "delete" and not any(str(code).startswith("2") for code in responses):
                    # Unmarked routes without a model (logout) are still taken to be 204s; a
                    # DELETE must say what it answers (tests/api/test_openapi_deletes.py).
                    responses[204] = NO_CONTENT_RESPONSE
                for status, description in ERROR_STATUSES.items():
                    responses.setdefault(status, {**error_object, "description": description})
                operation["responses"] = responses
        return paths, components

    def _document_json_responses(self, paths: dict, components: dict) -> None:
        for path, operations in paths.items():
            for method, operation in operations.items():
                if (method, path) not in JSON_RESPONSES or operation["responses"]:
                    continue
                status, model = JSON_RESPONSES[method, path]
                response_object, model_components = self.build_response_object(model, None)
                components.update(model_components)
                operation["responses"] = {status: response_object}
