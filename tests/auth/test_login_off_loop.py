"""A login's password hash (argon2: tens to hundreds of ms of CPU) runs off the event loop,
so other requests and live streams go on while logins are checked. Against a real server
process: the measure is how long /health takes while several logins are being hashed."""

from __future__ import annotations

import asyncio
import statistics
import time

import httpx

from tests.auth.conftest import ADMIN

LOGINS = 5


async def _login(http: httpx.AsyncClient) -> float:
    started = time.perf_counter()
    response = await http.post("/v1/auth/login", json={"email": ADMIN[0], "password": ADMIN[1]})
    assert response.status_code == 200, response.text
    return time.perf_counter() - started


async def _health(http: httpx.AsyncClient) -> float:
    started = time.perf_counter()
    assert (await http.get("/health")).status_code == 200
    return time.perf_counter() - started


async def _health_while(http: httpx.AsyncClient, busy: asyncio.Future) -> list[float]:
    """/health one request after the other, for as long as `busy` is not done."""
    latencies = []
    while not busy.done():
        latency = await _health(http)
        if not busy.done():  # answered while logins were still being checked
            latencies.append(latency)
    return latencies


async def test_logins_do_not_stall_other_requests(live_server_factory):
    server = live_server_factory({"AUTH_MODE": "full", "AUTH_ADMIN_EMAIL": ADMIN[0],
                                  "AUTH_ADMIN_PASSWORD": ADMIN[1], "RATE_LIMIT_ENABLED": "false"})
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
        await _login(http)  # warm up (first login, connection pool)
        # One hash's time, as this machine runs it now: a login alone (the fastest of two).
        one_login = min([await _login(http), await _login(http)])
        baseline = statistics.median([await _health(http) for _ in range(10)])

        logins = asyncio.ensure_future(asyncio.gather(*[_login(http) for _ in range(LOGINS)]))
        during = await _health_while(http, logins)
        await logins

    # With hashing on the loop, every /health asked for during the burst waits for the
    # hash in progress (and often the next ones): its typical (median) latency is about
    # one login's. Off the loop it is a plain request's, slowed only by sharing the CPU
    # with the hashing threads. A quarter of a login's time leaves a wide margin for a
    # noisy 2-core machine either way; the median, not the maximum, so that one
    # scheduler hiccup cannot fail it.
    assert len(during) >= 3, f"too few /health answers during {LOGINS} logins of {one_login:.3f} s: {during}"
    typical = statistics.median(during)
    assert typical < one_login / 4, (
        f"/health took {typical * 1000:.0f} ms (median of {len(during)}; {baseline * 1000:.1f} ms when idle) "
        f"while logins of {one_login * 1000:.0f} ms each were checked")
