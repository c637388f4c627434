"""Login, refresh rotation and reuse, logout, cookies, sign-up rules, API keys and scopes."""

from __future__ import annotations

import datetime as dt

import jwt
import pytest

from tests.auth.conftest import ADMIN, PASSWORD, login, make_key


async def test_config_and_health_report_the_mode(client):
    config = await (await client.get("/v1/auth/config")).get_json()
    assert config == {"mode": "full", "password_auth_enabled": True, "oauth_providers": [], "signup_enabled": True}
    assert (await (await client.get("/health")).get_json())["auth_mode"] == "Full"


async def test_login_returns_tokens_and_dashboard_cookies(client, alice):
    response = await client.post("/v1/auth/login", json={"email": alice.email, "password": PASSWORD})
    body = await response.get_json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 900 and body["refresh_token"]
    cookies = response.headers.getlist("Set-Cookie")
    access = next(c for c in cookies if c.startswith("evr_access="))
    assert "HttpOnly" in access and "SameSite=Lax" in access and "Path=/" in access
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 900
    me = await (await client.get("/v1/auth/me", headers={"Authorization": f"Bearer {body['access_token']}"})).get_json()
    assert me["email"] == alice.email and me["role"] == "user" and "admin" not in me["scopes"]


async def test_bad_logins_say_nothing_specific(client, alice):
    for email, password in ((alice.email, "wrong-password"), ("nobody@example.com", PASSWORD)):
        response = await client.post("/v1/auth/login", json={"email": email, "password": password})
        body = await response.get_json()
        assert response.status_code == 401 and body["error"]["message"] == "invalid email or password"


async def test_register_rules(client, alice):
    short = await client.post("/v1/auth/register", json={"email": "c@example.com", "password": "short"})
    assert short.status_code == 400 and "password" in (await short.get_json())["error"]["message"]
    again = await client.post("/v1/auth/register", json={"email": alice.email.upper(), "password": PASSWORD})
    assert again.status_code == 409
    bad = await client.post("/v1/auth/register", json={"email": "not-an-email", "password": PASSWORD})
    assert bad.status_code == 400


async def test_refresh_rotates_and_reuse_revokes_the_family(client, alice):
    first = await client.post("/v1/auth/refresh", json={"refresh_token": alice.refresh})
    assert first.status_code == 200
    rotated = await first.get_json()
    assert rotated["refresh_token"] != alice.refresh
    # The old refresh token no longer works, and presenting it again revokes the family...
    reuse = await client.post("/v1/auth/refresh", json={"refresh_token": alice.refresh})
    assert reuse.status_code == 401
    assert (await reuse.get_json())["error"]["message"] == \
        "refresh token already used; every session of this login was signed out"
    # ...so the newest refresh token and the access tokens of this login stop working too.
    newest = await client.post("/v1/auth/refresh", json={"refresh_token": rotated["refresh_token"]})
    assert newest.status_code == 401
    assert (await newest.get_json())["error"]["message"] == "this login was signed out; log in again"
    headers = {"Authorization": f"Bearer {rotated['access_token']}"}
    assert (await client.get("/v1/agents", headers=headers)).status_code == 401
    # Another login of the same user is unaffected.
    other = await login(client, alice.email)
    assert (await client.get("/v1/agents", headers=other.headers)).status_code == 200


async def test_logout_revokes(client, alice, caplog):
    """Reported: the refresh token of a login that logged out was answered as stolen
    ("already used") and logged as a reuse. It is only signed out."""
    assert (await client.post("/v1/auth/logout", json={}, headers=alice.headers)).status_code == 204
    assert (await client.get("/v1/agents", headers=alice.headers)).status_code == 401
    response = await client.post("/v1/auth/refresh", json={"refresh_token": alice.refresh})
    assert response.status_code == 401
    assert (await response.get_json())["error"]["message"] == "this login was signed out; log in again"
    assert "reused" not in caplog.text


async def test_cookie_session_for_the_dashboard(app):
    browser = app.test_client()  # keeps cookies like a browser
    assert (await browser.post("/v1/auth/login", json={"email": ADMIN[0], "password": ADMIN[1]})).status_code == 200
    assert (await browser.get("/v1/agents")).status_code == 200
    refreshed = await browser.post("/v1/auth/refresh")  # refresh cookie, no body
    assert refreshed.status_code == 200
    assert (await browser.post("/v1/auth/logout")).status_code == 204
    assert (await browser.get("/v1/agents")).status_code == 401


async def test_expired_and_forged_tokens(client, alice, settings):
    claims = jwt.decode(alice.access, options={"verify_signature": False})
    past = {**claims, "exp": dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)}
    expired = jwt.encode(past, settings.jwt_secret.get_secret_value(), algorithm="HS256")
    response = await client.get("/v1/agents", headers={"Authorization": f"Bearer {expired}"})
    assert response.status_code == 401 and "expired" in (await response.get_json())["error"]["message"]
    forged = jwt.encode({**claims, "role": "admin"}, "another-secret-long-enough-for-hs256", algorithm="HS256")
    assert (await client.get("/v1/agents", headers={"Authorization": f"Bearer {forged}"})).status_code == 401
    none_alg = jwt.encode(claims, None, algorithm="none")
    assert (await client.get("/v1/agents", headers={"Authorization": f"Bearer {none_alg}"})).status_code == 401


