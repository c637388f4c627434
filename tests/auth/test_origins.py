"""Requests the browser authenticates by itself with the dashboard's `evr_access` cookie
(auth report item 2: cross-site WebSocket hijacking and form CSRF). With CORS_ORIGINS
empty, a page on another port of the same host could open /ws with the signed-in user's
cookie and read the whole live feed, and submit a plain form to POST routes without a
body. Now a cookie-authenticated /ws handshake or write from a foreign origin is a 403
`origin_not_allowed`; the dashboard's own (same-origin) requests, header credentials,
`?access_token=` and reads are unaffected.

Quart's test client sends `Host: localhost` (scheme http, ws for WebSockets), so the
server's own origin is http://localhost. Plus one handshake against a real server."""

from __future__ import annotations

import asyncio
import json

import pytest
from quart.testing.connections import WebsocketResponseError
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.auth.conftest import ADMIN, register
from tests.live_server import LiveServer

OWN = "http://localhost"
SAME_SITE = "http://localhost:3000"  # another port of the same host: the SameSite cookie goes along
EVIL = "http://evil.example"
LISTED = "https://dash.example.com"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def cookie(account) -> dict[str, str]:
    return {"Cookie": f"evr_access={account.access}"}


async def _init(client, path: str = "/ws", headers: dict[str, str] | None = None) -> dict:
    async with client.websocket(path, headers=headers or {}) as ws:
        return json.loads(await ws.receive())


async def _refused_handshake(client, headers: dict[str, str], path: str = "/ws"):
    with pytest.raises(WebsocketResponseError) as refused:
        await _init(client, path, headers)
    return refused.value.response.status_code, await refused.value.response.get_json()


async def _alice_session(client, alice) -> str:
    agent = await (await client.post("/v1/agents", json={"name": "a", "system_prompt": "p"},
                                     headers=alice.headers)).get_json()
    session = await (await client.post(f"/v1/agents/{agent['id']}/sessions", json={"title": "secret-title"},
                                       headers=alice.headers)).get_json()
    return session["id"]


# --- /ws ---------------------------------------------------------------------------------

@pytest.mark.parametrize("origin", [SAME_SITE, EVIL, "null", "https://localhost"])
async def test_cookie_handshake_from_a_foreign_origin_is_refused(client, alice, origin):
    await _alice_session(client, alice)
    status, body = await _refused_handshake(client, {**cookie(alice), "Origin": origin})
    assert status == 403
    assert body["status"] == 403 and body["error"]["code"] == "origin_not_allowed"
    assert repr(origin) in body["error"]["message"] and body["message"] == body["error"]["message"]
    assert "secret-title" not in json.dumps(body)


@pytest.mark.parametrize("headers", [{"Origin": OWN}, {}], ids=["own-origin", "no-origin"])
async def test_cookie_handshake_from_the_dashboard_or_a_non_browser_connects(client, alice, headers):
    await _alice_session(client, alice)
    init = await _init(client, headers={**cookie(alice), **headers})
    assert init["type"] == "init" and "secret-title" in json.dumps(init["sessions"])


async def test_explicit_credentials_from_a_foreign_origin_still_connect(client, alice):
    """A page that sends the credential itself (header or ?access_token=) is no hijack,
    even when the browser also attaches the cookie."""
    await _alice_session(client, alice)
    for path, headers in (("/ws", {**alice.headers, **cookie(alice)}),
                          (f"/ws?access_token={alice.access}", cookie(alice)),
                          (f"/ws?access_token={alice.access}", {})):
        init = await _init(client, path, {**headers, "Origin": SAME_SITE})
        assert init["type"] == "init", (path, headers)


@pytest.mark.parametrize("origins, allowed", [([LISTED], True), (["*"], False)], ids=["listed", "star"])
async def test_a_listed_origin_may_use_the_cookie_but_star_does_not_count(app_factory, origins, allowed):
    app = await app_factory(cors_origins=origins)
    client = app.test_client(use_cookies=False)
    alice = await register(client, "alice@example.com")
    headers = {**cookie(alice), "Origin": LISTED}
    if allowed:
        assert (await _init(client, headers=headers))["type"] == "init"
    else:
        status, body = await _refused_handshake(client, headers)
        assert (status, body["error"]["code"]) == (403, "origin_not_allowed")


