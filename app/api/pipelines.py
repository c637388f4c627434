"""Placeholder: filled in by the AgentSpec work (issue 6)."""

from quart import Blueprint

bp = Blueprint("pipelines", __name__)
