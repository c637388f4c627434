"""HTTP routes: one blueprint per resource (and, later, per API dialect)."""

from quart import Quart

from app.api import (
    agent_runtime,
    agents,
    agentspec,
    auth,
    capabilities,
    dashboard,
    docs,
    events,
    health,
    llm,
    mcp_servers,
    messages,
    observability,
    pipelines,
    sessions,
    tool_calls,
    ws,
)

BLUEPRINTS = (health.bp, docs.bp, auth.bp, agents.bp, sessions.bp, messages.bp, events.bp, llm.bp, capabilities.bp,
              agent_runtime.bp, ws.bp, dashboard.bp, agentspec.bp, pipelines.bp, observability.bp,
              tool_calls.bp, mcp_servers.bp)


def register_blueprints(app: Quart) -> None:
    for blueprint in BLUEPRINTS:
        app.register_blueprint(blueprint)
