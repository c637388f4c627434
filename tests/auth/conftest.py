"""An app in `full` auth mode with an admin and two users, and helpers to act as them."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

ADMIN = ("admin@example.com", "admin-password-1")
PASSWORD = "correct horse battery"


@dataclass
class Account:
    email: str
    access: str
    refresh: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access}"}


@pytest.fixture
def settings(settings):
    return settings.replace(auth_mode="full", auth_admin_email=ADMIN[0], auth_admin_password=ADMIN[1],
                            rate_limit_enabled=False, jwt_secret="test-jwt-secret-0123456789abcdef")


@pytest.fixture
async def app_factory(settings):
    """An app with other settings (e.g. another auth mode). Use it instead of the `app`
    and `client` fixtures, not beside them: each app opens the database for itself."""
    from app.main import create_app

    started = []

    async def make(**changes):
        app = create_app(settings.replace(**changes))
        context = app.test_app()
        await context.__aenter__()
        started.append(context)
        return app

    yield make
    for context in started:
        await context.__aexit__(None, None, None)


@pytest.fixture
def client(app):
    """No cookie jar: every request says explicitly which credentials it carries."""
    return app.test_client(use_cookies=False)


async def login(client, email: str, password: str = PASSWORD) -> Account:
    response = await client.post("/v1/auth/login", json={"email": email, "password": password})
    assert response.status_code == 200, await response.get_json()
    body = await response.get_json()
    return Account(email, body["access_token"], body["refresh_token"])


async def register(client, email: str, password: str = PASSWORD) -> Account:
    response = await client.post("/v1/auth/register", json={"email": email, "password": password})
    assert response.status_code == 201, await response.get_json()
    return await login(client, email, password)


@pytest.fixture
async def alice(client):
    return await register(client, "alice@example.com")


@pytest.fixture
async def bob(client):
    return await register(client, "bob@example.com")


@pytest.fixture
async def admin(client):
    return await login(client, *ADMIN)


async def make_key(client, account: Account, scopes: list[str], **extra) -> str:
    response = await client.post("/v1/auth/api-keys", json={"name": "k", "scopes": scopes, **extra},
                                 headers=account.headers)
    assert response.status_code == 201, await response.get_json()
    return (await response.get_json())["key"]
