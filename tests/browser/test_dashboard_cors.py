"""The built-in dashboard with CORS_ORIGINS set to some other site (issue 11): it is served
by the server itself, so its /ws is same-origin and must go live, not sit "Offline"; a page
of another, unlisted origin is still refused.

Debian's chromium driven by Playwright, as in test_dashboard.py. Waits use `expect`.
"""

from __future__ import annotations

import httpx
import pytest

from tests.browser.chromium import playwright_or_skip
from tests.live_server import LiveServer

expect = playwright_or_skip().expect

ELSEWHERE = "https://elsewhere.example"

# Opens a WebSocket from the page and reports whether it opened or failed.
TRY_WEBSOCKET = """(url) => new Promise((resolve) => {
  const ws = new WebSocket(url);
  ws.onopen = () => { ws.close(); resolve('open'); };
  ws.onerror = () => resolve('refused');
})"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    live = LiveServer({"CORS_ORIGINS": ELSEWHERE}, tmp_path_factory.mktemp("cors-dashboard")).start()
    yield live
    live.stop()


@pytest.fixture
def context(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    yield context
    context.close()


def open_dashboard(context, base_url: str):
    page = context.new_page()
    errors: list[str] = []  # uncaught exceptions, failed loads (a refused WebSocket too), CSP refusals
    page.on("pageerror", lambda exc: errors.append(f"uncaught: {exc}"))
    page.on("console", lambda msg: errors.append(f"console: {msg.text}") if msg.type == "error" else None)
    page.goto(base_url + "/")
    expect(page.get_by_test_id("connection-status")).to_have_attribute("data-state", "live")
    expect(page.get_by_test_id("connection-status")).to_have_text("Live")
    return page, errors


def test_dashboard_goes_live_and_shows_a_new_session(context, server):
    page, errors = open_dashboard(context, server.url)
    with httpx.Client(base_url=server.url, timeout=10) as rest:
        agent = rest.post("/v1/agents", json={"name": "Helper", "system_prompt": "You are terse."})
        assert agent.status_code == 201, agent.text
        session = rest.post(f"/v1/agents/{agent.json()['id']}/sessions", json={"title": "Seen live"})
        assert session.status_code == 201, session.text
    item = page.locator(f'[data-testid="session-item"][data-session-id="{session.json()["id"]}"]')
    expect(item).to_be_visible()  # pushed over /ws, no reload
    expect(item.get_by_test_id("session-name")).to_have_text("Seen live")
    expect(page.get_by_test_id("connection-status")).to_have_attribute("data-state", "live")
    assert not errors, f"errors in the page: {errors}"


def test_same_origin_follows_the_host_and_other_origins_are_refused(context, server):
    # The same server under another name is another origin: its own dashboard goes live...
    other_name = server.url.replace("127.0.0.1", "localhost")
    page, errors = open_dashboard(context, other_name)
    assert not errors, f"errors in the page: {errors}"
    ws_here = other_name.replace("http://", "ws://") + "/ws"
    ws_there = server.url.replace("http://", "ws://") + "/ws"
    assert page.evaluate(TRY_WEBSOCKET, ws_here) == "open"
    # ...but a script of that page may not open the feed of http://127.0.0.1:<port>, which
    # is neither its own origin nor listed in CORS_ORIGINS.
    assert page.evaluate(TRY_WEBSOCKET, ws_there) == "refused"
    assert f"refused a WebSocket handshake on /ws from origin '{other_name}'" in server.log()
