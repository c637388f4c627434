"""GET /health (Everruns)."""

from __future__ import annotations

from pydantic import BaseModel, Field
from quart import Blueprint, current_app
from quart_schema import tag, validate_response

from app import __version__
from app.wiring import current_runtime

bp = Blueprint("health", __name__)


class Health(BaseModel):
    status: str
    version: str
    runner_mode: str
    auth_mode: str
    warnings: list[str] = Field(description="Configuration problems an operator must fix, e.g. AUTH_MODE=none "
                                            "on an address other machines can reach; empty when none")


@bp.get("/health")
@tag(["Health"])
@validate_response(Health)
async def health():
    """Liveness, version, runner mode, auth mode and configuration warnings."""
    settings = current_runtime().settings
    return Health(status="ok", version=__version__, runner_mode="Temporal" if settings.temporal else "InProcess",
                  auth_mode=settings.auth_mode.capitalize(), warnings=current_app.extensions["auth"].warnings)
