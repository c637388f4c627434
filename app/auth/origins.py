"""Where a browser request comes from, and whether it may use the dashboard's cookie.

The same-origin rule: an `Origin` header is this server's own origin when its scheme, host
and port equal this request's (scheme, `Host` header), default ports made explicit and
`ws`/`wss` counting as `http`/`https`. X-Forwarded-Proto/Host are not trusted (nothing in
this server trusts proxy headers), so behind a proxy that terminates TLS or rewrites Host
the public origin must be listed in CORS_ORIGINS.

The cookie rule (cross-site request forgery, cross-site WebSocket hijacking): the browser
attaches the SameSite=Lax `evr_access` cookie by itself to requests from any *same-site*
page, e.g. another port of the same host or a sibling subdomain. A request it authenticates
is therefore only the signed-in user's own doing when it comes from this server's own
pages (the dashboard) or from an origin the operator listed. Header credentials and
`?access_token=` are not attached by the browser, so they need no such check.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from app.errors import Forbidden

_DEFAULT_PORTS = {"http": 80, "ws": 80, "https": 443, "wss": 443}
_HTTP_SCHEME = {"ws": "http", "wss": "https", "http": "http", "https": "https"}
# Sec-Fetch-Site values that say another page made the request (same-site included: that
# is the page on another port or subdomain the SameSite cookie does not stop).
_FOREIGN_FETCH_SITES = frozenset({"cross-site", "same-site"})


def _origin_tuple(scheme: str, netloc: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) with the port made explicit; None when it cannot be parsed."""
    scheme = _HTTP_SCHEME.get(scheme.lower(), "")
    if not scheme or not netloc:
        return None
    try:
        parts = urlsplit(f"//{netloc}")
        host, port = parts.hostname, parts.port
    except ValueError:  # a port that is not a number, or out of range
        return None
    if not host:
        return None
    return scheme, host, port or _DEFAULT_PORTS[scheme]


def is_same_origin(origin: str, scheme: str, host_header: str | None) -> bool:
    """Whether `origin` (an Origin header) is this request's own origin."""
    try:
        parts = urlsplit(origin)
    except ValueError:
        return False
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        return False
    mine = _origin_tuple(scheme, host_header or "")
    return mine is not None and _origin_tuple(parts.scheme, parts.netloc) == mine


def refuse_foreign_cookie_use(req, listed: list[str]) -> None:
    """403 `origin_not_allowed` unless a request authenticated by the cookie comes from
    this server's own origin or one listed in CORS_ORIGINS. `*` does not count here: it
    lets any page use header credentials, not the signed-in user's cookie. Without an
    Origin the browser's Sec-Fetch-Site decides; with neither, it is not a browser (or an
    old one that sends Origin on every POST and WebSocket anyway)."""
    origin = req.headers.get("Origin")
    fetch_site = req.headers.get("Sec-Fetch-Site", "").strip().lower()
    if origin == "null" and fetch_site == "same-origin":
        # A page whose referrer policy is no-referrer (ours: every response says so) sends
        # "null" for its own form posts; the browser's Sec-Fetch-Site still says where the
        # request came from, and a page cannot set it. Any other "null" (a sandboxed frame,
        # a data: URL) is refused below.
        return
    if origin:
        if origin in listed or is_same_origin(origin, req.scheme, req.headers.get("Host")):
            return
        source = f"origin {origin!r}"
    else:
        if fetch_site not in _FOREIGN_FETCH_SITES:
            return
        source = f"a {fetch_site} request"
    raise Forbidden(f"{source} may not use the sign-in cookie here: it is not this server's own origin and not "
                    "listed in CORS_ORIGINS; other sites' pages must send a credential themselves (Authorization, "
                    "X-API-Key)", code="origin_not_allowed")
