"""AUTH_MODE=none (the default): the account routes say that authentication is off."""

from __future__ import annotations

import pytest

OFF = {"code": "auth_disabled", "message": "authentication is off on this server (AUTH_MODE=none)"}


@pytest.mark.parametrize("path, body", [
    ("/v1/auth/login", {"email": "a@example.com", "password": "long-enough-password"}),
    ("/v1/auth/register", {"email": "a@example.com", "password": "long-enough-password"}),
    ("/v1/auth/refresh", {"refresh_token": "whatever"}),
    ("/v1/auth/refresh", None),  # reported: no body was answered 401 "send {"refresh_token": ...}"
    ("/v1/auth/api-keys", {"name": "k", "scopes": ["*"]}),
])
async def test_account_routes_answer_auth_disabled(client, path, body):
    response = await client.post(path, json=body) if body is not None else await client.post(path)
    assert response.status_code == 400
    assert (await response.get_json())["error"] == OFF


async def test_me_is_the_anonymous_admin(client):
    me = await (await client.get("/v1/auth/me")).get_json()
    assert me["id"] is None and me["role"] == "admin" and me["via"] == "none" and len(me["scopes"]) == 7
