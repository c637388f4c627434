"""GET /healthz (AgentSpec: liveness with a database check) and GET /v1/metrics
(Prometheus text)."""

from __future__ import annotations

import asyncio
import time

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from quart import Blueprint, Response, current_app
from quart_schema import tag
from tortoise import Tortoise

from app import __version__

bp = Blueprint("observability", __name__)

DB_CHECK_SECONDS = 2.0


async def _database_check() -> str:
    try:
        await asyncio.wait_for(Tortoise.get_connection("default").execute_query("SELECT 1"), DB_CHECK_SECONDS)
    except Exception as exc:  # any failure means "not healthy", with the reason shown
        return f"error: {type(exc).__name__}"
    return "ok"


@bp.get("/healthz")
@tag(["Health"])
async def healthz():
    """ok, or 503 degraded with the failing checks."""
    uptime = round(time.monotonic() - current_app.config["STARTED_AT"], 1)
    database = await _database_check()
    body = {"status": "ok" if database == "ok" else "degraded", "version": __version__, "uptime_seconds": uptime}
    if database != "ok":
        body["checks"] = {"database": database}
        return body, 503
    return body


@bp.get("/v1/metrics")
@tag(["Health"])
async def metrics():
    """Prometheus text exposition."""
    registry = current_app.extensions["runtime"].metrics.registry
    return Response(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
