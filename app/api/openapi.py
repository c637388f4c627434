"""OpenAPI tweaks in one place: every /v1 operation documents the shared error shape,
and operations that answer 204 say so (quart-schema has no response model for them)."""

from __future__ import annotations

from quart_schema.openapi import OpenAPIProvider

from app.api.common import ErrorResponse

ERROR_STATUSES = {400: "Invalid request", 404: "Not found", 500: "Internal error"}


class RuntimeOpenAPIProvider(OpenAPIProvider):
    def build_paths(self, rule):
        paths, components = super().build_paths(rule)
        if not rule.rule.startswith("/v1/"):
            return paths, components
        error_object, error_components = self.build_response_object(ErrorResponse, None)
        components.update(error_components)
        for operations in paths.values():
            for operation in operations.values():
                responses = dict(operation["responses"])
                if not any(str(code).startswith("2") for code in responses):
                    responses[204] = {"description": "No content"}
                for status, description in ERROR_STATUSES.items():
                    responses.setdefault(status, {**error_object, "description": description})
                operation["responses"] = responses
        return paths, components
