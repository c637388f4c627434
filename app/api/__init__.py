"""HTTP routes: one blueprint per resource (and, later, per API dialect)."""

from quart import Quart

from app.api import agents, capabilities, docs, events, health, llm, messages, sessions

BLUEPRINTS = (health.bp, docs.bp, agents.bp, sessions.bp, messages.bp, events.bp, llm.bp, capabilities.bp)


def register_blueprints(app: Quart) -> None:
    for blueprint in BLUEPRINTS:
        app.register_blueprint(blueprint)
