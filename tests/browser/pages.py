"""What the dashboard tests do alike: open the dashboard in a page that fails its test on
any error in it, and read REST answers that must have succeeded."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from tests.browser.chromium import playwright_or_skip

VIEWPORT = {"width": 1280, "height": 800}


def ok(response: httpx.Response) -> dict:
    assert response.status_code < 300, response.text
    return response.json() if response.content else {}


def watch_errors(page, errors: list[str], tolerated: str | None = None) -> None:
    """Collect the page's uncaught exceptions and console errors (failed loads,
    Content-Security-Policy refusals) in `errors`. A console error that names `tolerated`
    (a status the test provokes, which the browser logs as a failed load) is let pass."""
    page.on("pageerror", lambda exc: errors.append(f"uncaught: {exc}"))
    page.on("console", lambda msg: errors.append(f"console: {msg.text}")
            if msg.type == "error" and (tolerated is None or tolerated not in msg.text) else None)


def open_live(page, url: str) -> None:
    """Load the dashboard and wait until its live connection is up."""
    response = page.goto(url)
    assert "script-src 'self'" in response.headers.get("content-security-policy", "script-src 'self'")
    playwright_or_skip().expect(page.get_by_test_id("connection-status")).to_have_attribute("data-state", "live")


@contextmanager
def dashboard_page(browser, url: str, tolerated: str | None = None) -> Iterator:
    """A new browser context's page on the dashboard at `url`, live. On the way out,
    the test fails if anything went wrong in the page (see watch_errors)."""
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    errors: list[str] = []
    watch_errors(page, errors, tolerated)
    open_live(page, url)
    yield page
    context.close()
    assert not errors, f"errors in the page: {errors}"
