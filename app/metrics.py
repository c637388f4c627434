"""Prometheus metrics (prometheus-client), one registry per app so that several apps
in one process (tests) never collide. Names follow AgentSpec's (agentspec_*)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

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
        self._request_children: dict[tuple[str, str, int], tuple[Any, Any, Any]] = {}

    def watch(self, active_turns: Callable[[], float], sse: Callable[[], float], ws: Callable[[], float]) -> None:
        """Gauges read at scrape time from the parts that already know the numbers."""
        self.active_turns.set_function(active_turns)
        self.sse_connections.set_function(sse)
        self.ws_connections.set_function(ws)

    def count_request(self, method: str, route: str, status: int, seconds: float | None) -> None:
        """One HTTP request (`route`: its URL rule, or "unmatched"). The labelled children
        are kept, as prometheus-client keeps them anyway: its `labels()` takes ~3 µs a
        call, and every request needed two or three."""
        key = (method, route, status)
        children = self._request_children.get(key)
        if children is None:
            errors = self.errors.labels("http", str(status)) if status >= 400 else None
            children = (self.requests.labels(method, route, str(status)), self.request_duration.labels(method, route), errors)
            self._request_children[key] = children
        count, duration, error = children
        count.inc()
        if seconds is not None:
            duration.observe(seconds)
        if error is not None:
            error.inc()
