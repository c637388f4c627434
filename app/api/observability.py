"""Placeholder: filled in by the AgentSpec work (issue 6)."""

from quart import Blueprint

bp = Blueprint("observability", __name__)
