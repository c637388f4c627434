"""Walk the app's own URL map, so a route added later cannot go unprotected.

For every route and method: public ones answer without credentials; every other one
answers 401 to no / malformed / expired / revoked credentials, 403 to a key without
the scope it needs, and 404 (never the data) when it names another user's resource.
"""

from __future__ import annotations

import datetime as dt
import re

import jwt
import pytest
from quart.testing.connections import WebsocketResponseError

from app.auth.policy import AUTHENTICATED, PUBLIC, required_scope
from app.auth.principal import SCOPES
from app.wiring import current_runtime
from tests.auth.conftest import make_key

# Bodies that pass validation, so a 404 comes from the ownership check, not from a 400.
VALID_BODIES = {
    "messages.create_message": {"content": "hi"},
    "agents.set_agent_capabilities": {"capability_ids": []},
    "llm.create_model": {"model_id": "m"},
    "agent_runtime.update_metadata": {"session_name": "x"},
    "agent_runtime.post_session_event": "hook",
    "agentspec.invoke": {"input": "hi"},
    "agentspec.stream": {"input": "hi"},
    "agentspec.continue_session": {"input": "hi"},
    "pipelines.replace_pipeline": {"name": "p", "steps": [{"name": "s", "agent": "a"}]},
    "pipelines.run_pipeline": {"input": "hi"},
}
# Routes that answer for a session without revealing whether it exists.
NO_404_BY_DESIGN = {"agent_runtime.session_status"}
# Routes that create the session they name when it is unknown: another user's id is taken
# (409 "Session already exists", §8.5), still showing nothing of it.
ID_TAKEN = {"agent_runtime.post_session_event"}
# Public routes whose own answer to an empty request is a 401 (no refresh token given).
OWN_401 = {"auth.refresh"}


def keys_lacking(policy: str, narrow: dict[str, str]) -> list[str]:
    """Keys that must be refused: another family's scope, and read-only for a write route."""
    family, _, action = policy.partition(":")
    other = {"agents": "llm:read", "sessions": "agents:read", "llm": "sessions:read"}.get(family, "agents:read")
    lacking = [narrow[other]]
    if action == "write":
        lacking.append(narrow[f"{family}:read"])
    return lacking


@pytest.fixture
async def bobs(client, bob):
    """One of each resource, owned by Bob."""
    h = bob.headers
    provider = await (await client.post("/v1/llm-providers", json={"name": "p", "provider_type": "openai", "api_key": "sk-bob-secret-key"}, headers=h)).get_json()
    model = await (await client.post(f"/v1/llm-providers/{provider['id']}/models", json={"model_id": "m"}, headers=h)).get_json()
    agent = await (await client.post("/v1/agents", json={"name": "a", "system_prompt": "p"}, headers=h)).get_json()
    session = await (await client.post(f"/v1/agents/{agent['id']}/sessions", json={}, headers=h)).get_json()
    key = await (await client.post("/v1/auth/api-keys", json={"name": "k", "scopes": ["*"]}, headers=h)).get_json()
    mcp = await (await client.post("/v1/mcp-servers", json={"name": "m", "transport": "http", "url": "http://127.0.0.1:1/mcp"}, headers=h)).get_json()
    return {"server_id": mcp["id"], "agent_id": agent["id"], "session_id": session["id"], "provider_id": provider["id"],
            "model_id": model["id"], "key_id": key["id"], "name": "swagger-ui.css", "provider": "google",
            "agent_ref": agent["id"], "call_id": "call_1"}


def routes(app):
    for rule in app.url_map.iter_rules():
        if rule.websocket:
            continue
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            yield rule, method


def fill(rule, values) -> str:
    return re.sub(r"<(?:[^:>]*:)?([^>]+)>", lambda m: str(values[m.group(1)]), rule.rule)


async def call(client, method, path, headers=None, body=None):
    return await client.open(path, method=method, headers=headers or {}, json=body if method != "GET" else None)


