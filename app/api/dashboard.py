"""The browser dashboard: static files (no build step), served at / and /static/.

Files are not hashed per release, so browsers must revalidate them (cache_timeout=0, with
ETag/Last-Modified) instead of running a stale dashboard for hours after an upgrade."""

from __future__ import annotations

from quart import Blueprint, send_from_directory
from quart_schema import hide

from app.resources import resource

STATIC = resource("static")

bp = Blueprint("dashboard", __name__)


@bp.get("/")
@hide
async def index():
    return await send_from_directory(STATIC, "index.html", cache_timeout=0)


@bp.get("/static/<path:name>")
@hide
async def asset(name: str):
    return await send_from_directory(STATIC, name, cache_timeout=0)
