"""The caller of the current request, and the one rule for what it may see.

Set once per request (or WebSocket) by app/auth/middleware.py. Services narrow their
queries with `visible()` and stamp new rows with `new_owner()`; nothing else in the
code base needs to know about users.
"""

from __future__ import annotations

import datetime as dt
import uuid
from contextvars import ContextVar
from dataclasses import dataclass

from tortoise.queryset import QuerySet

from app.models.enums import UserRole

SCOPES = ("agents:read", "agents:write", "sessions:read", "sessions:write", "llm:read", "llm:write", "admin")
USER_SCOPES = frozenset(s for s in SCOPES if s != "admin")


@dataclass(frozen=True)
class Principal:
    user_id: uuid.UUID | None
    role: str  # a UserRole (from the row, or a token's claim)
    scopes: frozenset[str]
    via: str  # none (auth off) | jwt | cookie | api_key
    family_id: uuid.UUID | None = None  # the login this access token belongs to
    email: str | None = None
    # What open streams re-check (app/auth/stream_watch.py): the key behind an api_key
    # principal, and when the credential stops working by itself (a token's `exp`).
    api_key_id: uuid.UUID | None = None
    expires_at: dt.datetime | None = None

    def has(self, scope: str) -> bool:
        return "admin" in self.scopes or scope in self.scopes

    @property
    def sees_everything(self) -> bool:
        """Admins (with the admin scope) and the server without auth see all rows."""
        return self.via == "none" or (self.role == UserRole.ADMIN and "admin" in self.scopes)


ANONYMOUS_ADMIN = Principal(None, UserRole.ADMIN, frozenset(SCOPES), "none")  # AUTH_MODE=none

_current: ContextVar[Principal] = ContextVar("principal", default=ANONYMOUS_ADMIN)


def set_principal(principal: Principal) -> None:
    _current.set(principal)


def current_principal() -> Principal:
    return _current.get()


def visible(query: QuerySet, owner_field: str = "owner_id") -> QuerySet:
    """Narrow a query to the rows the caller may see: their own, or all for admins.

    Another user's row is then simply not found (404), never shown."""
    principal = current_principal()
    if principal.sees_everything:
        return query
    return query.filter(**{owner_field: principal.user_id})


def owner_restriction() -> tuple[bool, uuid.UUID | None]:
    """visible()'s rule for hand-written SQL (app/models/raw_sql.py): whether to narrow
    to one owner's rows, and whose."""
    principal = current_principal()
    return not principal.sees_everything, principal.user_id


def new_owner() -> uuid.UUID | None:
    return current_principal().user_id


def effective_scopes(role: str, requested: list[str] | None) -> frozenset[str]:
    """What a user (or one of their keys) can do: '*' means all the owner has."""
    owned = frozenset(SCOPES) if role == UserRole.ADMIN else USER_SCOPES
    if requested is None or "*" in requested:
        return owned
    return frozenset(requested) & owned
