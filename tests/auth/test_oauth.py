"""Sign-in with Google and GitHub against a fake provider: the authorization-code flow
with single-use state and PKCE, account creation and linking, and every refusal."""

from __future__ import annotations

import datetime as dt
import logging
from urllib.parse import parse_qs, parse_qsl, urlsplit

import httpx
import pytest

from app.models import OAuthState, User
from tests.auth.conftest import ADMIN, PASSWORD, login, register
from tests.fakes.oauth_server import FakeOAuth

CALLBACK = "http://localhost/v1/auth/oauth/{}/callback"  # the test client's host


@pytest.fixture(scope="module")
def fake_oauth_server():
    with FakeOAuth() as fake:
        yield fake


@pytest.fixture
def fake(fake_oauth_server) -> FakeOAuth:
    fake_oauth_server.reset()
    return fake_oauth_server


@pytest.fixture
def providers(fake) -> dict:
    return {"google": fake.google_config(), "github": fake.github_config()}


@pytest.fixture
async def oauth_app(app_factory, providers):
    return await app_factory(oauth=providers)


@pytest.fixture
def web(oauth_app):
    """No cookie jar: the test reads the cookies the callback sets."""
    return oauth_app.test_client(use_cookies=False)


# --- helpers ---------------------------------------------------------------------

async def start(web, provider: str) -> str:
    response = await web.get(f"/v1/auth/oauth/{provider}")
    assert response.status_code == 302, await response.get_json()
    return response.headers["Location"]


async def authorize(web, provider: str) -> tuple[str, dict[str, str]]:
    """Start, let the (fake) provider answer: the callback path and query it sends the browser to."""
    async with httpx.AsyncClient() as http:
        answer = await http.get(await start(web, provider))
    assert answer.status_code == 302, answer.text
    back = urlsplit(answer.headers["Location"])
    assert f"{back.scheme}://{back.netloc}{back.path}" == CALLBACK.format(provider)
    return back.path, dict(parse_qsl(back.query))


async def callback(web, path: str, query: dict[str, str]):
    return await web.get(path, query_string=query)


async def sign_in(web, provider: str):
    return await callback(web, *await authorize(web, provider))


def cookies(response) -> dict[str, str]:
    """name -> the whole Set-Cookie header."""
    return {header.split("=", 1)[0]: header for header in response.headers.getlist("Set-Cookie")}


def cookie_value(response, name: str) -> str:
    return cookies(response)[name].split(";", 1)[0].split("=", 1)[1]


async def error_of(response) -> dict:
    return (await response.get_json())["error"]


# --- the flows -------------------------------------------------------------------

async def test_google_sign_in_creates_the_account_and_sets_the_session(web, fake):
    location = await start(web, "google")
    sent = {key: values[0] for key, values in parse_qs(urlsplit(location).query).items()}
    assert location.startswith(f"{fake.url}/authorize?")
    assert sent["response_type"] == "code" and sent["client_id"] == fake.client_id
    assert sent["redirect_uri"] == CALLBACK.format("google") and sent["scope"] == "openid email profile"
    assert sent["code_challenge_method"] == "S256" and len(sent["code_challenge"]) == 43
    assert len(sent["state"]) >= 43
    stored = await OAuthState.get(state=sent["state"])
    assert stored.provider == "google" and sent["code_challenge"] != stored.code_verifier

    async with httpx.AsyncClient() as http:  # the browser at the provider
        back = urlsplit((await http.get(location)).headers["Location"])
    response = await web.get(back.path, query_string=dict(parse_qsl(back.query)))
    assert response.status_code == 302 and response.headers["Location"] == "/"
    jar = cookies(response)
    assert "HttpOnly" in jar["evr_access"] and "SameSite=Lax" in jar["evr_access"] and "Path=/" in jar["evr_access"]
    assert "HttpOnly" in jar["evr_refresh"] and "Path=/v1/auth" in jar["evr_refresh"]
    assert fake.token_requests[-1]["outcome"] == "ok"
    assert fake.token_requests[-1]["code_verifier"]  # PKCE was used at the token endpoint

    access = cookie_value(response, "evr_access")
    me = await web.get("/v1/auth/me", headers={"Authorization": f"Bearer {access}"})
    assert me.status_code == 200
    body = await me.get_json()
    assert body["email"] == "gina@example.com" and body["role"] == "user" and "admin" not in body["scopes"]
    as_browser = await web.get("/v1/auth/me", headers={"Cookie": f"evr_access={access}"})  # the dashboard session
    assert (await as_browser.get_json())["email"] == "gina@example.com"
    user = await User.get(email="gina@example.com")
    assert (user.oauth_provider, user.oauth_subject, user.name, user.password_hash) == \
        ("google", "g-1001", "Gina Google", None)
    assert not await OAuthState.exists()  # used up

    # Signing in again finds the same account.
    again = await sign_in(web, "google")
    assert again.status_code == 302
    assert await User.filter(oauth_provider="google").count() == 1


