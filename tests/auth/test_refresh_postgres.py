"""Token refresh on PostgreSQL (the other auth tests run on SQLite).

schemathesis (FUZZ_SEED=11, postgres-auth-full) found every `POST /v1/auth/refresh` with a
token answering 500: the refresh read its token `FOR UPDATE` with the token's user joined
(LEFT OUTER JOIN), which PostgreSQL refuses ("FOR UPDATE cannot be applied to the
nullable side of an outer join"); SQLite has no FOR UPDATE, so no other test saw it. On
PostgreSQL nobody could refresh: every login ended with its first access token."""

from __future__ import annotations

import pytest

from tests.auth.test_flows import test_refresh_rotates_and_reuse_revokes_the_family as _rotation_and_reuse


@pytest.fixture
def settings(settings, pg_copy):
    return settings.replace(database_url=pg_copy, auto_migrate=False)


async def test_the_fuzzers_request_is_a_401(client):
    response = await client.post("/v1/auth/refresh", json={"refresh_token": "[Filtered]"})
    assert response.status_code == 401, await response.get_json()
    assert (await response.get_json())["error"]["message"] == "invalid refresh token"


async def test_refresh_rotates_and_reuse_revokes_the_family_on_postgres(client, alice):
    await _rotation_and_reuse(client, alice)
