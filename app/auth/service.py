"""Accounts, logins, refresh-token rotation, API keys, and turning a credential into a
Principal. Secrets are only ever stored hashed and never logged."""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import uuid
from dataclasses import dataclass
from typing import Any

from tortoise.transactions import in_transaction

from app.auth import passwords
from app.auth.principal import Principal, effective_scopes
from app.auth.tokens import (
    API_KEY_PREFIX,
    TokenError,
    decode_access_token,
    digest,
    expiry_of,
    issue_access_token,
    looks_like_jwt,
    new_api_key,
    new_refresh_token,
)
from app.config import AuthMode, ConfigError, Settings, reveal
from app.errors import Conflict, Forbidden, InvalidRequest, NotFound, Unauthorized
from app.models import ApiKey, RefreshToken, User
from app.models.enums import UserRole
from app.services.common import as_uuid
from app.timeutil import utcnow

log = logging.getLogger("app.auth")

LAST_USED_RESOLUTION = dt.timedelta(seconds=60)  # bounds the writes an API key causes
# The furthest an API key's expiry may be set, by expires_in_days or expires_at alike: a
# key meant to live longer is made without one. It also catches a number read as a time
# (pydantic takes 99999999999999 as milliseconds: the year 5138).
MAX_KEY_LIFETIME_DAYS = 3650
BAD_LOGIN = "invalid email or password"
ADMIN_ONLY = "this server is in admin mode (AUTH_MODE=admin): only its admin account (AUTH_ADMIN_EMAIL) may sign in"


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int
    refresh_expires_in: int

    def body(self) -> dict[str, Any]:
        return {"access_token": self.access_token, "refresh_token": self.refresh_token,
                "token_type": "Bearer", "expires_in": self.expires_in}


def reachable_from_other_machines(bind: str) -> bool:
    """Whether BIND may accept connections from other machines: anything but a loopback
    address or a Unix socket (a host name or an inherited descriptor: cannot tell, so yes)."""
    if bind.startswith("unix:"):
        return False
    if bind.startswith("fd://"):
        return True
    host = bind.rpartition(":")[0].strip("[]")
    if host == "localhost":
        return False
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return True
    return not (getattr(address, "ipv4_mapped", None) or address).is_loopback


def startup_warnings(settings: Settings) -> list[str]:
    """What an operator must hear about this configuration: logged at start and shown
    on GET /health (and so in the dashboard)."""
    warnings = []
    if settings.auth_mode == "none" and reachable_from_other_machines(settings.bind):
        warnings.append(f"AUTH_MODE=none while listening on {settings.bind}: authentication is off, so anyone "
                        "who can reach this port has full control of the server (agents, sessions, provider "
                        "keys). Set AUTH_MODE=admin or full, or listen on 127.0.0.1 only.")
    return warnings


JWT_MIN_BYTES = 32


