"""Authenticate every request and WebSocket before its handler runs.

Credentials, in the order looked at: `Authorization: Bearer <jwt|evr_...>`,
`Authorization: ApiKey evr_...`, `Authorization: evr_...`, `X-API-Key: evr_...`, (streams
only) `?access_token=`, and the dashboard's HttpOnly cookie. The cookie comes last because
the browser attaches it by itself: a credential the client chose to send wins over it.
"""

from __future__ import annotations

from quart import Quart, websocket

from app.auth.origins import refuse_foreign_cookie_use
from app.auth.policy import AUTHENTICATED, PUBLIC, QUERY_TOKEN_ENDPOINTS, READ_METHODS, required_scope
from app.auth.principal import ANONYMOUS_ADMIN, Principal, set_principal
from app.auth.service import AuthService
from app.errors import Forbidden, Unauthorized
from app.models.enums import UserRole

ACCESS_COOKIE = "evr_access"
REFRESH_COOKIE = "evr_refresh"

NOBODY = Principal(None, UserRole.USER, frozenset(), "public")


def credential_of(req) -> tuple[str | None, str]:
    header = req.headers.get("Authorization", "").strip()
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() in ("bearer", "apikey") and value.strip():
            value = value.strip()
            return value, "api_key" if value.startswith("evr_") else "jwt"
        return header, "api_key" if header.startswith("evr_") else "malformed"
    if key := req.headers.get("X-API-Key", "").strip():
        return key, "api_key"
    if req.endpoint in QUERY_TOKEN_ENDPOINTS and (token := req.args.get("access_token")):
        return token, "jwt"
    if cookie := req.cookies.get(ACCESS_COOKIE):
        return cookie, "cookie"
    return None, "none"


async def authenticate(req, service: AuthService, *, is_websocket: bool = False) -> None:
    if service.mode == "none":
        set_principal(ANONYMOUS_ADMIN)
        return
    needed = required_scope(req.endpoint, req.method)
    if needed == PUBLIC:
        set_principal(NOBODY)
        return
    credential, via = credential_of(req)
    if credential is None:
        raise Unauthorized("authentication required: send Authorization: Bearer <access token> or X-API-Key: evr_...")
    if via == "cookie" and (is_websocket or req.method not in READ_METHODS):
        # Reading needs no check: another site's page cannot read the answer (no CORS for
        # cookies), but a write or a live feed acts or reads on the user's behalf.
        refuse_foreign_cookie_use(req, service.settings.cors_origins)
    principal = await service.principal_for(credential, via)
    if needed != AUTHENTICATED and not principal.has(needed):
        raise Forbidden(f"this credential lacks the '{needed}' scope")
    set_principal(principal)


SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}
# The dashboard and Swagger UI load only their own files; inline script is never allowed.
PAGE_CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
            "connect-src 'self' ws: wss:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")


def add_security_headers(response) -> None:
    """The headers above, where the handler did not set its own. Looked up once in a set
    of the response's names: werkzeug's `setdefault` raises and catches an exception for
    each header that is missing, which is every one of them on most responses."""
    present = {name.lower() for name, _ in response.headers.items()}
    for name, value in SECURITY_HEADERS.items():
        if name.lower() not in present:
            response.headers.add(name, value)
    if response.mimetype == "text/html" and "content-security-policy" not in present:
        response.headers.add("Content-Security-Policy", PAGE_CSP)


def register_websocket_auth(app: Quart, service: AuthService) -> None:
    """HTTP requests are authenticated in app/api/request_hooks.py."""

    @app.before_websocket
    async def _authenticate_websocket() -> None:
        await authenticate(websocket, service, is_websocket=True)  # raising here refuses the handshake (401/403)
