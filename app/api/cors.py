"""CORS_ORIGINS: CORS headers on HTTP responses, and which origins may open a WebSocket.

HTTP: quart-cors adds the CORS headers for the listed origins. A preflight (OPTIONS with
Origin and Access-Control-Request-Method) is answered before authentication with an empty
204: browsers never send credentials on it, so with AUTH_MODE admin/full it was a 401 and
no cross-origin call could follow. It reaches no handler and carries nothing but the CORS
headers quart-cors adds for a listed origin (app/api/request_hooks.py).

WebSocket (/ws): quart-cors's own check refused every handshake whose Origin was not
listed, including the server's own dashboard and clients that send no Origin at all (and
with a 400 that read "Request body is not valid JSON"). Our rule instead:
  - no Origin header (a non-browser client): allowed, it is not a cross-origin request;
  - the server's own origin (scheme, host and port of the Origin equal this request's,
    from its Host header): allowed;
  - an origin listed in CORS_ORIGINS (exactly as the browser sends it), or "*": allowed;
  - any other origin: 403 {"error": {"code": "origin_not_allowed", ...}} before the upgrade.
Without CORS_ORIGINS this check is off; a handshake authenticated by the dashboard's
cookie is still held to the same rule (app/auth/origins.py, the same-origin rule too).
"""

from __future__ import annotations

import logging
from typing import cast

from quart import Quart, Response, websocket
from quart.typing import WebsocketCallable
from quart_cors import cors, cors_exempt

from app.auth.origins import is_same_origin
from app.errors import Forbidden

log = logging.getLogger("app.api.cors")

EXPOSE_HEADERS = ["X-Request-ID", "X-Session-ID", "Retry-After"]


def websocket_origin_allowed(origin: str | None, allowed: list[str], scheme: str, host_header: str | None) -> bool:
    if not origin:
        return True  # not a browser (browsers always send Origin on a WebSocket handshake)
    if "*" in allowed or origin in allowed:
        return True
    return is_same_origin(origin, scheme, host_header)


def is_preflight(req) -> bool:
    """A CORS preflight: the browser asking whether it may send the real request."""
    return req.method == "OPTIONS" and "Origin" in req.headers and "Access-Control-Request-Method" in req.headers


def preflight_response() -> Response:
    """What every preflight gets; quart-cors's after-request hook adds the CORS headers,
    for a listed origin only."""
    return Response("", status=204)


def register_websocket_origin_check(app: Quart, origins: list[str]) -> None:
    """Refuse WebSocket handshakes from other sites' pages (register before auth, so the
    refusal names the real reason). No-op without CORS_ORIGINS."""
    if not origins:
        return

    @app.before_websocket
    async def _check_websocket_origin() -> None:
        origin = websocket.headers.get("Origin")
        if websocket_origin_allowed(origin, origins, websocket.scheme, websocket.headers.get("Host")):
            return
        log.info("refused a WebSocket handshake on %s from origin %r", websocket.path, origin)
        raise Forbidden(f"origin {origin!r} may not open a WebSocket here: it is not this server's own "
                        "origin and not listed in CORS_ORIGINS", code="origin_not_allowed")


def apply_http_cors(app: Quart, origins: list[str]) -> None:
    """CORS headers on HTTP responses for the listed origins (quart-cors), after all the
    routes are registered. quart-cors's WebSocket check is switched off for the WebSocket
    routes: register_websocket_origin_check does that job."""
    if not origins:
        return
    cors(app, allow_origin=origins, expose_headers=EXPOSE_HEADERS)
    for rule in app.url_map.iter_rules():
        if rule.websocket:
            # Quart's view_functions keeps Flask's annotation (Flask's return types)
            cors_exempt(cast(WebsocketCallable, app.view_functions[rule.endpoint]))