async def test_github_sign_in_takes_the_primary_verified_email(web, fake):
    # An unverified "primary" first, then a verified secondary, then the primary verified one.
    fake.github_emails.insert(0, {"email": "unverified@example.com", "primary": True, "verified": False})
    response = await sign_in(web, "github")
    assert response.status_code == 302 and response.headers["Location"] == "/", await response.get_data(as_text=True)
    access = cookie_value(response, "evr_access")
    me = await (await web.get("/v1/auth/me", headers={"Authorization": f"Bearer {access}"})).get_json()
    assert me["email"] == "octo@example.com"
    user = await User.get(email="octo@example.com")
    assert (user.oauth_provider, user.oauth_subject, user.name) == ("github", "4242", "Octo Cat")
    assert fake.authorize_requests[-1]["scope"] == "read:user user:email"


async def test_github_public_email_is_used_without_the_emails_endpoint(web, fake):
    fake.github_user.update(email="Public@Example.com", name=None)
    fake.github_emails.clear()
    response = await sign_in(web, "github")
    assert response.status_code == 302
    user = await User.get(email="public@example.com")
    assert user.name == "octo"  # the login when there is no name


async def test_github_without_a_verified_primary_email_is_refused(web, fake):
    fake.github_emails[:] = [{"email": "octo@example.com", "primary": True, "verified": False}]
    response = await sign_in(web, "github")
    assert response.status_code == 403 and (await error_of(response))["code"] == "email_not_verified"
    assert not await User.exists(email="octo@example.com")


async def test_unverified_google_email_is_refused(web, fake):
    fake.google_user["email_verified"] = False
    response = await sign_in(web, "google")
    assert response.status_code == 403 and (await error_of(response))["code"] == "email_not_verified"
    assert not await User.exists(email="gina@example.com")


async def test_existing_password_account_is_linked_not_duplicated(web, fake):
    await register(web, "gina@example.com")
    fake.google_user["email"] = "Gina@Example.com"
    response = await sign_in(web, "google")
    assert response.status_code == 302
    users = await User.filter(email="gina@example.com")
    assert len(users) == 1 and (users[0].oauth_provider, users[0].oauth_subject) == ("google", "g-1001")
    access = cookie_value(response, "evr_access")
    me = await (await web.get("/v1/auth/me", headers={"Authorization": f"Bearer {access}"})).get_json()
    assert me["id"] == str(users[0].id)
    await login(web, "gina@example.com", PASSWORD)  # the password still works


async def test_account_linked_to_another_identity_of_the_same_provider_is_refused(web, fake):
    await User.create(email="gina@example.com", oauth_provider="google", oauth_subject="g-other")
    response = await sign_in(web, "google")
    assert response.status_code == 403 and (await error_of(response))["code"] == "oauth_account_mismatch"


async def test_sign_up_disabled_refuses_unknown_users_but_not_known_ones(app_factory, providers, fake):
    web = (await app_factory(oauth=providers, auth_signup_enabled=False)).test_client(use_cookies=False)
    response = await sign_in(web, "google")
    assert response.status_code == 403 and (await error_of(response))["code"] == "signup_disabled"
    assert not await User.exists(email="gina@example.com")
    fake.google_user["email"] = ADMIN[0]  # the admin exists: signing in with its verified email works
    response = await sign_in(web, "google")
    assert response.status_code == 302
    assert (await User.get(email=ADMIN[0])).role == "admin"


# --- state, PKCE and provider errors ------------------------------------------------

async def test_a_replayed_state_is_refused(web):
    path, query = await authorize(web, "google")
    assert (await callback(web, path, query)).status_code == 302
    replay = await callback(web, path, query)
    assert replay.status_code == 400 and (await error_of(replay))["code"] == "invalid_state"


async def test_an_unknown_or_missing_state_is_refused(web):
    for query in ({"code": "abc", "state": "not-a-state-we-issued"}, {"code": "abc"}):
        response = await web.get("/v1/auth/oauth/google/callback", query_string=query)
        assert response.status_code == 400 and (await error_of(response))["code"] == "invalid_state"


async def test_a_state_for_another_provider_is_refused_and_used_up(web):
    _, query = await authorize(web, "google")
    response = await web.get("/v1/auth/oauth/github/callback", query_string=query)
    assert response.status_code == 400 and "google" in (await error_of(response))["message"]
    assert not await OAuthState.exists(state=query["state"])


async def test_an_expired_state_is_refused(web):
    path, query = await authorize(web, "google")
    old = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=11)
    await OAuthState.filter(state=query["state"]).update(created_at=old)
    response = await callback(web, path, query)
    assert response.status_code == 400 and "10 minutes" in (await error_of(response))["message"]


async def test_pkce_is_checked_by_the_provider(web, fake):
    path, query = await authorize(web, "google")
    await OAuthState.filter(state=query["state"]).update(code_verifier="x" * 64)  # not the challenged one
    response = await callback(web, path, query)
    assert response.status_code == 400, await response.get_data(as_text=True)
    assert (await error_of(response))["code"] == "oauth_failed"
    assert fake.token_requests[-1]["outcome"] == "invalid_grant"
    assert "evr_access" not in cookies(response)