async def test_live_server_refuses_the_reported_handshake(tmp_path):
    """The report's exact request, over a real WebSocket: AUTH_MODE=full, CORS_ORIGINS
    unset, alice's access token in the cookie, Origin http://localhost:3000."""
    server = LiveServer({"AUTH_MODE": "full", "AUTH_ADMIN_EMAIL": ADMIN[0], "AUTH_ADMIN_PASSWORD": ADMIN[1],
                         "RATE_LIMIT_ENABLED": "false"}, tmp_path).start()
    try:
        import httpx

        async with httpx.AsyncClient(base_url=server.url) as http:
            login = await http.post("/v1/auth/login", json={"email": ADMIN[0], "password": ADMIN[1]})
            token = login.json()["access_token"]
        url = server.url.replace("http://", "ws://") + "/ws"
        with pytest.raises(InvalidStatus) as refused:
            async with connect(url, additional_headers={"Cookie": f"evr_access={token}"}, origin=SAME_SITE,
                               open_timeout=10):
                pass
        body = json.loads(refused.value.response.body)
        assert refused.value.response.status_code == 403 and body["error"]["code"] == "origin_not_allowed"
        async with connect(url, additional_headers={"Cookie": f"evr_access={token}"}, origin=server.url,
                           open_timeout=10) as ws:  # the dashboard's own origin
            assert json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "init"
    finally:
        server.stop()


# --- unsafe HTTP methods -----------------------------------------------------------------

async def test_cookie_form_posts_from_a_foreign_origin_are_refused(client, alice):
    session_id = await _alice_session(client, alice)
    await client.post("/sessions", json={"session_id": "ext-a", "session_name": "x"}, headers=alice.headers)
    cancel = await client.post(f"/v1/sessions/{session_id}/cancel", data="a=b",
                               headers={**cookie(alice), "Origin": EVIL, **FORM})
    assert cancel.status_code == 403
    body = await cancel.get_json()
    assert body["error"]["code"] == "origin_not_allowed" and repr(EVIL) in body["message"]
    stop = await client.post("/sessions/ext-a/stop", headers={**cookie(alice), "Origin": SAME_SITE})
    assert stop.status_code == 403
    assert repr(SAME_SITE) in (await stop.get_json())["detail"]  # the Agent Runtime API's error shape
    logout = await client.post("/v1/auth/logout", headers={**cookie(alice), "Origin": EVIL})
    assert logout.status_code == 403
    assert (await client.get("/v1/auth/me", headers=alice.headers)).status_code == 200  # still signed in


@pytest.mark.parametrize("headers", [{"Sec-Fetch-Site": "cross-site"}, {"Sec-Fetch-Site": "same-site"},
                                     {"Origin": "null"}, {"Origin": "null", "Sec-Fetch-Site": "cross-site"}],
                         ids=["cross-site", "same-site", "null-origin", "null-origin-cross-site"])
async def test_cookie_writes_without_a_usable_origin_are_judged_by_sec_fetch_site(client, alice, headers):
    response = await client.post("/v1/auth/logout", headers={**cookie(alice), **headers})
    assert response.status_code == 403
    assert (await response.get_json())["error"]["code"] == "origin_not_allowed"
    assert (await client.get("/v1/auth/me", headers=alice.headers)).status_code == 200


@pytest.mark.parametrize("headers", [{"Origin": OWN}, {"Origin": OWN, "Sec-Fetch-Site": "same-origin"},
                                     {"Sec-Fetch-Site": "same-origin"}, {},
                                     # a form post from a page whose Referrer-Policy is no-referrer
                                     {"Origin": "null", "Sec-Fetch-Site": "same-origin"}],
                         ids=["own-origin", "own-origin-fetch", "same-origin-fetch", "no-browser-headers",
                              "null-origin-same-origin-fetch"])
async def test_the_dashboards_own_cookie_writes_work(client, alice, headers):
    session_id = await _alice_session(client, alice)
    renamed = await client.patch(f"/v1/sessions/{session_id}", json={"title": "renamed"},
                                 headers={**cookie(alice), **headers})
    assert renamed.status_code == 200 and (await renamed.get_json())["title"] == "renamed"
    cancel = await client.post(f"/v1/sessions/{session_id}/cancel", headers={**cookie(alice), **headers})
    assert cancel.status_code == 202


async def test_header_credentials_and_cookie_reads_are_unaffected(client, alice):
    session_id = await _alice_session(client, alice)
    for headers in (alice.headers, {**alice.headers, **cookie(alice)}):
        cancel = await client.post(f"/v1/sessions/{session_id}/cancel", headers={**headers, "Origin": EVIL})
        assert cancel.status_code == 202, headers
    read = await client.get(f"/v1/sessions/{session_id}", headers={**cookie(alice), "Origin": EVIL})
    assert read.status_code == 200 and (await read.get_json())["title"] == "secret-title"
