"""The OpenAPI document says what the server does: schemathesis, driven by the document,
checks every answer of a real server process against it (status, content type, body
schema) and that none is a 5xx; and the document's models do not shadow each other.

The seed is fixed so a failure reproduces (the output names the request and a curl line);
FUZZ_SEED picks another, CONFORMANCE_EXAMPLES another budget. Streams (SSE) are left out,
as in test_fuzz.py: a generated request would wait on them until its timeout.
"""

from __future__ import annotations

import os

import pytest
from pydantic import BaseModel
from quart_schema.conversion import model_schema
from quart_schema.validation import (
    QUART_SCHEMA_QUERYSTRING_ATTRIBUTE,
    QUART_SCHEMA_REQUEST_ATTRIBUTE,
    QUART_SCHEMA_RESPONSE_ATTRIBUTE,
)

from app.api.openapi import ERROR_DESCRIPTIONS, JSON_RESPONSES
from tests.schemathesis_run import ADMIN, assert_clean_run, seed

# The SSE routes, and the /v1 event pages that stream unless asked for JSON.
STREAMING = r"/sse$|/stream$|^/v1/.*/events$|^/v1/events$"
CHECKS = "response_schema_conformance,status_code_conformance,content_type_conformance,not_a_server_error"
# (The one narrow exception, AgentSpec turns answering 503 no_model_configured on a server
# without a model, is tests/schemathesis_run.py's OPERATION_EXCEPTIONS.)


@pytest.fixture
def seeded_server(live_server_factory):
    """Authentication on (so 401/403 are exercised on the auth routes' generated
    credentials), requests carrying an admin's API key."""
    server = live_server_factory({"LOG_LEVEL": "WARNING", "RATE_LIMIT_ENABLED": "false", **ADMIN})
    server.headers = seed(server, "conformance", admin=True)
    return server


def test_every_answer_conforms_to_the_document(seeded_server, tmp_path):
    assert_clean_run(seeded_server, seeded_server.headers, tmp_path, checks=CHECKS, exclude_paths=STREAMING,
                     examples=os.environ.get("CONFORMANCE_EXAMPLES", "10"), seed_value="20261130")


# --- the document's models -------------------------------------------------------------

def _route_models(app) -> list[tuple[type[BaseModel], str]]:
    """Every model a route validates or documents, with the schema mode it is shown in."""
    models = []
    for rule in app.url_map.iter_rules():
        func = app.view_functions[rule.endpoint]
        if (request := getattr(func, QUART_SCHEMA_REQUEST_ATTRIBUTE, None)) is not None:
            models.append((request[0], "validation"))
        if (query := getattr(func, QUART_SCHEMA_QUERYSTRING_ATTRIBUTE, None)) is not None:
            models.append((query, "validation"))
        for model, _headers in getattr(func, QUART_SCHEMA_RESPONSE_ATTRIBUTE, {}).values():
            models.append((model, "serialization"))
    models += [(model, "serialization") for table in JSON_RESPONSES.values() for model in table.values()]
    return models


def _nested_models(model: type[BaseModel], seen: set[type[BaseModel]]) -> None:
    """`model` and every model class its fields refer to, however deeply."""
    if model in seen:
        return
    seen.add(model)

    def walk(annotation) -> None:
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            _nested_models(annotation, seen)
        for arg in getattr(annotation, "__args__", ()) or ():
            walk(arg)
        for meta in getattr(annotation, "__metadata__", ()) or ():
            walk(meta)

    for field in model.model_fields.values():
        walk(field.annotation)
    root = getattr(model, "__pydantic_generic_metadata__", {}) or {}
    for arg in root.get("args", ()):
        walk(arg)


async def test_no_two_models_share_a_name(app):
    """quart-schema merges every route's definitions into one components map by name, so
    two classes with one name silently show one's schema for the other's field (sessions'
    usage shown with pipelines' total_tokens)."""
    seen: set[type[BaseModel]] = set()
    for model, _mode in _route_models(app):
        _nested_models(model, seen)
    by_name: dict[str, set[str]] = {}
    for model in seen:
        by_name.setdefault(model.__name__, set()).add(f"{model.__module__}.{model.__qualname__}")
    shared = {name: classes for name, classes in by_name.items() if len(classes) > 1}
    assert not shared, f"model names used by more than one class: {shared}"


