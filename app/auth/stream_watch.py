"""Open streams (session SSE, AgentSpec /stream, /ws) keep checking the credential they
were opened with, so that revoking it (API key deleted, logout, refresh-token reuse) or
its expiry ends them too, and not only the next request (docs/api.md §8.2).

Authentication runs once, at the handshake. After that a task beside each stream wakes
every SSE_HEARTBEAT_SECONDS, and at the credential's expiry, and makes the cheap part of
the check again: the expiry, and one indexed query for revocation. Nothing runs per
delivered event, so fan-out to many subscribers costs what it did. A query's answer is
shared for a second by every stream of the same credential, so a thousand streams of one
key cost one query, not a thousand.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable

from quart import current_app

from app.auth.principal import Principal, current_principal
from app.models import ApiKey, RefreshToken
from app.timeutil import utcnow
from app.wiring import current_runtime

log = logging.getLogger("app.auth.stream_watch")

SHARED_SECONDS = 1.0  # how long one revocation answer serves every stream of its credential
REVOKED_KEY = "invalid or revoked API key"  # the same messages as a request's 401 (app/auth/service.py)
SIGNED_OUT = "this login was signed out; log in again"
EXPIRED_TOKEN = "access token expired; refresh it with POST /v1/auth/refresh"
EXPIRED_KEY = "API key expired"


class RevocationChecks:
    """Whether credentials were revoked since they were accepted; one per app."""

    def __init__(self) -> None:
        self._recent: dict[uuid.UUID, tuple[float, asyncio.Future[str | None]]] = {}

    async def problem(self, principal: Principal) -> str | None:
        credential = principal.api_key_id or principal.family_id
        if credential is None:
            return None
        now = time.monotonic()
        recent = self._recent.get(credential)
        if recent is None or now - recent[0] >= SHARED_SECONDS:
            recent = (now, asyncio.ensure_future(_revocation(principal)))
            self._recent[credential] = recent
            for stale in [c for c, (at, _) in self._recent.items() if now - at >= SHARED_SECONDS]:
                del self._recent[stale]
        # shield: a stream that ends while the query runs must not cancel it for the others
        return await asyncio.shield(recent[1])


async def _revocation(principal: Principal) -> str | None:
    try:
        if principal.api_key_id is not None:
            return None if await ApiKey.exists(id=principal.api_key_id) else REVOKED_KEY
        # The same rule as each request's (AuthService.principal_for).
        live = await RefreshToken.exists(family_id=principal.family_id, user_id=principal.user_id,
                                         revoked_at__isnull=True)
        return None if live else SIGNED_OUT
    except Exception:  # the database is down: that revokes nothing; the next round checks again
        log.warning("could not re-check a stream's credential; it stays open until the next check", exc_info=True)
        return None


class CredentialWatch:
    """One stream's watch. `problem` is set (the 401 message a request would get) when the
    credential stopped working, and `on_end` is called then."""

    def __init__(self, principal: Principal, checks: RevocationChecks | None, every_seconds: float):
        self.principal = principal
        self.checks = checks  # None: nothing to check (AUTH_MODE=none)
        self.every = every_seconds
        self.problem: str | None = None

    @contextlib.asynccontextmanager
    async def running(self, on_end: Callable[[], object]) -> AsyncIterator[CredentialWatch]:
        if self.checks is None:
            yield self
            return
        task = asyncio.create_task(self._watch(on_end), name="credential-watch")
        try:
            yield self
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _watch(self, on_end: Callable[[], object]) -> None:
        assert self.checks is not None
        while self.problem is None:
            await asyncio.sleep(self._until_next_check())
            self.problem = self._expired() or await self.checks.problem(self.principal)
        on_end()

    def _until_next_check(self) -> float:
        if self.principal.expires_at is None:
            return self.every
        return max(0.0, min(self.every, (self.principal.expires_at - utcnow()).total_seconds()))

    def _expired(self) -> str | None:
        expires = self.principal.expires_at
        if expires is None or expires > utcnow():
            return None
        return EXPIRED_KEY if self.principal.api_key_id is not None else EXPIRED_TOKEN


def watch_credential() -> CredentialWatch:
    """The watch for the stream the current request or WebSocket opens."""
    principal = current_principal()
    checks = current_app.extensions["stream_checks"] if principal.via != "none" else None
    return CredentialWatch(principal, checks, current_runtime().settings.sse_heartbeat_seconds)
