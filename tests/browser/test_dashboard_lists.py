"""The dashboard's lists in a real browser (Debian's chromium driven by Playwright) against
a real server: the sessions sidebar updates one row per change (keyed by session id, the
other rows keep their elements), the sessions home says "Select a session" once there are
sessions and "No sessions yet" only when there are none, the agents list comes a page at
a time, and moving between views does not pile up timers.

Everything is found through the DOM (test ids and data attributes). Waits use `expect`.
"""

from __future__ import annotations

import pytest

from tests.browser.chromium import playwright_or_skip
from tests.browser.pages import VIEWPORT, ok, open_live, watch_errors

expect = playwright_or_skip().expect

# Counts the page's live intervals, from the test's side (the page has no hook for it).
COUNT_INTERVALS = """
(() => {
  const live = new Set();
  const set = window.setInterval.bind(window);
  const clear = window.clearInterval.bind(window);
  window.setInterval = (...args) => { const id = set(...args); live.add(id); return id; };
  window.clearInterval = (id) => { live.delete(id); return clear(id); };
  Object.defineProperty(window, '__testIntervals', { get: () => live.size });
})();
"""

# Marks every sidebar row's link with its session id, to tell a kept element from a new one.
MARK_ROWS = """() => { for (const a of document.querySelectorAll('[data-testid="session-item"]')) a.dataset.probe = a.dataset.sessionId; }"""


@pytest.fixture
def server(live_server_factory):
    return live_server_factory({})


@pytest.fixture
def open_page(browser, server):
    contexts = []
    errors: list[str] = []

    def open_(path: str = "/", init_script: str | None = None):
        context = browser.new_context(viewport=VIEWPORT)
        contexts.append(context)
        if init_script:
            context.add_init_script(init_script)
        page = context.new_page()
        watch_errors(page, errors)
        open_live(page, server.url + path)
        return page

    yield open_
    for context in contexts:
        context.close()
    assert not errors, f"errors in the page: {errors}"


def item(page, session_id: str):
    return page.locator(f'[data-testid="session-item"][data-session-id="{session_id}"]')


def test_home_and_sidebar_follow_the_sessions(open_page, rest):
    # No sessions: the home and the sidebar say so.
    page = open_page()
    home = page.get_by_test_id("home-text")
    expect(home).to_have_attribute("data-state", "empty")
    expect(home).to_contain_text("No sessions yet")
    expect(page.get_by_test_id("session-list-empty")).to_contain_text("No sessions yet")

    # The first session arrives while the home is open: "Select a session", not "No sessions yet".
    for n in (1, 2, 3):
        ok(rest.post("/sessions", json={"session_id": f"keyed-{n}", "session_name": f"Run {n}"}))
    items = page.get_by_test_id("session-item")
    expect(items).to_have_count(3)
    expect(home).to_have_attribute("data-state", "select")
    expect(home).to_contain_text("Select a session")
    expect(page.get_by_test_id("session-list-empty")).to_be_hidden()
    # ... and so it does on a fresh load, whichever comes first (the home or the list).
    page.reload()
    expect(page.get_by_test_id("home-text")).to_contain_text("Select a session")

    # One session changes: its row is updated in place, the others are left alone.
    page.evaluate(MARK_ROWS)
    ok(rest.patch("/sessions/keyed-2/metadata", json={"session_name": "Renamed"}))
    expect(item(page, "keyed-2").get_by_test_id("session-name")).to_have_text("Renamed")
    for n in (1, 2, 3):
        expect(item(page, f"keyed-{n}")).to_have_attribute("data-probe", f"keyed-{n}")
    expect(items).to_have_count(3)

    # A new one is inserted in its place (newest first); a deleted one's row goes; the rest stay.
    ok(rest.post("/sessions", json={"session_id": "keyed-4", "session_name": "Run 4"}))
    expect(items.first).to_have_attribute("data-session-id", "keyed-4")
    ok(rest.delete("/sessions/keyed-1"))
    expect(item(page, "keyed-1")).to_have_count(0)
    order = [items.nth(i).get_attribute("data-session-id") for i in range(items.count())]
    assert order == ["keyed-4", "keyed-3", "keyed-2"], order
    for n in (2, 3):
        expect(item(page, f"keyed-{n}")).to_have_attribute("data-probe", f"keyed-{n}")

    # The filter hides rows, it does not rebuild them; the open session's row is marked.
    page.get_by_test_id("session-filter").fill("renamed")
    expect(page.locator('[data-testid="session-item"]:visible')).to_have_count(1)
    page.get_by_test_id("session-filter").fill("nothing like this")
    expect(page.get_by_test_id("session-list-empty")).to_have_text("No session matches the filter.")
    page.get_by_test_id("session-filter").fill("")
    expect(page.locator('[data-testid="session-item"]:visible')).to_have_count(3)
    item(page, "keyed-3").click()
    expect(item(page, "keyed-3")).to_have_attribute("aria-current", "page")
    expect(item(page, "keyed-3")).to_have_attribute("data-probe", "keyed-3")
    item(page, "keyed-2").click()
    expect(item(page, "keyed-2")).to_have_attribute("aria-current", "page")
    expect(item(page, "keyed-3")).not_to_have_attribute("aria-current", "page")