class AuthService:
    def __init__(self, settings: Settings, jwt_secret: str):
        if not jwt_secret.strip():  # a blank key would sign tokens anyone can forge
            raise ConfigError("JWT_SECRET is set but blank; set it to the key, or unset it to use the data "
                              "folder's jwt.key")
        if len(jwt_secret.encode()) < JWT_MIN_BYTES:  # RFC 7518 3.2: an HS256 key has at least 256 bits
            raise ConfigError(f"JWT_SECRET is {len(jwt_secret.encode())} bytes; HS256 needs at least {JWT_MIN_BYTES} "
                              "(a shorter key can be guessed): set a longer one, or unset it to use the data "
                              "folder's jwt.key")
        self.settings = settings
        self.secret = jwt_secret
        self.warnings = startup_warnings(settings)
        for warning in self.warnings:
            log.warning("%s", warning)

    @property
    def mode(self) -> AuthMode:
        return self.settings.auth_mode

    @property
    def signup_enabled(self) -> bool:
        return self.mode == "full" and self.settings.auth_signup_enabled

    # --- accounts ------------------------------------------------------------------

    async def ensure_admin(self) -> None:
        """The admin from AUTH_ADMIN_EMAIL / AUTH_ADMIN_PASSWORD exists with that password,
        and is the only account with the admin role."""
        email, password = self.settings.auth_admin_email, reveal(self.settings.auth_admin_password)
        if self.mode == "none" or not (email and password):
            return
        email = email.lower()
        user = await User.get_or_none(email=email)
        if user is None:
            user = await User.create(email=email, password_hash=await passwords.hash_password(password),
                                     role=UserRole.ADMIN)
            log.info("created the admin account %s", email)
        elif not await passwords.verify_password(user.password_hash, password):
            user.role, user.password_hash = UserRole.ADMIN, await passwords.hash_password(password)
            await user.save(update_fields=["role", "password_hash"])
            await self._take_back(user)
        elif user.role != UserRole.ADMIN:
            user.role = UserRole.ADMIN
            await user.save(update_fields=["role"])
        await self._demote_former_admins(user)

    @staticmethod
    async def _take_back(admin: User) -> None:
        """A new password is how an operator takes the account back (a leaked password):
        whoever knew the old one keeps nothing, neither its logins nor the API keys it made."""
        logins = await RefreshToken.filter(user_id=admin.id, revoked_at__isnull=True).update(revoked_at=utcnow())
        keys = await ApiKey.filter(user_id=admin.id).delete()
        # A live login has exactly one unrevoked refresh token (rotation revokes the others).
        log.warning("reset the admin account %s to AUTH_ADMIN_PASSWORD: %d login(s) signed out and %d API key(s) "
                    "revoked; create new keys with the new password", admin.email, logins, keys)

    @staticmethod
    async def _demote_former_admins(admin: User) -> None:
        """Only the environment makes admins, so an account that was the admin under an
        earlier AUTH_ADMIN_EMAIL is one no longer (its role is read at every request, so
        its logins and keys lose the admin powers at once)."""
        former = await User.filter(role=UserRole.ADMIN).exclude(id=admin.id).values_list("email", flat=True)
        if former:
            await User.filter(email__in=former).update(role=UserRole.USER)
            log.warning("AUTH_ADMIN_EMAIL names %s: %s no longer admin (role user now)", admin.email,
                        ", ".join(sorted(str(email) for email in former)))

    def _admit(self, user: User) -> None:
        if not self._admitted(user):
            raise Unauthorized(ADMIN_ONLY)

    def _admitted(self, user: User) -> bool:
        """AUTH_MODE=admin: the admin from the environment is the only account that signs
        in. Other accounts (made in full mode) keep their data, keys and logins, which work
        again if the server goes back to full mode."""
        return self.mode != "admin" or user.email == (self.settings.auth_admin_email or "").lower()

    async def register(self, email: str, password: str, name: str | None) -> User:
        if not self.signup_enabled:
            raise Forbidden("sign-up is disabled on this server", code="signup_disabled")
        if len(password) < passwords.MIN_LENGTH:
            raise InvalidRequest(f"password: must be at least {passwords.MIN_LENGTH} characters")
        if await User.exists(email=email.lower()):
            raise Conflict("an account with this email already exists", code="email_taken")
        return await User.create(email=email.lower(), name=name, password_hash=await passwords.hash_password(password))

    async def login(self, email: str, password: str) -> TokenPair:
        user = await User.get_or_none(email=email.lower())
        if not await passwords.verify_password(user.password_hash if user else None, password):
            raise Unauthorized(BAD_LOGIN, code="invalid_credentials")
        # verify_password refuses a missing user, and a user without a password
        assert user is not None and user.password_hash is not None
        self._admit(user)  # after the password: the answer tells nothing to who does not know it
        if passwords.needs_rehash(user.password_hash):
            user.password_hash = await passwords.hash_password(password)
            await user.save(update_fields=["password_hash"])
        return await self.issue(user)

    async def issue(self, user: User, family_id: uuid.UUID | None = None) -> TokenPair:
        family_id = family_id or uuid.uuid4()
        refresh = new_refresh_token()
        ttl = self.settings.refresh_token_ttl_seconds
        await RefreshToken.create(user=user, family_id=family_id, token_hash=digest(refresh),
                                  expires_at=utcnow() + dt.timedelta(seconds=ttl))
        access = issue_access_token(self.secret, user.id, user.role, family_id, self.settings.access_token_ttl_seconds)
        return TokenPair(access, refresh, self.settings.access_token_ttl_seconds, ttl)

    async def refresh(self, refresh_token: str) -> TokenPair:
        """Rotate: the presented token stops working and a new one is issued. Presenting
        an already rotated token means it was copied: the whole family is revoked.

        The transaction must commit that revocation, so errors are raised after it."""
        problem, pair = None, None
        async with in_transaction():
            # OF refresh_tokens: the user is joined (LEFT OUTER JOIN), and PostgreSQL refuses to
            # lock the nullable side of an outer join; only the token's row needs the lock.
            stored = await RefreshToken.filter(token_hash=digest(refresh_token)) \
                .select_for_update(of=("refresh_tokens",)).select_related("user").get_or_none()
            if stored is None:
                problem = "invalid refresh token"
            elif stored.revoked_at is not None and not await self._rotated(stored):
                # The login's newest token, revoked with its login (logout, or a reuse
                # detected earlier): nothing was stolen here.
                problem = "this login was signed out; log in again"
            elif stored.revoked_at is not None:
                await self._revoke_family(stored.family_id)
                log.warning("refresh token reused for user %s: family revoked", stored.user_id)
                problem = "refresh token already used; every session of this login was signed out"
            elif stored.expires_at <= utcnow():
                problem = "refresh token expired; log in again"
            elif not self._admitted(stored.user):
                problem = ADMIN_ONLY  # not rotated: the login works again in full mode
            else:
                stored.revoked_at = utcnow()
                await stored.save(update_fields=["revoked_at"])
                pair = await self.issue(stored.user, stored.family_id)
        if problem:
            raise Unauthorized(problem)
        assert pair is not None  # no problem: a pair was issued
        return pair

    async def logout(self, principal: Principal) -> None:
        """Sign out the caller's own login: the one its access token belongs to. A refresh
        token sent along (in the body, or the cookie a client's jar keeps from its latest
        login) does not choose another one. An API key has no login: nothing is revoked."""
        if principal.family_id is not None:
            await self._revoke_family(principal.family_id)

    @staticmethod
    async def _rotated(token: RefreshToken) -> bool:
        """Whether a refresh gave this token a successor (every refresh issues the next
        token of the family)."""
        return await RefreshToken.filter(family_id=token.family_id, created_at__gt=token.created_at).exists()

    @staticmethod
    async def _revoke_family(family_id: uuid.UUID) -> None:
        await RefreshToken.filter(family_id=family_id, revoked_at__isnull=True).update(revoked_at=utcnow())

    # --- credentials -----------------------------------------------------------------

    async def principal_for(self, credential: str, via: str) -> Principal:
        if credential.startswith(API_KEY_PREFIX):
            return await self._principal_for_key(credential)
        if not looks_like_jwt(credential):
            raise Unauthorized("malformed credentials: send a Bearer access token or an evr_ API key")
        try:
            claims = decode_access_token(self.secret, credential)
        except TokenError as exc:
            raise Unauthorized(str(exc)) from None
        family = claims["fam"]
        # The login must be the token's user's own: a family id is no credential by itself.
        if not await RefreshToken.exists(family_id=family, user_id=claims["sub"], revoked_at__isnull=True):
            raise Unauthorized("this login was signed out; log in again")
        user = await User.get_or_none(id=claims["sub"])
        if user is None:
            raise Unauthorized("account no longer exists")
        self._admit(user)
        return Principal(user.id, user.role, effective_scopes(user.role, None), via, family, user.email,
                         expires_at=expiry_of(claims))

    async def _principal_for_key(self, key: str) -> Principal:
        api_key = await ApiKey.get_or_none(key_hash=digest(key)).select_related("user")
        if api_key is None:
            raise Unauthorized("invalid or revoked API key")
        moment = utcnow()
        if api_key.expires_at is not None and api_key.expires_at <= moment:
            raise Unauthorized("API key expired")
        self._admit(api_key.user)
        if api_key.last_used_at is None or moment - api_key.last_used_at > LAST_USED_RESOLUTION:
            await ApiKey.filter(id=api_key.id).update(last_used_at=moment)
        user = api_key.user
        return Principal(user.id, user.role, effective_scopes(user.role, api_key.scopes), "api_key", None, user.email,
                         api_key_id=api_key.id, expires_at=api_key.expires_at)

    # --- API keys --------------------------------------------------------------------

    async def create_api_key(self, principal: Principal, name: str, scopes: list[str],
                             expires_at: dt.datetime | None) -> tuple[ApiKey, str]:
        """A key never has more than its owner, and a key only mints keys within itself."""
        owned = effective_scopes(principal.role, None)
        # A key's own scopes bound what it mints; its `admin` implies every scope (§8.4).
        minted_by_key = principal.via == "api_key" and "admin" not in principal.scopes
        allowed = owned & principal.scopes if minted_by_key else owned
        wants_all = "*" in scopes and principal.via != "api_key"
        requested = allowed if "*" in scopes else frozenset(scopes)
        if beyond_owner := requested - owned:
            raise Forbidden(f"scopes: a key cannot have more than its owner ({', '.join(sorted(beyond_owner))})")
        if beyond_key := requested - allowed:
            raise Forbidden("scopes: a key can only create keys within its own scopes, and this one lacks "
                            f"{', '.join(sorted(beyond_key))}")
        if expires_at is not None and expires_at <= utcnow():
            raise InvalidRequest("expires_at: must be in the future")
        if expires_at is not None and expires_at > utcnow() + dt.timedelta(days=MAX_KEY_LIFETIME_DAYS):
            raise InvalidRequest(f"expires_at: must be at most {MAX_KEY_LIFETIME_DAYS} days from now "
                                 "(leave it out for a key that never expires)")
        key = new_api_key()
        row = await ApiKey.create(user_id=principal.user_id, name=name, prefix=key[:12], key_hash=digest(key),
                                  scopes=["*"] if wants_all else sorted(requested), expires_at=expires_at)
        return row, key

    async def list_api_keys(self, principal: Principal) -> list[ApiKey]:
        return list(await ApiKey.filter(user_id=principal.user_id).order_by("-created_at"))

    async def delete_api_key(self, principal: Principal, key_id: str) -> None:
        parsed = as_uuid(key_id)
        deleted = 0 if parsed is None else await ApiKey.filter(id=parsed, user_id=principal.user_id).delete()
        if not deleted:
            raise NotFound(f"API key '{key_id}' not found")
