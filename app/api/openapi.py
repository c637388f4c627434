"""OpenAPI tweaks in one place: every /v1 operation documents the shared error shape,
and operations that answer 204 say so (quart-schema has no response model for them)."""

from __future__ import annotations

from quart_schema.openapi import OpenAPIProvider

from app.api.common import ErrorResponse

ERROR_STATUSES = {400: "Invalid request", 404: "Not found", 500: "Internal error"}

# Routes whose success body is not JSON (quart-schema only knows JSON models).
TEXT_RESPONSES = {
    "/v1/metrics": ("text/plain; version=0.0.4", "Prometheus text exposition"),
    "/v1/agents/{agent_ref}/stream": ("text/event-stream", "SSE: token, tool_call, tool_result, error, done"),
}


class RuntimeOpenAPIProvider(OpenAPIProvider):
    def build_paths(self, rule):
        paths, components = super().build_paths(rule)
        if not rule.rule.startswith("/v1/"):
            return paths, components
        error_object, error_components = self.build_response_object(ErrorResponse, None)
        components.update(error_components)
        for path, operations in paths.items():
            for operation in operations.values():
                responses = dict(operation["responses"])
                if path in TEXT_RESPONSES:
                    content_type, description = TEXT_RESPONSES[path]
                    responses[200] = {"description": description,
                                      "content": {content_type: {"schema": {"type": "string"}}}}
                if not any(str(code).startswith("2") for code in responses):
                    responses[204] = {"description": "No content"}
                for status, description in ERROR_STATUSES.items():
                    responses.setdefault(status, {**error_object, "description": description})
                operation["responses"] = responses
        return paths, components