async def test_every_component_is_the_schema_of_its_model(app, client):
    """Whatever the class names: each route model's definitions are in the document
    exactly as the model itself gives them (a collision would replace one)."""
    doc = await (await client.get("/api-doc/openapi.json")).get_json()
    components = doc["components"]["schemas"]
    preference = app.config["QUART_SCHEMA_CONVERSION_PREFERENCE"]
    for model, mode in _route_models(app):
        definitions = model_schema(model, preference=preference, schema_mode=mode).get("$defs", {})
        for name, definition in definitions.items():
            assert components.get(name) == definition, f"{name} (from {model.__name__}, {mode}) differs in the document"


async def test_one_path_per_url(app, client):
    """Rules that differ only in their parameters' names are one URL (one Allow)."""
    doc = await (await client.get("/api-doc/openapi.json")).get_json()
    import re
    shapes = [re.sub(r"\{[^}]+\}", "{}", path) for path in doc["paths"]]
    assert len(shapes) == len(set(shapes)), sorted(s for s in shapes if shapes.count(s) > 1)
    everruns = doc["paths"]["/v1/agents/{agent_id}/sessions/{session_id}"]
    assert {"get", "patch", "delete", "post"} <= set(everruns)  # AgentSpec's POST (continue) is here too
    names = {p["name"] for p in everruns["post"]["parameters"] if p["in"] == "path"}
    assert names == {"agent_id", "session_id"}


async def test_errors_are_documented_in_each_api_s_shape(client):
    doc = await (await client.get("/api-doc/openapi.json")).get_json()
    components = doc["components"]["schemas"]

    def error_properties(response):
        schema = response["content"]["application/json"]["schema"]
        if "$ref" in schema:
            schema = components[schema["$ref"].rsplit("/", 1)[1]]
        return set(schema["properties"])

    for path, operations in doc["paths"].items():
        if not path.startswith(("/v1/", "/sessions", "/events")):
            continue
        for method, operation in operations.items():
            responses = operation["responses"]
            for status in ("400", "500", "503"):
                assert status in responses, (method, path, status)
            expected = {"detail"} if not path.startswith("/v1/") else {"error", "message", "status"}
            for status, response in responses.items():
                if int(status) >= 400 and int(status) in ERROR_DESCRIPTIONS:
                    assert error_properties(response) == expected, (method, path, status)
    ambiguous = doc["paths"]["/v1/agents/{agent_id}/sessions"]["get"]["responses"]
    assert "409" in ambiguous and "ambiguous_agent_name" in ambiguous["409"]["description"]
    # Reported by a client test: pipeline reads answer 409 once two pipelines share a name (10.5).
    for read in ("/v1/pipelines/{name}", "/v1/pipelines/{name}/status", "/v1/pipelines/{name}/runs"):
        assert "ambiguous_pipeline_name" in doc["paths"][read]["get"]["responses"]["409"]["description"], read
    assert "429" in doc["paths"]["/v1/auth/login"]["post"]["responses"]
    assert "413" in doc["paths"]["/sessions"]["post"]["responses"]


async def test_patch_schemas_refuse_null_where_the_server_does(client):
    doc = await (await client.get("/api-doc/openapi.json")).get_json()
    from app.api.agents import AgentPatch
    from app.api.llm import ModelPatch, ProviderPatch
    from app.api.pipelines import PipelinePatch
    from app.api.sessions import SessionPatch
    for model in (AgentPatch, ProviderPatch, ModelPatch, PipelinePatch, SessionPatch):
        properties = model.model_json_schema()["properties"]
        for name in model.NOT_NULL:
            assert "null" not in str(properties[name]), (model.__name__, name, properties[name])
        nullable = [name for name in properties if name not in model.NOT_NULL and "null" in str(properties[name])]
        for name in nullable:  # the others may still be cleared
            model.model_validate({name: None})
    body = doc["paths"]["/v1/pipelines/{name}"]["patch"]["requestBody"]["content"]["application/json"]["schema"]
    assert body["properties"]["name"].get("type") == "string"
    wait = doc["paths"]["/v1/pipelines/{name}/run"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert wait["properties"]["wait"]["type"] == "boolean"


async def test_wait_is_a_strict_boolean(client):
    await client.post("/v1/pipelines", json={"name": "p", "steps": [{"name": "a", "agent": "nobody"}]})
    for wait in (0, 1, "true", "false"):
        response = await client.post("/v1/pipelines/p/run", json={"input": "x", "wait": wait})
        assert response.status_code == 400, (wait, await response.get_data(as_text=True))
