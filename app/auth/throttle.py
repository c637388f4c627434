"""Attempt limits for the credential endpoints (login, register, OAuth start): at most
`count` attempts per key in any `period` — a sliding log of attempt times.

Not quart-rate-limiter's GCRA, under which "10 a minute" means 10 at once and then one
more every 6 seconds whatever came before: a client whose attempts are slow (argon2 makes
each login take 0.1-0.5 s, longer on a busy machine) was let through again before its
minute was up, and Retry-After promised a wait the next slow attempt outlasted anyway.
Here the 11th attempt waits until the first one is a minute old.

Counters live in the process (as quart-rate-limiter's memory store did) and in the app,
so two apps (tests) never share them. RATE_LIMIT_ENABLED=false turns them off."""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Awaitable, Callable
from functools import wraps

from quart import after_this_request, current_app
from quart_rate_limiter import RateLimitExceeded

from app.wiring import current_runtime

KeyFunction = Callable[[], Awaitable[str]]

# Above this many keys, the ones without a recent attempt are forgotten (after each
# attempt), so addresses and emails tried once do not pile up for ever.
PRUNE_ABOVE = 10_000


def clock() -> float:
    return time.monotonic()


class AttemptLog:
    def __init__(self, count: int, period_seconds: float):
        self.count = count
        self.period = period_seconds
        self._attempts: dict[str, deque[float]] = {}

    def take(self, keys: list[str]) -> tuple[int, float]:
        """Count one attempt under every key, or under none (429, with the wait in
        Retry-After) when one of them already had `count` within the period. Returns
        what is left under the tightest key and the seconds until it regains one."""
        now = clock()
        windows = [self._window(key, now) for key in keys]
        full = [window for window in windows if len(window) >= self.count]
        if full:
            raise RateLimitExceeded(max(1, math.ceil(max(w[0] for w in full) + self.period - now)))
        for window in windows:
            window.append(now)
        if len(self._attempts) > PRUNE_ABOVE:
            self._prune(now)
        tightest = max(windows, key=len)
        return self.count - len(tightest), tightest[0] + self.period - now

    def _window(self, key: str, now: float) -> deque[float]:
        window = self._attempts.setdefault(key, deque())
        while window and window[0] <= now - self.period:
            window.popleft()
        return window

    def _prune(self, now: float) -> None:
        for key in [key for key, window in self._attempts.items() if not window or window[-1] <= now - self.period]:
            del self._attempts[key]


def limit_attempts(count: int, period_seconds: float, *key_functions: KeyFunction):
    """Decorate a route (beneath its @bp.<method>, above request validation, so refused
    attempts cost nothing) to allow `count` attempts per `period_seconds` under each key
    the key functions give."""
    def decorator(handler):
        @wraps(handler)
        async def limited(*args, **kwargs):
            if current_runtime().settings.rate_limit_enabled:
                log = current_app.extensions.setdefault(f"attempts:{handler.__name__}", AttemptLog(count, period_seconds))
                keys = [await key() for key in key_functions]
                try:
                    remaining, reset = log.take(keys)
                except RateLimitExceeded as refused:
                    # seconds, as take() raised it (werkzeug's 429 also allows a datetime or None)
                    assert isinstance(refused.retry_after, int)
                    _headers(count, 0, refused.retry_after)
                    raise
                _headers(count, remaining, reset)
            return await handler(*args, **kwargs)
        return limited
    return decorator


def _headers(limit: int, remaining: int, reset: float) -> None:
    """The RateLimit-* headers, on the response whichever handler makes it (a 429 too)."""
    @after_this_request
    async def add(response):
        response.headers["RateLimit-Limit"] = str(limit)
        response.headers["RateLimit-Remaining"] = str(remaining)
        response.headers["RateLimit-Reset"] = str(max(0, math.ceil(reset)))
        return response