def _bearer(claims: dict, secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {jwt.encode(claims, secret, algorithm='HS256')}"}


@pytest.mark.parametrize("changes", [{"fam": "not-a-uuid"}, {"sub": "not-a-uuid"}, {"fam": 42}, {"sub": None}])
async def test_a_signed_token_whose_ids_are_not_uuids_is_refused(client, alice, settings, changes):
    """Signed with the server's own key (a leaked key, an older version's token): still a
    401 in the /v1 error shape, not a 500."""
    claims = {**jwt.decode(alice.access, options={"verify_signature": False}), **changes}
    response = await client.get("/v1/agents", headers=_bearer(claims, settings.jwt_secret.get_secret_value()))
    assert response.status_code == 401
    assert await response.get_json() == {"error": {"code": "unauthorized", "message": "invalid access token"},
                                         "message": "invalid access token", "status": 401}


async def test_a_token_naming_another_users_login_is_refused(client, alice, bob, settings):
    """`fam` (the login) must be `sub`'s own: Bob's live login does not vouch for Alice."""
    alices = jwt.decode(alice.access, options={"verify_signature": False})
    bobs = jwt.decode(bob.access, options={"verify_signature": False})
    response = await client.get("/v1/agents", headers=_bearer({**alices, "fam": bobs["fam"]}, settings.jwt_secret.get_secret_value()))
    assert response.status_code == 401
    assert (await response.get_json())["error"]["code"] == "unauthorized"
    # The same claims with Alice's own login are accepted: only the family made the difference.
    assert (await client.get("/v1/agents", headers=_bearer(alices, settings.jwt_secret.get_secret_value()))).status_code == 200


async def test_api_key_life_cycle_and_every_header_form(client, alice):
    created = await client.post("/v1/auth/api-keys", json={"name": "ci", "scopes": ["agents:read"]}, headers=alice.headers)
    body = await created.get_json()
    key = body["key"]
    assert created.status_code == 201 and key.startswith("evr_") and len(key) == 4 + 64
    listed = await (await client.get("/v1/auth/api-keys", headers=alice.headers)).get_json()
    assert key not in str(listed) and listed["data"][0]["prefix"] == key[:12] and listed["data"][0]["last_used_at"] is None
    for headers in ({"Authorization": key}, {"Authorization": f"Bearer {key}"}, {"Authorization": f"ApiKey {key}"},
                    {"X-API-Key": key}):
        assert (await client.get("/v1/agents", headers=headers)).status_code == 200, headers
    listed = await (await client.get("/v1/auth/api-keys", headers=alice.headers)).get_json()
    assert listed["data"][0]["last_used_at"] is not None
    assert (await client.delete(f"/v1/auth/api-keys/{body['id']}", headers=alice.headers)).status_code == 204
    assert (await client.get("/v1/agents", headers={"X-API-Key": key})).status_code == 401


async def test_scopes_are_enforced_and_never_exceed_the_owner(client, alice, admin):
    reader = await make_key(client, alice, ["agents:read"])
    assert (await client.get("/v1/agents", headers={"X-API-Key": reader})).status_code == 200
    denied = await client.post("/v1/agents", json={"name": "a", "system_prompt": "p"}, headers={"X-API-Key": reader})
    assert denied.status_code == 403 and "agents:write" in (await denied.get_json())["error"]["message"]
    assert (await client.get("/v1/llm-providers", headers={"X-API-Key": reader})).status_code == 403
    too_much = await client.post("/v1/auth/api-keys", json={"name": "x", "scopes": ["admin"]}, headers=alice.headers)
    assert too_much.status_code == 403
    minted = await client.post("/v1/auth/api-keys", json={"name": "x", "scopes": ["agents:write"]}, headers={"X-API-Key": reader})
    assert minted.status_code == 403  # a key cannot mint a stronger key
    assert (await client.post("/v1/auth/api-keys", json={"name": "x", "scopes": ["admin"]}, headers=admin.headers)).status_code == 201
    everything = await make_key(client, alice, ["*"])
    assert (await client.post("/v1/agents", json={"name": "a", "system_prompt": "p"}, headers={"X-API-Key": everything})).status_code == 201


async def test_expired_key_and_unknown_scope(client, alice):
    soon = (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)).isoformat()
    past = await client.post("/v1/auth/api-keys", json={"name": "x", "scopes": ["*"], "expires_at": soon}, headers=alice.headers)
    assert past.status_code == 400
    assert (await client.post("/v1/auth/api-keys", json={"name": "x", "scopes": ["root"]}, headers=alice.headers)).status_code == 400


