"""AUTH_MODE=admin: the admin from the environment is the only account that signs in,
the only admin, and taking it back with a new password leaves an intruder nothing."""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager

from app.auth.service import ADMIN_ONLY
from tests.auth.conftest import ADMIN, PASSWORD, login, make_key, register

REFUSED = {"error": {"code": "unauthorized", "message": ADMIN_ONLY}, "message": ADMIN_ONLY, "status": 401}


@asynccontextmanager
async def running(settings, caplog=None, **changes):
    """A server on the test's database (a restart with other settings). create_app sets
    up logging anew, so `caplog` is attached again to hear what its start logs."""
    from app.main import create_app

    app = create_app(settings.replace(**changes))
    if caplog is not None:
        logging.getLogger().addHandler(caplog.handler)
    async with app.test_app():
        yield app.test_client(use_cookies=False)


async def test_admin_mode_refuses_every_other_account_until_full_mode_again(settings):
    """Reported: full-mode data restarted with AUTH_MODE=admin still let alice log in,
    and bob's API key kept working."""
    async with running(settings) as client:
        alice = await register(client, "alice@example.com")
        key = await make_key(client, alice, ["*"])
        assert (await client.post("/v1/agents", json={"name": "hers", "system_prompt": "p"},
                                  headers=alice.headers)).status_code == 201

    async with running(settings, auth_mode="admin") as client:
        response = await client.post("/v1/auth/login", json={"email": alice.email, "password": PASSWORD})
        assert response.status_code == 401 and await response.get_json() == REFUSED
        for headers in (alice.headers, {"X-API-Key": key}):
            response = await client.get("/v1/agents", headers=headers)
            assert response.status_code == 401 and await response.get_json() == REFUSED, headers
        response = await client.post("/v1/auth/refresh", json={"refresh_token": alice.refresh})
        assert response.status_code == 401 and await response.get_json() == REFUSED
        admin = await login(client, *ADMIN)  # the admin still signs in, and sees alice's agent
        agents = await (await client.get("/v1/agents", headers=admin.headers)).get_json()
        assert [agent["name"] for agent in agents["data"]] == ["hers"]

    async with running(settings) as client:  # full mode again: all of alice's credentials work
        assert (await client.get("/v1/agents", headers=alice.headers)).status_code == 200
        assert (await client.get("/v1/agents", headers={"X-API-Key": key})).status_code == 200
        assert (await client.post("/v1/auth/refresh", json={"refresh_token": alice.refresh})).status_code == 200
        await login(client, alice.email)


async def test_the_former_admin_loses_the_role_when_the_admin_email_changes(settings, caplog):
    """Reported: with AUTH_ADMIN_EMAIL changed, the old admin still logged in, kept role
    admin and all seven scopes, and its API key kept working."""
    root = ("root@example.com", "root-password-1")
    async with running(settings, auth_mode="admin", auth_admin_email=root[0], auth_admin_password=root[1]) as client:
        old = await login(client, *root)
        key = await make_key(client, old, ["*"])

    async with running(settings, caplog, auth_mode="admin", auth_admin_email="other@example.com") as client:
        response = await client.post("/v1/auth/login", json={"email": root[0], "password": root[1]})
        assert response.status_code == 401 and await response.get_json() == REFUSED
        for headers in (old.headers, {"X-API-Key": key}):
            response = await client.get("/v1/auth/me", headers=headers)
            assert response.status_code == 401 and await response.get_json() == REFUSED, headers
        assert "root@example.com no longer admin" in caplog.text

    async with running(settings, auth_admin_email="other@example.com") as client:  # full mode: a user now
        me = await (await client.get("/v1/auth/me", headers={"X-API-Key": key})).get_json()
        assert me["role"] == "user" and "admin" not in me["scopes"]
        assert (await client.get("/v1/metrics", headers={"X-API-Key": key})).status_code == 403
        assert (await (await client.get("/v1/auth/me", headers=old.headers)).get_json())["role"] == "user"


async def test_a_new_admin_password_revokes_the_admins_api_keys(settings, caplog):
    """Reported: after a restart with another AUTH_ADMIN_PASSWORD (how an operator takes
    back a leaked admin password) an API key minted with the old one kept full access."""
    async with running(settings, auth_mode="admin") as client:
        admin = await login(client, *ADMIN)
        keys = [await make_key(client, admin, ["*"]), await make_key(client, admin, ["agents:read"])]

    async with running(settings, caplog, auth_mode="admin", auth_admin_password="a-new-admin-password") as client:
        for key in keys:
            response = await client.get("/v1/auth/me", headers={"X-API-Key": key})
            assert response.status_code == 401
            assert (await response.get_json())["error"]["message"] == "invalid or revoked API key"
        assert f"reset the admin account {ADMIN[0]} to AUTH_ADMIN_PASSWORD: 1 login(s) signed out and 2 API " \
               "key(s) revoked" in caplog.text
        admin = await login(client, ADMIN[0], "a-new-admin-password")
        assert (await client.get("/v1/auth/me", headers={"X-API-Key": await make_key(client, admin, ["*"])})).status_code == 200
