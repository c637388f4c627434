"""/v1/auth: mode, sign-up, login, token refresh and logout, the current account, API keys."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal, get_args
from uuid import UUID

from pydantic import BaseModel, Field, StrictInt, field_validator
from quart import Blueprint, Response, current_app, redirect, request
from quart_schema import document_request, document_response, tag, validate_request, validate_response

from app.api.common import Page, RequestBody, optional_body
from app.api.openapi import no_content
from app.auth import oauth
from app.auth.middleware import ACCESS_COOKIE, REFRESH_COOKIE
from app.auth.principal import SCOPES, current_principal
from app.auth.service import MAX_KEY_LIFETIME_DAYS, AuthService, TokenPair
from app.auth.throttle import limit_attempts
from app.config import EMAIL_PATTERN, OAuthClient
from app.errors import InvalidRequest, Unauthorized
from app.timeutil import given_as_utc
from app.wiring import current_runtime

bp = Blueprint("auth", __name__, url_prefix="/v1/auth")

Email = Field(min_length=3, max_length=320, pattern=EMAIL_PATTERN)
Scope = Literal["agents:read", "agents:write", "sessions:read", "sessions:write", "llm:read", "llm:write", "admin", "*"]


def _service() -> AuthService:
    return current_app.extensions["auth"]


def _enabled() -> AuthService:
    service = _service()
    if service.mode == "none":
        raise InvalidRequest("authentication is off on this server (AUTH_MODE=none)", code="auth_disabled")
    return service


async def _account_key() -> str:
    """Throttle per account as well as per client, so one email cannot be brute-forced
    from many addresses."""
    body = await request.get_json(silent=True)
    email = body.get("email") if isinstance(body, dict) else None
    return f"account:{str(email).lower()}"


# Per client address and, separately, per account: 10 attempts a minute each.
ATTEMPTS, PER_SECONDS = 10, 60  # app/auth/throttle.py: any 60 s, not a refill every 6 s


async def _client_key() -> str:
    """The socket's peer address. Not X-Forwarded-For, which any client can set; behind
    a reverse proxy every client then shares the proxy's limit, and the per-account
    limit still applies."""
    return f"client:{request.remote_addr}"


class AuthConfig(BaseModel):
    mode: Literal["none", "admin", "full"]
    password_auth_enabled: bool
    oauth_providers: list[str]
    signup_enabled: bool


class Credentials(RequestBody):
    email: str = Email
    password: str = Field(min_length=1, max_length=1024)


class Registration(Credentials):
    name: str | None = Field(None, max_length=200)


class RefreshBody(RequestBody):
    refresh_token: str | None = None


class Tokens(BaseModel):
    access_token: str
    refresh_token: str
    token_type: Literal["Bearer"]
    expires_in: int


class Me(BaseModel):
    id: UUID | None
    email: str | None
    role: str
    scopes: list[str]
    via: str


class KeyCreate(RequestBody):
    name: str = Field(min_length=1, max_length=200)
    scopes: list[Scope] = Field(min_length=1)
    expires_at: datetime | None = None
    expires_in_days: StrictInt | None = Field(None, ge=1, le=MAX_KEY_LIFETIME_DAYS)

    @field_validator("expires_at")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        return given_as_utc(value)


class KeyOut(BaseModel):
    id: UUID
    name: str
    prefix: str
    scopes: list[str]
    expires_at: datetime | None
    last_used_at: datetime | None
    created_at: datetime


class KeyCreated(KeyOut):
    key: str = Field(description="Shown only once")


class UserOut(BaseModel):
    id: UUID
    email: str
    name: str | None
    role: str
    created_at: datetime


def _with_cookies(pair: TokenPair, status: int = 200) -> Response:
    """The dashboard's session: HttpOnly, SameSite=Lax cookies next to the JSON tokens."""
    secure = current_runtime().settings.cookie_secure
    response = current_app.response_class(Tokens(**pair.body()).model_dump_json(), status=status,
                                          content_type="application/json")
    response.set_cookie(ACCESS_COOKIE, pair.access_token, max_age=pair.expires_in, httponly=True,
                        samesite="Lax", secure=secure, path="/")
    response.set_cookie(REFRESH_COOKIE, pair.refresh_token, max_age=pair.refresh_expires_in, httponly=True,
                        samesite="Lax", secure=secure, path="/v1/auth")
    return response


@bp.get("/config")
@tag(["Auth"])
@validate_response(AuthConfig)
async def auth_config():
    """How to authenticate with this server."""
    service = _service()
    return AuthConfig(mode=service.mode, password_auth_enabled=service.mode != "none",
                      oauth_providers=sorted(current_runtime().settings.oauth) if service.mode == "full" else [],
                      signup_enabled=service.signup_enabled)


@bp.post("/register")
@tag(["Auth"])
@limit_attempts(ATTEMPTS, PER_SECONDS, _client_key)
@validate_request(Registration)
@validate_response(UserOut, 201)
async def register(data: Registration):
    """Create an account (full mode with sign-up enabled); passwords need 8+ characters."""
    user = await _enabled().register(data.email, data.password, data.name)
    return UserOut(id=user.id, email=user.email, name=user.name, role=user.role, created_at=user.created_at), 201


