"""Placeholder: filled in by the AgentSpec work (issue 6)."""

from quart import Blueprint

bp = Blueprint("agentspec", __name__)
