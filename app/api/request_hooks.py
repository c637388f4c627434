"""The work every HTTP request shares, as one before and one after hook.

Quart calls each hook through `ensure_async`, looking hooks up per blueprint name, and
the six small ones this used to be (request id, authentication, metrics timer; security
headers, metrics, request id header) took about a tenth of the CPU of a `GET /health`
(py-spy, docs/performance.md, issue 13). One pair does the same work, in the order it
must: the request id first, so that even a request refused by authentication has one,
then the timer, then authentication. A CORS preflight is answered before authentication
(it never carries credentials) and goes no further. WebSocket handshakes have their own
hooks (request id, origin check, authentication: app/main.py).
"""

from __future__ import annotations

import time

from quart import Quart, Response, g, request, websocket
from quart.wrappers.response import DataBody

from app.api.cors import is_preflight, preflight_response
from app.auth.middleware import add_security_headers, authenticate
from app.auth.service import AuthService
from app.log_setup import request_id_for
from app.metrics import Metrics


def install_request_hooks(app: Quart, auth: AuthService, metrics: Metrics) -> None:
    @app.before_request
    async def _before_request() -> Response | None:
        g.request_id = request_id_for(request.scope)
        g.started = time.perf_counter()
        if request.url_rule is not None and is_preflight(request):
            return preflight_response()  # a route that does not exist stays a 404
        await authenticate(request, auth)  # raises 401/403; the after hook still runs
        return None

    def finish(response: Response, req, method: str, started: float | None) -> None:
        """What every answer gets, refused /ws handshakes included: the security headers,
        the request id, and its count in the metrics."""
        add_security_headers(response)
        if response.timeout is Ellipsis and isinstance(response.response, DataBody):
            # A body already in memory is sent without Quart's RESPONSE_TIMEOUT timer: that
            # timer is a task and a timer handle per request (asyncio.wait_for), ~4% of a
            # small GET. A client that stops reading is still cut off, by
            # SEND_TIMEOUT_SECONDS (app/hypercorn_fixes.py). Streams keep their own.
            response.timeout = None
        # getattr: should anything ever fail before the hook above, the response still goes out.
        response.headers["X-Request-ID"] = getattr(g, "request_id", "-")
        route = req.url_rule.rule if req.url_rule is not None else "unmatched"
        metrics.count_request(method, route, response.status_code,
                              None if started is None else time.perf_counter() - started)

    @app.after_request
    async def _after_request(response):
        finish(response, request, request.method, getattr(g, "started", None))
        return response

    @app.after_websocket
    async def _after_websocket(response):
        """A refused handshake (401, 403 `origin_not_allowed`) is an HTTP response like any
        other. An accepted one has none (None) here."""
        if isinstance(response, Response):
            finish(response, websocket, "GET", None)
        return response
