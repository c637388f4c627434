"""Sign-in with Google or GitHub: the OAuth 2 authorization-code flow with a single-use
`state` and PKCE (S256), both kept in the oauth_states table for at most STATE_TTL.

authlib builds the authorization URL (and the code challenge) and redeems the code;
this module keeps the state, reads the provider's profile and finds, links or creates
the account. The authorization code, the provider's tokens and the client secret are
never logged and never stored.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from authlib.common.errors import AuthlibBaseError
from authlib.common.security import generate_token
from authlib.integrations.httpx_client import AsyncOAuth2Client
from tortoise.exceptions import IntegrityError

from app.config import EMAIL_PATTERN, OAuthClient, Settings
from app.errors import Forbidden, InvalidRequest, NotFound, ProviderError
from app.models import OAuthState, User
from app.timeutil import utcnow

TransportError: type[Exception]  # whichever of the two below authlib runs on
try:  # the HTTP library authlib's httpx integration runs on (httpx2 since authlib 1.9)
    from httpx2 import HTTPError as TransportError
except ImportError:  # pragma: no cover - older authlib on plain httpx
    from httpx import HTTPError as TransportError

log = logging.getLogger("app.auth.oauth")

STATE_TTL = dt.timedelta(minutes=10)
HTTP_TIMEOUT_SECONDS = 10.0
VERIFIER_LENGTH = 64  # RFC 7636: 43 to 128 characters; the column holds 128
MAX_DESCRIPTION = 300  # of a provider's error_description echoed back


@dataclass(frozen=True)
class Identity:
    """Who the provider says signed in (email already checked to be verified)."""

    provider: str
    subject: str
    email: str
    name: str | None


OAUTH_PROVIDER_ERROR = "oauth_provider_error"  # the provider could not be reached or answered something unusable


def provider_config(settings: Settings, mode: str, provider: str) -> OAuthClient:
    """The endpoints and client of an enabled provider; sign-in with OAuth is full mode only."""
    config = settings.oauth.get(provider) if mode == "full" else None
    if config is None or provider not in FETCHERS:
        raise NotFound(f"OAuth provider '{provider}' is not enabled on this server")
    return config


def callback_url(settings: Settings, host_url: str, provider: str) -> str:
    """The redirect_uri: OAUTH_REDIRECT_BASE_URL when set (behind a proxy), else this host."""
    base = (settings.oauth_redirect_base_url or host_url).rstrip("/")
    return f"{base}/v1/auth/oauth/{provider}/callback"


def _client(config: OAuthClient, redirect_uri: str) -> AsyncOAuth2Client:
    return AsyncOAuth2Client(
        client_id=config.client_id, client_secret=config.client_secret.get_secret_value(), scope=config.scope,
        redirect_uri=redirect_uri, code_challenge_method="S256",
        token_endpoint_auth_method="client_secret_post",  # what both Google and GitHub document
        timeout=HTTP_TIMEOUT_SECONDS,
    )


async def begin(provider: str, config: OAuthClient, redirect_uri: str) -> str:
    """Store a new state with its PKCE verifier; the provider URL to send the browser to."""
    await OAuthState.filter(created_at__lt=utcnow() - STATE_TTL).delete()  # abandoned sign-ins
    state, verifier = secrets.token_urlsafe(32), generate_token(VERIFIER_LENGTH)
    await OAuthState.create(state=state, provider=provider, code_verifier=verifier)
    async with _client(config, redirect_uri) as client:
        url, _ = client.create_authorization_url(config.authorize_url, state=state, code_verifier=verifier)
    return url


async def consume_state(state: str | None, provider: str) -> str:
    """Delete the state (whatever happens next it cannot be used again); its verifier."""
    row = await OAuthState.get_or_none(state=state) if state else None
    # The delete count decides between two concurrent callbacks with the same state.
    if row is None or not await OAuthState.filter(state=state).delete():
        raise InvalidRequest("unknown or already used OAuth state; start the sign-in again", code="invalid_state")
    if row.provider != provider:
        raise InvalidRequest(f"this OAuth state was issued for '{row.provider}', not '{provider}'",
                             code="invalid_state")
    if utcnow() - row.created_at > STATE_TTL:
        raise InvalidRequest("the sign-in took longer than 10 minutes; start it again", code="invalid_state")
    return row.code_verifier


async def complete(provider: str, config: OAuthClient, redirect_uri: str,
                   args: Mapping[str, str]) -> Identity:
    """Handle the provider's redirect back: check the state, redeem the code, read the profile."""
    if error := args.get("error"):
        if args.get("state"):
            await OAuthState.filter(state=args["state"]).delete()
        description = (args.get("error_description") or "").strip()[:MAX_DESCRIPTION]
        raise InvalidRequest(f"{provider} sign-in failed: {error[:100]}" + (f": {description}" if description else ""),
                             code="oauth_denied")
    verifier = await consume_state(args.get("state"), provider)
    code = args.get("code")
    if not code:
        raise InvalidRequest("code: the provider sent no authorization code")
    async with _client(config, redirect_uri) as client:
        try:
            await client.fetch_token(config.token_url, grant_type="authorization_code", code=code,
                                     code_verifier=verifier)
        except AuthlibBaseError as exc:  # the provider answered {"error": ...}
            log.warning("%s refused the authorization code: %s", provider, exc.error)
            raise InvalidRequest(f"{provider} refused the authorization code ({exc.error}); start the sign-in again",
                                 code="oauth_failed") from None
        except (TransportError, ValueError) as exc:
            log.warning("%s token endpoint failed: %s", provider, type(exc).__name__)
            raise ProviderError(f"could not redeem the authorization code with {provider}", code=OAUTH_PROVIDER_ERROR) from None
        return await FETCHERS[provider](client, config)


