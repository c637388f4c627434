"""CORS_ORIGINS and /ws (issue 11): a WebSocket without Origin (not a browser) or from the
server's own origin always connects; a listed origin connects; any other origin gets a 403
with a JSON error naming it, before the upgrade. Without CORS_ORIGINS every origin connects,
as before. HTTP CORS headers are unchanged.

Checked through Quart's test client and against a real server over a real WebSocket."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from quart.testing.connections import WebsocketResponseError
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from app.api.cors import is_same_origin
from app.main import create_app
from tests.live_server import LiveServer

LISTED = "https://elsewhere.example"
UNLISTED = "https://evil.example"


# --- the same-origin rule --------------------------------------------------------------

@pytest.mark.parametrize("origin, scheme, host, same", [
    ("http://127.0.0.1:9000", "ws", "127.0.0.1:9000", True),
    ("http://localhost", "ws", "localhost", True),
    ("http://localhost:80", "ws", "localhost", True),  # default ports made explicit
    ("https://rt.example", "wss", "rt.example:443", True),
    ("http://RT.example:8080", "ws", "rt.example:8080", True),  # host names are case-insensitive
    ("http://[::1]:9000", "ws", "[::1]:9000", True),
    ("http://127.0.0.1:9001", "ws", "127.0.0.1:9000", False),  # another port
    ("https://rt.example", "ws", "rt.example", False),  # another scheme (e.g. TLS ended at a proxy)
    ("http://rt.example.evil", "ws", "rt.example", False),
    ("null", "ws", "rt.example", False),  # an opaque origin (sandboxed frame, file://)
    ("http://rt.example", "ws", None, False),  # no Host header: nothing to compare with
    ("http://rt.example", "ws", "rt.example:notaport", False),
])
def test_same_origin_rule(origin, scheme, host, same):
    assert is_same_origin(origin, scheme, host) is same


# --- through Quart's test client (Host: localhost, scheme ws) ---------------------------

@pytest.fixture
async def cors_client(settings):
    app = create_app(settings.replace(cors_origins=[LISTED]))
    async with app.test_app():
        yield app.test_client()


async def _init(client, headers: dict[str, str]) -> dict:
    async with client.websocket("/ws", headers=headers) as ws:
        return json.loads(await ws.receive())


@pytest.mark.parametrize("headers", [{}, {"Origin": "http://localhost"}, {"Origin": LISTED}],
                         ids=["no-origin", "same-origin", "listed-origin"])
async def test_test_client_allowed(cors_client, headers):
    assert (await _init(cors_client, headers))["type"] == "init"


async def test_test_client_unlisted_origin_is_refused_with_a_json_403(cors_client):
    with pytest.raises(WebsocketResponseError) as refused:
        await _init(cors_client, {"Origin": UNLISTED})
    response = refused.value.response
    assert response.status_code == 403
    body = await response.get_json()
    assert body["status"] == 403 and body["error"]["code"] == "origin_not_allowed"
    assert UNLISTED in body["error"]["message"] and "CORS_ORIGINS" in body["error"]["message"]


async def test_test_client_http_cors_unchanged(cors_client):
    listed = await cors_client.get("/health", headers={"Origin": LISTED})
    assert listed.headers["Access-Control-Allow-Origin"] == LISTED
    assert "X-Request-ID" in listed.headers["Access-Control-Expose-Headers"]
    preflight = await cors_client.options("/v1/agents", headers={
        "Origin": LISTED, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"})
    assert preflight.headers["Access-Control-Allow-Origin"] == LISTED
    assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
    unlisted = await cors_client.get("/health", headers={"Origin": UNLISTED})
    assert unlisted.status_code == 200 and "Access-Control-Allow-Origin" not in unlisted.headers


async def test_test_client_origin_is_checked_before_auth_and_does_not_replace_it(settings):
    app = create_app(settings.replace(cors_origins=[LISTED], auth_mode="admin", auth_admin_email="admin@example.com",
                                      auth_admin_password="admin-password-1", jwt_secret="test-jwt-secret-0123456789abcdef"))
    async with app.test_app():
        client = app.test_client()
        # A page of another site is told the real reason, whatever credential it has...
        with pytest.raises(WebsocketResponseError) as refused:
            await _init(client, {"Origin": UNLISTED})
        assert refused.value.response.status_code == 403
        assert (await refused.value.response.get_json())["error"]["code"] == "origin_not_allowed"
        # ...and an allowed origin still needs a credential.
        for headers in ({}, {"Origin": "http://localhost"}, {"Origin": LISTED}):
            with pytest.raises(WebsocketResponseError) as unauthenticated:
                await _init(client, headers)
            assert unauthenticated.value.response.status_code == 401, headers


# --- preflights with authentication on (auth report item 3) ----------------------------

@pytest.fixture
async def guarded_client(settings):
    app = create_app(settings.replace(cors_origins=[LISTED], auth_mode="admin", auth_admin_email="admin@example.com",
                                      auth_admin_password="admin-password-1", jwt_secret="test-jwt-secret-0123456789abcdef"))
    async with app.test_app():
        yield app.test_client(use_cookies=False)


def _preflight(method: str, headers: str, origin: str = LISTED) -> dict[str, str]:
    return {"Origin": origin, "Access-Control-Request-Method": method, "Access-Control-Request-Headers": headers}


@pytest.mark.parametrize("path, method", [("/v1/agents", "POST"), ("/v1/sessions/s-1/messages", "POST"),
                                          ("/sessions/s-1", "DELETE"), ("/v1/auth/api-keys", "POST"),
                                          ("/v1/metrics", "GET")])
async def test_preflight_from_a_listed_origin_needs_no_credentials(guarded_client, path, method):
    """The report's request: AUTH_MODE=admin, CORS_ORIGINS=https://good.example, a preflight
    for a POST with `authorization, content-type` was a 401, so no browser sent the POST."""
    response = await guarded_client.options(path, headers=_preflight(method, "authorization, content-type"))
    assert response.status_code == 204
    assert response.headers["Access-Control-Allow-Origin"] == LISTED
    assert method in response.headers["Access-Control-Allow-Methods"]
    assert {"authorization", "content-type"} <= {h.strip().lower() for h in
                                                 response.headers["Access-Control-Allow-Headers"].split(",")}
    assert await response.get_data() == b""  # no handler ran, nothing about the resource is said
    assert "Allow" not in response.headers and response.headers["X-Request-ID"]


async def test_preflight_from_an_unlisted_origin_gets_no_cors_headers(guarded_client):
    response = await guarded_client.options("/v1/agents", headers=_preflight("POST", "authorization", UNLISTED))
    assert response.status_code == 204 and await response.get_data() == b""
    assert not [name for name in response.headers.keys() if name.lower().startswith("access-control-")]


async def test_only_preflights_skip_authentication(guarded_client):
    # The real request still needs its credential, and gets the CORS headers with its 401.
    post = await guarded_client.post("/v1/agents", json={"name": "a", "system_prompt": ""}, headers={"Origin": LISTED})
    assert post.status_code == 401 and (await post.get_json())["error"]["code"] == "unauthorized"
    assert post.headers["Access-Control-Allow-Origin"] == LISTED
    # An OPTIONS that is no preflight (no Access-Control-Request-Method) is an ordinary request.
    plain = await guarded_client.options("/v1/agents", headers={"Origin": LISTED})
    assert plain.status_code == 401
    # A path with no route stays a 404.
    missing = await guarded_client.options("/v1/nothing-here", headers=_preflight("POST", "authorization"))
    assert missing.status_code == 404


@pytest.mark.parametrize("origin", [None, "http://localhost", LISTED, UNLISTED, "null"])
async def test_test_client_without_cors_origins_every_origin_connects(client, origin):
    headers = {"Origin": origin} if origin else {}
    assert (await _init(client, headers))["type"] == "init"
    rest = await client.get("/health", headers=headers)
    assert "Access-Control-Allow-Origin" not in rest.headers


# --- against a real server over a real WebSocket ---------------------------------------

@pytest.fixture(scope="module")
def cors_server(tmp_path_factory):
    live = LiveServer({"CORS_ORIGINS": LISTED}, tmp_path_factory.mktemp("cors-server")).start()
    yield live
    live.stop()


@pytest.fixture(scope="module")
def open_server(tmp_path_factory):
    live = LiveServer({"CORS_ORIGINS": ""}, tmp_path_factory.mktemp("open-server")).start()
    yield live
    live.stop()


def ws_url(server) -> str:
    return server.url.replace("http://", "ws://") + "/ws"


async def _live_init(server, origin: str | None) -> dict:
    async with connect(ws_url(server), origin=origin, open_timeout=10) as ws:
        return json.loads(await asyncio.wait_for(ws.recv(), 10))


async def test_live_no_origin_same_origin_and_listed_origin_connect(cors_server):
    async with httpx.AsyncClient(base_url=cors_server.url) as http:
        await http.post("/sessions", json={"session_id": "cors-1", "session_name": "seen"})
    for origin in (None, cors_server.url, LISTED):  # cors_server.url is http://127.0.0.1:<port>
        init = await _live_init(cors_server, origin)
        assert init["type"] == "init", origin
        assert "cors-1" in [s["session_id"] for s in init["sessions"]], origin


async def test_live_unlisted_origin_gets_a_json_403_naming_it(cors_server):
    for origin in (UNLISTED, "http://127.0.0.1:1", "null"):
        with pytest.raises(InvalidStatus) as refused:
            await _live_init(cors_server, origin)
        response = refused.value.response
        assert response.status_code == 403, origin
        assert response.headers["Content-Type"].startswith("application/json")
        body = json.loads(response.body)
        assert body["status"] == 403 and body["error"]["code"] == "origin_not_allowed", body
        assert repr(origin) in body["error"]["message"], body


def test_live_http_cors_unchanged(cors_server):
    listed = httpx.get(cors_server.url + "/health", headers={"Origin": LISTED})
    assert listed.headers["access-control-allow-origin"] == LISTED
    unlisted = httpx.get(cors_server.url + "/health", headers={"Origin": UNLISTED})
    assert unlisted.status_code == 200 and "access-control-allow-origin" not in unlisted.headers


async def test_live_without_cors_origins_every_origin_connects(open_server):
    for origin in (None, open_server.url, LISTED, UNLISTED):
        assert (await _live_init(open_server, origin))["type"] == "init", origin


def test_live_preflight_with_authentication_on(tmp_path):
    """The report's curl, against a real server in admin mode."""
    server = LiveServer({"CORS_ORIGINS": "https://good.example", "AUTH_MODE": "admin",
                         "AUTH_ADMIN_EMAIL": "admin@example.com", "AUTH_ADMIN_PASSWORD": "admin-password-1"},
                        tmp_path).start()
    try:
        response = httpx.options(server.url + "/v1/agents", headers={
            "Origin": "https://good.example", "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type"})
        assert response.status_code == 204 and response.content == b""
        assert response.headers["access-control-allow-origin"] == "https://good.example"
        assert "POST" in response.headers["access-control-allow-methods"]
        assert "authorization" in response.headers["access-control-allow-headers"].lower()
        assert httpx.get(server.url + "/v1/agents", headers={"Origin": "https://good.example"}).status_code == 401
    finally:
        server.stop()