def test_agents_come_a_page_at_a_time(open_page, rest):
    for n in range(205):
        ok(rest.post("/v1/agents", json={"name": f"Agent {n:03d}", "system_prompt": ""}))
    page = open_page("/#/agents")
    rows = page.get_by_test_id("agent-row")
    expect(rows).to_have_count(50)
    more = page.get_by_test_id("agents-more")
    expect(more.get_by_test_id("agents-more-count")).to_have_text("50 of 205")
    more.get_by_test_id("agents-more-button").click()
    expect(rows).to_have_count(100)
    expect(more.get_by_test_id("agents-more-count")).to_have_text("100 of 205")
    for _ in range(3):
        more.get_by_test_id("agents-more-button").click()
    expect(rows).to_have_count(205)
    expect(more.get_by_test_id("agents-more-button")).to_be_hidden()
    expect(more.get_by_test_id("agents-more-count")).to_have_text("205 of 205")
    assert len({rows.nth(i).get_attribute("data-agent-id") for i in range(205)}) == 205  # none twice

    # The "New session" dialog needs every agent: it pages through all of them.
    page.get_by_test_id("new-session").click()
    expect(page.get_by_test_id("new-session-agent").locator("option")).to_have_count(205)


def test_moving_between_views_leaves_no_timers_behind(open_page, rest):
    ok(rest.post("/sessions", json={"session_id": "timers-1", "session_name": "Timers"}))
    page = open_page("/", init_script=COUNT_INTERVALS)
    expect(item(page, "timers-1")).to_be_visible()
    baseline = page.evaluate("window.__testIntervals")
    assert baseline <= 2, baseline  # the sidebar's clock and the feed's ping, nothing else
    for _ in range(3):
        for nav in ("nav-agents", "nav-providers", "nav-sessions"):
            page.get_by_test_id(nav).click()
            expect(page.locator(f'[data-testid="{nav}"].active')).to_have_count(1)
        item(page, "timers-1").click()
        expect(page.get_by_test_id("session-view")).to_be_visible()
        page.goto(page.url.split("#")[0] + "#/agents/new")
        expect(page.get_by_test_id("agent-form")).to_be_visible()
    assert page.evaluate("window.__testIntervals") == baseline


def test_a_filter_with_no_match_says_older_sessions_may_match(open_page, rest):
    """Reported: the filter searches only the sessions loaded so far, yet said "No session
    matches the filter" while the match was on a page not loaded yet."""
    for n in range(101):  # one more than a page (LIST_PAGE)
        ok(rest.post("/sessions", json={"session_id": f"many-{n:03d}", "session_name": f"Run {n:03d}"}))
    page = open_page()
    expect(page.locator('[data-testid="session-item"]')).to_have_count(100)
    page.get_by_test_id("session-filter").fill("run 000")  # the oldest: on the next page
    expect(page.get_by_test_id("session-list-empty")).to_have_text(
        "No loaded session matches the filter; “Load more” searches older ones.")
    page.get_by_test_id("load-more").click()
    expect(page.locator('[data-testid="session-item"]:visible')).to_have_count(1)
    expect(item(page, "many-000")).to_be_visible()
