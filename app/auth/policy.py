"""Which scope each route needs. Deny by default: a route whose blueprint is not listed
here needs the admin scope, so a route added later cannot be left open by accident
(tests/auth/test_route_protection.py walks the URL map to check every one)."""

from __future__ import annotations

PUBLIC = "public"
AUTHENTICATED = "authenticated"  # any valid credentials, no particular scope

PUBLIC_ENDPOINTS = frozenset({
    "health.health", "observability.healthz", "openapi", "docs.swagger_ui", "docs.swagger_init", "docs.swagger_asset",
    "dashboard.index", "dashboard.asset",
    "auth.auth_config", "auth.login", "auth.refresh", "auth.register", "auth.oauth_start", "auth.oauth_callback",
})

# blueprint -> (scope for reading, scope for writing)
SCOPES_BY_BLUEPRINT = {
    "agents": ("agents:read", "agents:write"),
    "capabilities": ("agents:read", "agents:write"),
    "mcp_servers": ("agents:read", "agents:write"),  # stdio ones need an admin too (app/services/mcp_servers.py)
    "sessions": ("sessions:read", "sessions:write"),
    "messages": ("sessions:read", "sessions:write"),
    "tool_calls": ("sessions:read", "sessions:write"),  # approving a call lets a turn go on
    "events": ("sessions:read", "sessions:write"),
    "agent_runtime": ("sessions:read", "sessions:write"),
    "ws": ("sessions:read", "sessions:read"),
    "llm": ("llm:read", "llm:write"),
    "agentspec": ("sessions:read", "sessions:write"),  # invoke/stream/continue run turns
    "pipelines": ("agents:read", "agents:write"),
    "observability": ("admin", "admin"),  # /v1/metrics: a scraper uses an admin key
    "auth": (AUTHENTICATED, AUTHENTICATED),  # me, logout, API keys: your own account
}

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

# Routes whose blueprint's scope does not say enough: running a pipeline runs turns.
SCOPE_BY_ENDPOINT = {"pipelines.run_pipeline": "sessions:write"}

# Tokens in the query string leak into logs and history; only streams that browsers
# cannot send headers on may use ?access_token=.
QUERY_TOKEN_ENDPOINTS = frozenset({"ws.live_feed", "events.session_events"})


def required_scope(endpoint: str | None, method: str) -> str:
    if endpoint is None or endpoint in PUBLIC_ENDPOINTS:
        return PUBLIC  # no route matched (404/405 follow) or a public route
    if endpoint in SCOPE_BY_ENDPOINT:
        return SCOPE_BY_ENDPOINT[endpoint]
    blueprint = endpoint.split(".", 1)[0] if "." in endpoint else ""
    read, write = SCOPES_BY_BLUEPRINT.get(blueprint, ("admin", "admin"))
    return read if method in READ_METHODS else write