async def _get_json(client: AsyncOAuth2Client, url: str, provider: str, accept: str = "application/json") -> Any:
    try:
        response = await client.get(url, headers={"Accept": accept})
        if response.status_code != 200:
            raise ValueError(f"HTTP {response.status_code}")
        return response.json()
    except (TransportError, AuthlibBaseError, ValueError) as exc:
        log.warning("%s profile request failed: %s", provider, exc if isinstance(exc, ValueError) else type(exc).__name__)
        raise ProviderError(f"could not read your profile from {provider}", code=OAUTH_PROVIDER_ERROR) from None


MAX_SUBJECT = 200  # users.oauth_subject
MAX_EMAIL = 320  # users.email, and what sign-up takes


def _identity(provider: str, subject: Any, email: Any, name: Any, subject_types: tuple[type, ...]) -> Identity:
    """The profile as an account can store it. A field that cannot be stored (an id that
    is a list, an email longer than any address) is an unusable answer: a 502, not a
    database error further on."""
    if isinstance(subject, bool) or not isinstance(subject, subject_types) or not 0 < len(str(subject)) <= MAX_SUBJECT:
        raise _unusable(provider, f"its account id is not a string of at most {MAX_SUBJECT} characters")
    email = email.strip() if isinstance(email, str) else None
    if email is None or len(email) > MAX_EMAIL or not re.match(EMAIL_PATTERN, email):
        raise _unusable(provider, f"its email is not an address of at most {MAX_EMAIL} characters")
    return Identity(provider, str(subject), email, name[:200] if isinstance(name, str) and name else None)


def _unusable(provider: str, problem: str) -> ProviderError:
    log.warning("%s sent an unusable profile: %s", provider, problem)
    return ProviderError(f"{provider} sent an unusable profile: {problem}", code=OAUTH_PROVIDER_ERROR)


async def _google(client: AsyncOAuth2Client, config: OAuthClient) -> Identity:
    info = await _get_json(client, config.userinfo_url, "google")
    if not isinstance(info, dict) or not info.get("sub") or not info.get("email"):
        raise ProviderError("google sent a profile without sub or email", code=OAUTH_PROVIDER_ERROR)
    if info.get("email_verified") not in (True, "true"):
        raise Forbidden("your Google email address is not verified", code="email_not_verified")
    return _identity("google", info["sub"], info["email"], info.get("name"), (str,))  # OpenID: sub is a string


async def _github(client: AsyncOAuth2Client, config: OAuthClient) -> Identity:
    accept = "application/vnd.github+json"
    user = await _get_json(client, config.userinfo_url, "github", accept)
    if not isinstance(user, dict) or user.get("id") is None:
        raise ProviderError("github sent a profile without an id", code=OAUTH_PROVIDER_ERROR)
    email = user.get("email")  # the public email, which GitHub only allows once verified
    if not email and config.emails_url:
        emails = await _get_json(client, config.emails_url, "github", accept)
        email = next((e.get("email") for e in emails if isinstance(e, dict) and e.get("primary") and e.get("verified")),
                     None) if isinstance(emails, list) else None
    if not email:
        raise Forbidden("your GitHub account has no verified primary email address", code="email_not_verified")
    return _identity("github", user["id"], email, user.get("name") or user.get("login"), (int, str))  # GitHub: a number


FETCHERS = {"google": _google, "github": _github}


async def account_for(identity: Identity, signup_enabled: bool) -> User:
    """The account signed in as: the one linked to this identity, else the one with its
    (verified) email, which gets linked, else a new one when sign-up is open."""
    user = await User.get_or_none(oauth_provider=identity.provider, oauth_subject=identity.subject)
    if user is not None:
        return user
    email = identity.email.strip().lower()
    user = await User.get_or_none(email=email)
    if user is not None:
        if user.oauth_provider == identity.provider:  # linked to another account at the same provider
            raise Forbidden(f"this account is linked to a different {identity.provider} account",
                            code="oauth_account_mismatch")
        if user.oauth_provider is None:
            user.oauth_provider, user.oauth_subject = identity.provider, identity.subject
            await user.save(update_fields=["oauth_provider", "oauth_subject"])
            log.info("linked a %s sign-in to account %s", identity.provider, user.id)
        return user
    if not signup_enabled:
        raise Forbidden("sign-up is disabled on this server", code="signup_disabled")
    try:
        user = await User.create(email=email, name=identity.name, role="user",
                                 oauth_provider=identity.provider, oauth_subject=identity.subject)
    except IntegrityError:  # the same person finished two sign-ins at once
        return await User.get(email=email)
    log.info("created account %s from a %s sign-in", user.id, identity.provider)
    return user
