"""The dashboard warns, above every view, when the server runs without authentication on an
address other machines can reach (AUTH_MODE=none, BIND=0.0.0.0:...: the defaults), and
shows nothing of the kind on a loopback address. Debian's chromium driven by Playwright,
against a real server process (one bound to 0.0.0.0 is reached here on 127.0.0.1)."""

from __future__ import annotations

import httpx
import pytest

from tests.browser.chromium import playwright_or_skip
from tests.live_server import LiveServer

expect = playwright_or_skip().expect


@pytest.fixture
def server_on(tmp_path):
    """A server without authentication listening on `host` (its port: a free one)."""
    servers: list[LiveServer] = []

    def start(host: str) -> LiveServer:
        server = LiveServer({"AUTH_MODE": "none"}, tmp_path / host)
        server.env["BIND"] = f"{host}:{server.port}"
        servers.append(server)
        return server.start()

    yield start
    for server in servers:
        server.stop()


def open_dashboard(browser, server: LiveServer):
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(f"uncaught: {exc}"))
    page.on("console", lambda msg: errors.append(f"console: {msg.text}") if msg.type == "error" else None)
    page.goto(server.url + "/")
    expect(page.get_by_test_id("connection-status")).to_have_attribute("data-state", "live")
    return context, page, errors


def test_no_authentication_on_a_reachable_address_shows_a_banner(browser, server_on):
    server = server_on("0.0.0.0")
    (warning,) = httpx.get(f"{server.url}/health", timeout=5).json()["warnings"]
    assert "anyone who can reach this port has full control" in warning
    assert f"WARNING app.auth [-] {warning}" in server.log()  # and said so at start

    context, page, errors = open_dashboard(browser, server)
    try:
        banner = page.get_by_test_id("config-warning")
        expect(banner).to_be_visible()
        expect(banner).to_have_attribute("role", "alert")
        expect(banner.get_by_test_id("config-warning-text")).to_have_text([warning])
        # Above the views, so it stays in sight when moving between them.
        page.get_by_test_id("nav-agents").click()
        expect(page).to_have_url(f"{server.url}/#/agents")
        expect(banner).to_be_in_viewport()
    finally:
        context.close()
    assert not errors, errors


def test_no_banner_on_a_loopback_address(browser, server_on):
    server = server_on("127.0.0.1")
    assert httpx.get(f"{server.url}/health", timeout=5).json()["warnings"] == []
    context, page, errors = open_dashboard(browser, server)
    try:
        # The page asked /health (the same request that shows a banner) and showed none.
        page.wait_for_function("() => performance.getEntriesByName(location.origin + '/health').length > 0")
        expect(page.get_by_test_id("config-warning")).to_be_hidden()
    finally:
        context.close()
    assert not errors, errors
    assert "full control" not in server.log()
