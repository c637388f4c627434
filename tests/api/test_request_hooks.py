"""The hooks every HTTP request passes through (app/api/request_hooks.py): a request that
authentication refuses still gets its request id, the security headers and its place in
the metrics; a handler's own security headers are kept."""

from __future__ import annotations

from quart import Response

from app.auth.middleware import add_security_headers
from app.main import create_app


async def test_a_refused_request_is_identified_hardened_and_counted(settings):
    app = create_app(settings.replace(auth_mode="admin", auth_admin_email="admin@example.com",
                                      auth_admin_password="admin-password-1",
                                      jwt_secret="test-jwt-secret-0123456789abcdef"))
    async with app.test_app():
        client = app.test_client()
        for _ in range(2):
            refused = await client.get("/v1/agents", headers={"X-Request-ID": "refused-1"})
        assert refused.status_code == 401
        assert refused.headers["X-Request-ID"] == "refused-1"
        assert refused.headers["X-Frame-Options"] == "DENY"
        assert refused.headers["X-Content-Type-Options"] == "nosniff"
        registry = app.extensions["runtime"].metrics.registry
        assert registry.get_sample_value("agentspec_requests_total",
                                         {"method": "GET", "route": "/v1/agents", "status": "401"}) == 2
        assert registry.get_sample_value("agentspec_request_duration_seconds_count",
                                         {"method": "GET", "route": "/v1/agents"}) == 2
        assert registry.get_sample_value("agentspec_errors_total", {"kind": "http", "code": "401"}) == 2


def test_security_headers_leave_a_handlers_own_alone():
    page = Response("<p>hi</p>", mimetype="text/html",
                    headers={"Content-Security-Policy": "default-src 'none'", "X-Frame-Options": "SAMEORIGIN"})
    add_security_headers(page)
    assert page.headers.getlist("Content-Security-Policy") == ["default-src 'none'"]
    assert page.headers.getlist("X-Frame-Options") == ["SAMEORIGIN"]
    assert page.headers["X-Content-Type-Options"] == "nosniff" and page.headers["Referrer-Policy"] == "no-referrer"
    plain = Response("{}", mimetype="application/json")
    add_security_headers(plain)
    assert "Content-Security-Policy" not in plain.headers and plain.headers["X-Frame-Options"] == "DENY"