async def test_every_route_is_protected(app, client, alice, bobs):
    secret = current_runtime(app).settings.jwt_secret.get_secret_value()
    claims = jwt.decode(alice.access, options={"verify_signature": False})
    expired = jwt.encode({**claims, "exp": dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5)}, secret, algorithm="HS256")
    revoked_key = await make_key(client, alice, ["*"])
    keys = (await (await client.get("/v1/auth/api-keys", headers=alice.headers)).get_json())["data"]
    await client.delete(f"/v1/auth/api-keys/{keys[0]['id']}", headers=alice.headers)
    narrow = {scope: await make_key(client, alice, [scope]) for scope in SCOPES if scope != "admin"}
    bad_credentials = {
        "none": {}, "malformed": {"Authorization": "Bearer not.a.jwt"}, "garbage": {"Authorization": "Basic abc"},
        "expired": {"Authorization": f"Bearer {expired}"}, "revoked key": {"X-API-Key": revoked_key},
        "unknown key": {"X-API-Key": "evr_" + "0" * 64},
    }
    checked = 0
    for rule, method in routes(app):
        policy = required_scope(rule.endpoint, method)
        path = fill(rule, bobs)
        where = f"{method} {rule.rule}"
        if policy == PUBLIC:
            response = await call(client, method, path, body={})
            assert response.status_code != 403 and (response.status_code != 401 or rule.endpoint in OWN_401), where
            continue
        for label, headers in bad_credentials.items():
            response = await call(client, method, path, headers, {})
            assert response.status_code == 401, f"{where} with {label} credentials: {response.status_code}"
        if policy != AUTHENTICATED:
            for key in keys_lacking(policy, narrow):
                response = await call(client, method, path, {"X-API-Key": key}, {})
                assert response.status_code == 403, f"{where} with a key lacking {policy}: {response.status_code}"
        if re.search(r"<[^>]*(_id|name)>", rule.rule) and rule.endpoint not in NO_404_BY_DESIGN and "<path:" not in rule.rule:
            body = VALID_BODIES.get(rule.endpoint, {})
            if body == "hook":
                body = {"event_type": "pre_tool", "session_id": bobs["session_id"], "session_name": "x",
                        "timestamp": "2025-01-01T00:00:00Z"}
            response = await call(client, method, path, alice.headers, body)
            expected = 409 if rule.endpoint in ID_TAKEN else 404
            assert response.status_code == expected, f"{where} on Bob's resource as Alice: {response.status_code}"
            assert "sk-bob" not in await response.get_data(as_text=True)
        checked += 1
    assert checked > 40  # the walk really covered the API


async def test_websocket_is_refused_before_the_handshake(client, alice):
    reader = await make_key(client, alice, ["agents:read"])  # lacks sessions:read
    for headers, status in (({}, 401), ({"Authorization": "Bearer nope.nope.nope"}, 401), ({"X-API-Key": reader}, 403)):
        with pytest.raises(WebsocketResponseError) as refused:
            async with client.websocket("/ws", headers=headers) as ws:
                await ws.receive()
        assert refused.value.response.status_code == status
        # Reported: a refused handshake had none of the headers of every other response
        # (§8.8), nor its request id, and was not counted in /v1/metrics.
        refusal = refused.value.response.headers
        assert refusal["X-Content-Type-Options"] == "nosniff" and refusal["X-Frame-Options"] == "DENY"
        assert len(refusal["X-Request-ID"]) == 32
    registry = client.app.extensions["runtime"].metrics.registry  # /v1/metrics is for admins; Alice is not
    assert registry.get_sample_value("agentspec_requests_total", {"method": "GET", "route": "/ws", "status": "401"}) == 2
    assert registry.get_sample_value("agentspec_requests_total", {"method": "GET", "route": "/ws", "status": "403"}) == 1
    async with client.websocket(f"/ws?access_token={alice.access}") as ws:
        assert '"init"' in await ws.receive()
