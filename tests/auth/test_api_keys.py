"""Creating API keys: the expiry's rules and which scopes a key may mint."""

from __future__ import annotations

import datetime as dt

import pytest

from tests.auth.conftest import make_key


@pytest.mark.parametrize("expires_at", ["2030-01-01T00:00:00", "2030-01-01"])
async def test_an_expiry_without_an_offset_is_utc(client, alice, expires_at):
    """Reported: a naive expires_at was compared with the aware clock, a 500."""
    response = await client.post("/v1/auth/api-keys", json={"name": "n", "scopes": ["agents:read"],
                                                            "expires_at": expires_at}, headers=alice.headers)
    body = await response.get_json()
    assert response.status_code == 201, body
    assert body["expires_at"] == "2030-01-01T00:00:00Z"
    assert (await client.get("/v1/agents", headers={"X-API-Key": body["key"]})).status_code == 200


@pytest.mark.parametrize("expires_at", ["2020-01-01T00:00:00", 1])
async def test_a_past_expiry_without_an_offset_is_the_documented_400(client, alice, expires_at):
    response = await client.post("/v1/auth/api-keys", json={"name": "n", "scopes": ["agents:read"],
                                                            "expires_at": expires_at}, headers=alice.headers)
    assert response.status_code == 400
    assert await response.get_json() == {
        "error": {"code": "invalid_request", "message": "expires_at: must be in the future"},
        "message": "expires_at: must be in the future", "status": 400}


@pytest.mark.parametrize("expires_at", [99999999999999, "5138-11-16T09:46:39Z", "3651 days from now"])
async def test_an_expiry_beyond_ten_years_is_refused(client, alice, expires_at):
    """Reported: a number was read as a time in the year 5138 and taken."""
    if expires_at == "3651 days from now":  # computed here: pytest-xdist workers must see the same test ids
        expires_at = (dt.datetime.now(dt.UTC) + dt.timedelta(days=3651)).isoformat()
    response = await client.post("/v1/auth/api-keys", json={"name": "n", "scopes": ["agents:read"],
                                                            "expires_at": expires_at}, headers=alice.headers)
    assert response.status_code == 400
    message = "expires_at: must be at most 3650 days from now (leave it out for a key that never expires)"
    assert (await response.get_json())["error"] == {"code": "invalid_request", "message": message}
    listed = await (await client.get("/v1/auth/api-keys", headers=alice.headers)).get_json()
    assert listed["total"] == 0


async def test_the_longest_expiry_is_allowed(client, alice):
    response = await client.post("/v1/auth/api-keys", json={"name": "n", "scopes": ["agents:read"],
                                                            "expires_in_days": 3650}, headers=alice.headers)
    assert response.status_code == 201
    almost = (dt.datetime.now(dt.UTC) + dt.timedelta(days=3649)).isoformat()
    response = await client.post("/v1/auth/api-keys", json={"name": "n", "scopes": ["agents:read"],
                                                            "expires_at": almost}, headers=alice.headers)
    assert response.status_code == 201


async def test_a_key_with_only_the_admin_scope_creates_narrower_keys(client, admin):
    """Reported: `admin` implies every scope, yet an admin-only key could not make an
    agents:read key, and the 403 said the owner (an admin) lacked agents:read."""
    admin_only = await make_key(client, admin, ["admin"])
    response = await client.post("/v1/auth/api-keys", json={"name": "d", "scopes": ["agents:read"]},
                                 headers={"X-API-Key": admin_only})
    body = await response.get_json()
    assert response.status_code == 201, body
    assert body["scopes"] == ["agents:read"]
    assert (await client.get("/v1/agents", headers={"X-API-Key": body["key"]})).status_code == 200
    everything = await client.post("/v1/auth/api-keys", json={"name": "e", "scopes": ["*"]},
                                   headers={"X-API-Key": admin_only})
    assert everything.status_code == 201
    assert (await everything.get_json())["scopes"] == ["admin", "agents:read", "agents:write", "llm:read",
                                                       "llm:write", "sessions:read", "sessions:write"]


async def test_a_narrow_key_is_told_it_is_the_key_that_lacks_the_scope(client, admin, alice):
    reader = await make_key(client, admin, ["agents:read"])
    response = await client.post("/v1/auth/api-keys", json={"name": "d", "scopes": ["agents:write"]},
                                 headers={"X-API-Key": reader})
    assert response.status_code == 403
    message = "scopes: a key can only create keys within its own scopes, and this one lacks agents:write"
    assert (await response.get_json())["error"] == {"code": "forbidden", "message": message}
    # What the owner does not have is still said to be the owner's limit.
    everything = await make_key(client, alice, ["*"])
    response = await client.post("/v1/auth/api-keys", json={"name": "d", "scopes": ["admin"]},
                                 headers={"X-API-Key": everything})
    assert response.status_code == 403
    assert (await response.get_json())["error"]["message"] == "scopes: a key cannot have more than its owner (admin)"
