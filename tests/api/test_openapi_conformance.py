"""The OpenAPI document says what the server does: schemathesis, driven by the document,
checks every answer of a real server process against it (status, content type, body
schema) and that none is a 5xx; and the document's models do not shadow each other.

The seed is fixed so a failure reproduces (the output names the request and a curl line);
FUZZ_SEED picks another, CONFORMANCE_EXAMPLES another budget. Streams (SSE) are left out,
as in test_fuzz.py: a generated request would wait on them until its timeout.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from pydantic import BaseModel
from quart_schema.conversion import model_schema
from quart_schema.validation import (
    QUART_SCHEMA_QUERYSTRING_ATTRIBUTE, QUART_SCHEMA_REQUEST_ATTRIBUTE, QUART_SCHEMA_RESPONSE_ATTRIBUTE,
)

from app.api.openapi import ERROR_DESCRIPTIONS, JSON_RESPONSES
from app.auth.principal import SCOPES

SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
# The SSE routes, and the /v1 event pages that stream unless asked for JSON.
STREAMING = r"/sse$|/stream$|^/v1/.*/events$|^/v1/events$"
CHECKS = "response_schema_conformance,status_code_conformance,content_type_conformance,not_a_server_error"
# Narrow exceptions, one operation and one check each (schemathesis.toml [[operations]];
# by operation id, since filters within one entry are or'ed, not and'ed).
OPERATION_EXCEPTIONS = """
# Running a turn needs an LLM model, and this server has none: the turns AgentSpec's routes
# start answer 503 no_model_configured (documented), which is the server working as meant.
[[operations]]
include-operation-id = ["post_invoke", "post_continue_session"]
checks.not_a_server_error.expected-statuses = ["2xx", "3xx", "4xx", "503"]
"""
ADMIN = {"AUTH_MODE": "full", "AUTH_ADMIN_EMAIL": "admin@example.com", "AUTH_ADMIN_PASSWORD": "conformance-password"}


@pytest.fixture
def seeded_server(live_server_factory):
    """Authentication on (so 401/403 are exercised on the auth routes' generated
    credentials), requests carrying an admin's API key, and one of each resource so
    generated ids sometimes hit real rows."""
    server = live_server_factory({"LOG_LEVEL": "WARNING", "RATE_LIMIT_ENABLED": "false", **ADMIN})
    with httpx.Client(base_url=server.url) as client:
        login = client.post("/v1/auth/login", json={"email": ADMIN["AUTH_ADMIN_EMAIL"],
                                                     "password": ADMIN["AUTH_ADMIN_PASSWORD"]}).json()
        key = client.post("/v1/auth/api-keys", json={"name": "conformance", "scopes": sorted(SCOPES)},
                          headers={"Authorization": f"Bearer {login['access_token']}"}).json()
        client.headers["Authorization"] = f"Bearer {key['key']}"
        agent = client.post("/v1/agents", json={"name": "conformance", "system_prompt": "p"}).json()
        client.post("/v1/sessions", json={"agent_id": agent["id"]})
        client.post("/sessions", json={"session_id": "conformance-1", "session_name": "x"})
        client.post("/events", json={"event_type": "message", "session_id": "conformance-1", "session_name": "x",
                                     "timestamp": "2026-01-01T00:00:00Z", "role": "assistant", "content": "hi"})
        client.post("/v1/pipelines", json={"name": "conformance", "steps": [{"name": "a", "agent": "conformance"}]})
        server.headers = {"Authorization": client.headers["Authorization"]}
    return server


def test_every_answer_conforms_to_the_document(seeded_server, tmp_path):
    if not SCHEMATHESIS.exists():
        pytest.fail(f"{SCHEMATHESIS} is missing: pip install -e '.[test]'")
    config = tmp_path / "schemathesis.toml"
    config.write_text(OPERATION_EXCEPTIONS)
    command = [
        str(SCHEMATHESIS), "--config-file", str(config), "run", f"{seeded_server.url}/api-doc/openapi.json",
        "--checks", CHECKS,
        "--max-examples", os.environ.get("CONFORMANCE_EXAMPLES", "10"),
        "--seed", os.environ.get("FUZZ_SEED", "20261130"),
        "--phases", "examples,coverage,fuzzing",
        "--exclude-path-regex", STREAMING,
        "--request-timeout", "10",
        "--workers", "2",
        "--no-color",
        "-H", f"Authorization: {seeded_server.headers['Authorization']}",
    ]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=240)
    output = result.stdout + result.stderr
    server_errors = [line for line in seeded_server.log().splitlines()
                     if "unhandled error" in line]
    assert result.returncode == 0, f"schemathesis found failures:\n{output[-20000:]}\nserver log:\n" + "\n".join(server_errors)
    assert not server_errors, "\n".join(server_errors)


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
