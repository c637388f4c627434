"""Prometheus metrics (prometheus-client), one registry per app so that several apps
in one process (tests) never collide. Names follow AgentSpec's (agentspec_*)."""

from __future__ import annotations

import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from quart import Quart, g, request

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.requests = Counter("agentspec_requests_total", "HTTP requests by route template and status",
                                ["method", "route", "status"], registry=r)
        self.request_duration = Histogram("agentspec_request_duration_seconds", "Time to the response headers",
                                          ["method", "route"], buckets=BUCKETS, registry=r)
        self.errors = Counter("agentspec_errors_total", "Error responses and failed turns", ["kind", "code"], registry=r)
        self.tokens = Counter("agentspec_tokens_total", "Model tokens", ["provider", "model", "kind"], registry=r)
        self.turns = Counter("agentspec_turns_total", "Finished turns by outcome", ["outcome"], registry=r)
        self.tool_calls = Counter("agentspec_tool_calls_total", "Tool calls", ["tool", "outcome"], registry=r)
        self.pipeline_steps = Counter("agentspec_pipeline_steps_total", "Pipeline steps by final status", ["status"],
                                      registry=r)
        self.active_turns = Gauge("agentspec_sessions_active", "Sessions with a turn running or queued", registry=r)
        self.sse_connections = Gauge("agentspec_sse_connections", "Open SSE streams", registry=r)
        self.ws_connections = Gauge("agentspec_websocket_connections", "Open /ws connections", registry=r)

    def watch(self, active_turns: Callable[[], float], sse: Callable[[], float], ws: Callable[[], float]) -> None:
        """Gauges read at scrape time from the parts that already know the numbers."""
        self.active_turns.set_function(active_turns)
        self.sse_connections.set_function(sse)
        self.ws_connections.set_function(ws)

    def instrument(self, app: Quart) -> None:
        @app.before_request
        async def _start_timer() -> None:
            g.metrics_started = time.perf_counter()

        @app.after_request
        async def _count(response):
            route = request.url_rule.rule if request.url_rule is not None else "unmatched"
            self.requests.labels(request.method, route, str(response.status_code)).inc()
            started = getattr(g, "metrics_started", None)
            if started is not None:
                self.request_duration.labels(request.method, route).observe(time.perf_counter() - started)
            if response.status_code >= 400:
                self.errors.labels("http", str(response.status_code)).inc()
            return response