async def test_a_wrong_client_secret_fails_cleanly(app_factory, fake):
    web = (await app_factory(oauth={"google": fake.google_config(client_secret="wrong")})).test_client(use_cookies=False)
    response = await sign_in(web, "google")
    assert response.status_code == 400 and (await error_of(response))["code"] == "oauth_failed"
    assert fake.token_requests[-1]["outcome"] == "invalid_client"


async def test_an_unreachable_provider_is_a_502(app_factory, fake):
    from tests.live_server import free_port

    dead = f"http://127.0.0.1:{free_port()}"
    web = (await app_factory(oauth={"google": fake.google_config(token_url=f"{dead}/token")})).test_client(use_cookies=False)
    response = await sign_in(web, "google")
    assert response.status_code == 502 and (await error_of(response))["code"] == "oauth_provider_error"


async def test_a_provider_error_is_a_400_with_its_description(web, fake):
    fake.deny = "access_denied"
    path, query = await authorize(web, "google")
    assert "code" not in query and query["error"] == "access_denied"
    response = await callback(web, path, query)
    error = await error_of(response)
    assert response.status_code == 400 and error["code"] == "oauth_denied"
    assert "access_denied" in error["message"] and "The user denied the request" in error["message"]
    assert not await OAuthState.exists(state=query["state"])


async def test_nothing_secret_is_logged(web, fake, caplog):
    path, query = await authorize(web, "google")
    caplog.set_level(logging.DEBUG)  # from here on only the app runs (the test's browser logs the code)
    caplog.clear()
    response = await callback(web, path, query)
    assert response.status_code == 302
    text = caplog.text
    assert "/token" in text and "created account" in text  # the app's own logging was captured
    for secret in (query["code"], fake.issued_tokens[-1], fake.client_secret, cookie_value(response, "evr_access"),
                   cookie_value(response, "evr_refresh")):
        assert secret not in text



@pytest.mark.parametrize(("provider", "profile", "problem"), [
    ("google", {"email": "x" * 400 + "@e.com"}, "its email is not an address of at most 320 characters"),
    ("google", {"sub": ["list"]}, "its account id is not a string of at most 200 characters"),
    ("google", {"sub": 5}, "its account id is not a string of at most 200 characters"),
    ("github", {"email": "x" * 400 + "@e.com"}, "its email is not an address of at most 320 characters"),
    ("github", {"id": {"a": 1}}, "its account id is not a string of at most 200 characters"),
])
async def test_a_profile_no_account_can_hold_is_a_502(web, fake, provider, profile, problem):
    """Reported: a 406-character Google email was a 500 (the column holds 320), and a
    `sub` that was a JSON list was linked to a new account. §8.6: an unusable answer is a 502."""
    (fake.google_user if provider == "google" else fake.github_user).update(profile)
    response = await sign_in(web, provider)
    assert response.status_code == 502
    message = f"{provider} sent an unusable profile: {problem}"
    assert await response.get_json() == {"error": {"code": "oauth_provider_error", "message": message},
                                         "message": message, "status": 502}
    assert "evr_access" not in cookies(response)
    assert not await User.filter(oauth_provider=provider).exists()


# --- where OAuth is available -------------------------------------------------------

async def test_unconfigured_providers_are_404(app_factory, fake):
    web = (await app_factory(oauth={"google": fake.google_config()})).test_client(use_cookies=False)
    for path in ("/v1/auth/oauth/github", "/v1/auth/oauth/github/callback?code=a&state=b",
                 "/v1/auth/oauth/facebook"):
        response = await web.get(path)
        error = await error_of(response)
        assert response.status_code == 404 and error["code"] == "not_found", path
        assert "github" in error["message"] or "facebook" in error["message"]
    config = await (await web.get("/v1/auth/config")).get_json()
    assert config["oauth_providers"] == ["google"]


async def test_oauth_is_off_in_admin_mode(app_factory, providers):
    web = (await app_factory(oauth=providers, auth_mode="admin")).test_client(use_cookies=False)
    for path in ("/v1/auth/oauth/google", "/v1/auth/oauth/google/callback?code=a&state=b"):
        assert (await web.get(path)).status_code == 404
    assert (await (await web.get("/v1/auth/config")).get_json())["oauth_providers"] == []
    assert not await OAuthState.exists()


async def test_config_lists_the_enabled_providers(web):
    config = await (await web.get("/v1/auth/config")).get_json()
    assert config["oauth_providers"] == ["github", "google"]


async def test_the_redirect_base_url_setting_is_used(app_factory, providers):
    web = (await app_factory(oauth=providers, oauth_redirect_base_url="https://runtime.example.com/")) \
        .test_client(use_cookies=False)
    sent = parse_qs(urlsplit(await start(web, "github")).query)
    assert sent["redirect_uri"] == ["https://runtime.example.com/v1/auth/oauth/github/callback"]
