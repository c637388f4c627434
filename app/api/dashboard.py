"""The browser dashboard: static files (no build step), served at / and /static/."""

from __future__ import annotations

from pathlib import Path

from quart import Blueprint, send_from_directory
from quart_schema import hide

STATIC = Path(__file__).resolve().parents[2] / "static"

bp = Blueprint("dashboard", __name__)


@bp.get("/")
@hide
async def index():
    return await send_from_directory(STATIC, "index.html")


@bp.get("/static/<path:name>")
@hide
async def asset(name: str):
    return await send_from_directory(STATIC, name)