async def test_admin_mode_has_one_admin_and_no_sign_up(app_factory):
    app = await app_factory(auth_mode="admin")
    client = app.test_client(use_cookies=False)
    config = await (await client.get("/v1/auth/config")).get_json()
    assert config["mode"] == "admin" and config["signup_enabled"] is False
    response = await client.post("/v1/auth/register", json={"email": "x@example.com", "password": PASSWORD})
    assert response.status_code == 403
    assert (await client.get("/v1/agents")).status_code == 401
    admin = await login(client, *ADMIN)
    assert (await client.get("/v1/agents", headers=admin.headers)).status_code == 200
    assert (await (await client.get("/health")).get_json())["auth_mode"] == "Admin"


@pytest.mark.parametrize("path", ["/v1/auth/logout", "/v1/auth/refresh"])
async def test_a_refresh_token_that_is_not_a_string_is_400(client, alice, path):
    """Found by schemathesis: logout read its body unvalidated, so a list was a 500."""
    response = await client.post(path, json={"refresh_token": ["x"]}, headers=alice.headers)
    assert response.status_code == 400
    assert (await response.get_json())["error"]["message"].startswith("refresh_token: ")


async def test_a_new_admin_password_signs_the_old_logins_out(settings):
    """Reported: after a restart with another AUTH_ADMIN_PASSWORD the old password was
    refused, but the logins made with it went on working."""
    from app.main import create_app

    first = create_app(settings)
    async with first.test_app():
        client = first.test_client(use_cookies=False)
        before = await login(client, ADMIN[0], ADMIN[1])
        assert (await client.get("/v1/agents", headers=before.headers)).status_code == 200

    restarted = create_app(settings.replace(auth_admin_password="a-new-admin-password"))
    async with restarted.test_app():
        client = restarted.test_client(use_cookies=False)
        assert (await client.get("/v1/agents", headers=before.headers)).status_code == 401
        refreshed = await client.post("/v1/auth/refresh", json={"refresh_token": before.refresh})
        assert (await refreshed.get_json())["error"]["message"] == "this login was signed out; log in again"
        assert (await client.post("/v1/auth/login", json={"email": ADMIN[0], "password": ADMIN[1]})).status_code == 401
        after = await login(client, ADMIN[0], "a-new-admin-password")
        assert (await client.get("/v1/agents", headers=after.headers)).status_code == 200


async def test_refresh_refuses_unknown_fields_like_every_route(client, alice):
    """Reported: {"refresh_token": "a", "extra": 1} was a 401 "invalid refresh token",
    where §1 makes an unknown field a 400."""
    response = await client.post("/v1/auth/refresh", json={"refresh_token": alice.refresh, "extra": 1})
    assert response.status_code == 400
    message = "extra: Extra inputs are not permitted"
    assert await response.get_json() == {"error": {"code": "invalid_request", "message": message},
                                         "message": message, "status": 400}
    # Nothing was rotated: the token still works.
    assert (await client.post("/v1/auth/refresh", json={"refresh_token": alice.refresh})).status_code == 200


async def test_refresh_with_a_body_that_is_not_json_is_a_400(client, alice):
    """Reported: a non-JSON body was a 401 "send {"refresh_token": ...}"."""
    response = await client.post("/v1/auth/refresh", data="refresh_token=abc",
                                 headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    body = await response.get_json()
    assert body["error"]["code"] == "invalid_request"
    assert body["error"]["message"].startswith("Request body is not valid JSON")
    # No body at all still means "the cookie" (what the dashboard sends), and none is a 401.
    response = await client.post("/v1/auth/refresh", headers={"Cookie": f"evr_refresh={alice.refresh}"})
    assert response.status_code == 200
    response = await client.post("/v1/auth/refresh")
    assert response.status_code == 401
    assert (await response.get_json())["error"]["message"] == "send {\"refresh_token\": ...} or the refresh cookie"


async def test_logout_signs_out_the_callers_own_login_whatever_refresh_token_is_sent(client, bob):
    """Reported: a refresh token in the body (or the cookie a client's jar keeps from
    its latest login) chose the login to sign out, and the caller's stayed signed in."""
    other = await login(client, bob.email)
    response = await client.post("/v1/auth/logout", json={"refresh_token": other.refresh}, headers=bob.headers)
    assert response.status_code == 204
    me = await client.get("/v1/auth/me", headers=bob.headers)
    assert me.status_code == 401
    assert (await me.get_json())["error"]["message"] == "this login was signed out; log in again"
    assert (await client.get("/v1/auth/me", headers=other.headers)).status_code == 200
    # The same with the other login's refresh cookie and no body.
    third = await login(client, bob.email)
    response = await client.post("/v1/auth/logout", headers={**other.headers, "Cookie": f"evr_refresh={third.refresh}"})
    assert response.status_code == 204
    assert (await client.get("/v1/auth/me", headers=other.headers)).status_code == 401
    assert (await client.get("/v1/auth/me", headers=third.headers)).status_code == 200
    assert (await client.post("/v1/auth/refresh", json={"refresh_token": third.refresh})).status_code == 200


async def test_logout_with_an_api_key_revokes_no_login(client, bob):
    key = await make_key(client, bob, ["*"])
    response = await client.post("/v1/auth/logout", json={"refresh_token": bob.refresh}, headers={"X-API-Key": key})
    assert response.status_code == 204
    assert (await client.get("/v1/auth/me", headers=bob.headers)).status_code == 200