@bp.post("/login")
@tag(["Auth"])
@limit_attempts(ATTEMPTS, PER_SECONDS, _client_key, _account_key)
@validate_request(Credentials)
@document_response(Tokens)
async def login(data: Credentials):
    """Exchange email and password for tokens (also set as HttpOnly cookies)."""
    return _with_cookies(await _enabled().login(data.email, data.password))


@bp.post("/refresh")
@tag(["Auth"])
@document_request(RefreshBody)
@document_response(Tokens)
async def refresh():
    """Rotate a refresh token (body or cookie): the old one stops working."""
    service = _enabled()  # with authentication off, that is the answer, whatever was sent
    token = await _refresh_token()
    if not token:
        raise Unauthorized("send {\"refresh_token\": ...} or the refresh cookie")
    return _with_cookies(await service.refresh(token))


async def _refresh_token() -> str | None:
    """From the body ({"refresh_token": "..."}) or else the refresh cookie. The body is
    optional (the dashboard sends none), but one that is sent is held to §1's rules: valid
    JSON, an object, no unknown fields (a 400, as on every route)."""
    body = await optional_body(RefreshBody)
    return body.refresh_token or request.cookies.get(REFRESH_COOKIE)


@bp.post("/logout")
@tag(["Auth"])
@document_request(RefreshBody)
async def logout():
    """Revoke the caller's login (its access token's) and clear the cookies."""
    service = _enabled()
    await optional_body(RefreshBody)  # older clients send one: checked (§1), but it names no login
    await service.logout(current_principal())
    response = current_app.response_class("", status=204)
    response.delete_cookie(ACCESS_COOKIE, path="/")
    response.delete_cookie(REFRESH_COOKIE, path="/v1/auth")
    return response


@bp.get("/me")
@tag(["Auth"])
@validate_response(Me)
async def me():
    """The account (or key) making this request and what it may do."""
    principal = current_principal()
    return Me(id=principal.user_id, email=principal.email, role=principal.role,
              scopes=sorted(principal.scopes), via=principal.via)


@bp.post("/api-keys")
@tag(["Auth"])
@validate_request(KeyCreate)
@validate_response(KeyCreated, 201)
async def create_api_key(data: KeyCreate):
    """Create an API key; the key itself is in this response only."""
    expires = data.expires_at or (datetime.now().astimezone() + timedelta(days=data.expires_in_days)
                                  if data.expires_in_days else None)
    row, key = await _enabled().create_api_key(current_principal(), data.name, list(data.scopes), expires)
    return KeyCreated(**_key_fields(row), key=key), 201


@bp.get("/api-keys")
@tag(["Auth"])
@validate_response(Page[KeyOut])
async def list_api_keys():
    """Your API keys (prefix only)."""
    rows = await _enabled().list_api_keys(current_principal())
    return Page[KeyOut](data=[KeyOut(**_key_fields(r)) for r in rows], total=len(rows), offset=0, limit=len(rows))


@bp.delete("/api-keys/<key_id>")
@tag(["Auth"])
@no_content
async def delete_api_key(key_id: str):
    """Revoke an API key at once."""
    await _enabled().delete_api_key(current_principal(), key_id)
    return "", 204


def _key_fields(row) -> dict:
    return {"id": row.id, "name": row.name, "prefix": row.prefix, "scopes": row.scopes,
            "expires_at": row.expires_at, "last_used_at": row.last_used_at, "created_at": row.created_at}


assert set(SCOPES) <= set(get_args(Scope))  # the request schema lists every scope


def _oauth_provider(provider: str) -> tuple[OAuthClient, str]:
    """An enabled provider's settings and the redirect_uri (the same at start and callback)."""
    settings = current_runtime().settings
    config = oauth.provider_config(settings, _service().mode, provider)
    return config, oauth.callback_url(settings, request.host_url, provider)


@bp.get("/oauth/<provider>")
@tag(["Auth"])
@limit_attempts(ATTEMPTS, PER_SECONDS, _client_key)  # each start stores a pending state
async def oauth_start(provider: str):
    """Sign in with Google or GitHub (full mode): redirects (302) to the provider, which
    sends the browser back to the callback below. 404 for a provider that is not enabled."""
    config, redirect_uri = _oauth_provider(provider)
    response = redirect(await oauth.begin(provider, config, redirect_uri), 302)
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/oauth/<provider>/callback")
@tag(["Auth"])
async def oauth_callback(provider: str):
    """Where the provider sends the browser back (?code=&state=, or ?error=): signs in,
    links or creates the account, sets the session cookies and redirects (302) to the dashboard."""
    config, redirect_uri = _oauth_provider(provider)
    identity = await oauth.complete(provider, config, redirect_uri, request.args)
    service = _service()
    user = await oauth.account_for(identity, service.signup_enabled)
    response = redirect("/", 302)
    for cookie in _with_cookies(await service.issue(user)).headers.getlist("Set-Cookie"):
        response.headers.add("Set-Cookie", cookie)
    response.headers["Cache-Control"] = "no-store"
    return response
