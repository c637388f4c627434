"""Access tokens (JWT, HS256) and opaque secrets (refresh tokens, API keys)."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import uuid
from typing import Any

import jwt

from app.timeutil import utcnow

ALGORITHM = "HS256"
API_KEY_PREFIX = "evr_"


class TokenError(Exception):
    pass


def issue_access_token(secret: str, user_id: uuid.UUID, role: str, family_id: uuid.UUID, ttl_seconds: int) -> str:
    issued = utcnow()
    claims = {"sub": str(user_id), "role": role, "fam": str(family_id), "typ": "access",
              "iat": issued, "exp": issued + dt.timedelta(seconds=ttl_seconds), "jti": uuid.uuid4().hex}
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def decode_access_token(secret: str, token: str) -> dict[str, Any]:
    """The token's claims, with `sub` (the user) and `fam` (the login) as UUIDs."""
    try:
        claims = jwt.decode(token, secret, algorithms=[ALGORITHM], options={"require": ["exp", "sub", "fam"]})
    except jwt.ExpiredSignatureError:
        raise TokenError("access token expired; refresh it with POST /v1/auth/refresh") from None
    except jwt.InvalidTokenError:
        raise TokenError("invalid access token") from None
    if claims.get("typ") != "access":
        raise TokenError("invalid access token")
    # Only this server can sign a token, but a secret that leaked or a token made by an
    # older version must still be a 401, not a 500 further on: the ids must be UUIDs.
    try:
        claims["sub"], claims["fam"] = uuid.UUID(str(claims["sub"])), uuid.UUID(str(claims["fam"]))
    except ValueError:
        raise TokenError("invalid access token") from None
    return claims


def expiry_of(claims: dict[str, Any]) -> dt.datetime | None:
    """When a decoded token stops working; None if that is beyond what a datetime holds
    (a TTL of centuries), which is the same as never for an open stream."""
    try:
        return dt.datetime.fromtimestamp(claims["exp"], dt.UTC)
    except (OverflowError, OSError, ValueError, TypeError):
        return None


def looks_like_jwt(token: str) -> bool:
    return token.count(".") == 2


def new_refresh_token() -> str:
    return secrets.token_urlsafe(48)


def new_api_key() -> str:
    return API_KEY_PREFIX + secrets.token_bytes(32).hex()


def digest(secret: str) -> str:
    """Refresh tokens and API keys are long random strings, so a plain SHA-256 is enough
    (no salt or slow hash needed) and allows lookup by hash."""
    return hashlib.sha256(secret.encode()).hexdigest()
