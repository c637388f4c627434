"""GET /healthz (AgentSpec: liveness with a database check) and GET /v1/metrics
(Prometheus text)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from quart import Blueprint, Response, current_app
from quart_schema import tag
from tortoise import Tortoise

from app import __version__
from app.db import DatabaseUnavailable
from app.wiring import current_runtime

bp = Blueprint("observability", __name__)

CHECK_SECONDS = 1.5  # each check; they run at once, so /healthz answers within 2 s

Probe = Callable[[], Awaitable[object]]  # fails, or answers False, when unhealthy


async def _check(probe: Probe) -> str:
    # Its own task, given up on at the deadline without waiting for it to wind down
    # (as wait_for would): a probe stuck on a connection that does not answer may take
    # its time to let go, and the answer must not wait for that.
    task = asyncio.ensure_future(probe())
    done, _ = await asyncio.wait({task}, timeout=CHECK_SECONDS)
    if not done:
        task.cancel()
        task.add_done_callback(_forget)
        return f"error: no answer within {CHECK_SECONDS:g} s"
    exc = task.exception()
    if isinstance(exc, DatabaseUnavailable):
        return f"error: {exc.reason}"
    if exc is not None:  # any failure means "not healthy", with the reason shown
        return f"error: {type(exc).__name__}"
    return "ok" if task.result() is not False else "error: no answer"


def _forget(task: asyncio.Task) -> None:
    if not task.cancelled():
        task.exception()  # already reported as "no answer"


async def _database_probe() -> None:
    """That the database answers and can take writes (see check_writable in app/db_*.py);
    a backend without that check is asked SELECT 1."""
    connection = Tortoise.get_connection("default")
    check_writable = getattr(connection, "check_writable", None)
    if check_writable is None:
        await connection.execute_query("SELECT 1")
    else:
        await check_writable()


def _checks() -> dict[str, Probe]:
    """The database always; in temporal mode also Redis (live events) and Temporal (turns)."""
    runtime = current_runtime()
    checks: dict[str, Probe] = {"database": _database_probe}
    if runtime.settings.temporal:
        checks["redis"] = lambda: runtime.bus.ping(CHECK_SECONDS)
        checks["temporal"] = lambda: runtime.temporal_runner.client.service_client.check_health(
            timeout=timedelta(seconds=CHECK_SECONDS))
    return checks


@bp.get("/healthz")
@tag(["Health"])
async def healthz():
    """ok, or 503 degraded with the failing checks."""
    uptime = round(time.monotonic() - current_app.config["STARTED_AT"], 1)
    checks = _checks()
    results = dict(zip(checks, await asyncio.gather(*(_check(probe) for probe in checks.values())), strict=True))
    healthy = all(result == "ok" for result in results.values())
    body = {"status": "ok" if healthy else "degraded", "version": __version__, "uptime_seconds": uptime}
    if len(results) > 1 or not healthy:
        body["checks"] = results
    return (body, 200) if healthy else (body, 503)


@bp.get("/v1/metrics")
@tag(["Health"])
async def metrics():
    """Prometheus text exposition."""
    registry = current_runtime().metrics.registry
    return Response(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
