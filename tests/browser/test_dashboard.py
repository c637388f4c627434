"""The dashboard in a real browser (Debian's chromium driven by Playwright) against a real
server process and the fake LLM provider: live session list, streaming timeline, tool
cards, chat and cancel, external sessions, deleting, the agent and provider forms, and
catching up after the WebSocket reconnects.

Waits use Playwright's auto-retrying `expect`, never sleeps.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import httpx
import pytest

from tests.browser.chromium import playwright_or_skip
from tests.browser.feed import Feed
from tests.browser.pages import dashboard_page, ok
from tests.fakes import Error, Hang, Text, ToolCalls
from tests.helpers import FAKE_KEY

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"

expect = playwright_or_skip().expect

# Records every text the newest assistant bubbles showed, to prove the reply streamed.
RECORD_STREAM = """() => {
  window.__seen = [];
  const timeline = document.querySelector('[data-testid="timeline"]');
  new MutationObserver(() => {
    for (const el of timeline.querySelectorAll('[data-testid="message-assistant"]')) {
      const text = el.textContent;
      if (!window.__seen.includes(text)) window.__seen.push(text);
    }
  }).observe(timeline, { subtree: true, childList: true, characterData: true });
}"""



@pytest.fixture
def page(browser, server):
    with dashboard_page(browser, server.url + "/") as page:
        yield page


def hook(session_id: str, event_type: str, **fields) -> dict:
    return {"event_type": event_type, "session_id": session_id, "session_name": "External run",
            "timestamp": "2025-01-01T12:00:00Z", **fields}


def item(page, session_id: str):
    return page.locator(f'[data-testid="session-item"][data-session-id="{session_id}"]')


def test_dashboard(page, rest, fake_llm, server):
    # A session created through the API shows up in the list without a reload.
    agent = ok(rest.post("/v1/agents", json={"name": "Helper", "system_prompt": "You are terse.",
                                             "capability_ids": ["current_time"]}))
    session = ok(rest.post(f"/v1/agents/{agent['id']}/sessions", json={"title": "Chat with Helper"}))
    expect(item(page, session["id"])).to_be_visible()
    expect(item(page, session["id"]).get_by_test_id("session-name")).to_have_text("Chat with Helper")

    # Open it and chat: the reply streams in (a partial text is shown before the whole one).
    item(page, session["id"]).click()
    expect(page.get_by_test_id("session-title")).to_have_text("Chat with Helper")
    expect(page.get_by_test_id("status-badge")).to_have_text("pending")
    expect(page.get_by_test_id("timeline-empty")).to_have_text("No events yet.")
    page.evaluate(RECORD_STREAM)
    fake_llm.script(Text(["Hel", "lo there"], delay=0.5))
    page.get_by_test_id("chat-input").fill("hi")
    page.get_by_test_id("chat-send").click()
    expect(page.get_by_test_id("message-user")).to_have_text("hi")
    assistant = page.get_by_test_id("message-assistant")
    expect(assistant).to_have_text("Hello there")
    expect(assistant).to_have_attribute("data-streaming", "false")
    seen = page.evaluate("window.__seen")
    assert "Hel" in seen and seen.index("Hel") < seen.index("Hello there"), seen
    expect(page.locator('[data-testid="marker"][data-kind="completed"]')).to_have_count(1)
    expect(page.get_by_test_id("status-badge")).to_have_text("pending")
    expect(page.get_by_test_id("chat-input")).to_have_value("")

    # A tool call renders as a card with its input and output, then the final answer.
    fake_llm.script(ToolCalls([("call_time_1", "get_current_time", {"timezone": "UTC"})]), Text("It is noon."))
    page.get_by_test_id("chat-input").fill("What time is it?")
    page.get_by_test_id("chat-input").press("Enter")
    card = page.locator('[data-testid="tool-card"][data-tool-call-id="call_time_1"]')
    expect(card).to_have_attribute("data-state", "ok")
    expect(card.get_by_test_id("tool-name")).to_have_text("get_current_time")
    expect(card.get_by_test_id("tool-input")).to_contain_text('"timezone": "UTC"')
    expect(card.get_by_test_id("tool-output")).to_contain_text('"time":')
    expect(assistant.last).to_have_text("It is noon.")
    expect(page.get_by_test_id("message-user")).to_have_count(2)  # nothing doubled
    expect(page.get_by_test_id("tool-card")).to_have_count(1)

    # A provider error shows as an error banner and the status turns to failed.
    fake_llm.script(Error(400, "the fake model refuses"))
    page.get_by_test_id("chat-input").fill("fail please")
    page.get_by_test_id("chat-send").click()
    expect(page.get_by_test_id("error-banner")).to_contain_text("the fake model refuses")
    expect(page.get_by_test_id("status-badge")).to_have_text("failed")
    expect(page.get_by_test_id("session-error")).to_contain_text("the fake model refuses")
    expect(item(page, session["id"])).to_have_attribute("data-status", "failed")

    # Cancel stops a running turn.
    fake_llm.script(Hang(["Thinking"], seconds=5))
    page.get_by_test_id("chat-input").fill("take your time")
    page.get_by_test_id("chat-send").click()
    expect(page.get_by_test_id("status-badge")).to_have_text("running")
    expect(page.get_by_test_id("message-assistant").last).to_have_text("Thinking")
    page.get_by_test_id("cancel-button").click()
    expect(page.locator('[data-testid="marker"][data-kind="cancelled"]')).to_have_count(1)
    expect(page.get_by_test_id("status-badge")).to_have_text("pending")
    expect(page.get_by_test_id("cancel-button")).to_be_disabled()
    # Reported: the kept text (stored just before session.cancelled) looked like a whole answer.
    expect(page.get_by_test_id("message-assistant").last).to_have_class(re.compile(r"\binterrupted\b"))
    page.reload()  # from the log, the same
    expect(page.get_by_test_id("message-assistant").last).to_have_class(re.compile(r"\binterrupted\b"))

    # An external session reported through the Agent Runtime API, with its hook events.
    ext = "ext-run-1"
    ok(rest.post("/sessions", json={"session_id": ext, "session_name": "External run", "agent_name": "claude-code"}))
    expect(item(page, ext)).to_be_visible()
    for event in (hook(ext, "session_start"),
                  hook(ext, "message", role="user", content=[{"type": "text", "text": "list the files"}]),
                  hook(ext, "pre_tool", tool_name="Bash", tool_input={"command": "ls"}),
                  hook(ext, "post_tool", tool_name="Bash", tool_input={"command": "ls"}, tool_output="a.txt\nb.txt"),
                  hook(ext, "message", role="assistant", content=[{"type": "text", "text": "Two files."}])):
        ok(rest.post(f"/sessions/{ext}/events", json=event))
    item(page, ext).click()
    expect(page.get_by_test_id("session-kind")).to_have_text("external")
    ext_card = page.get_by_test_id("tool-card")
    expect(ext_card).to_have_count(1)
    expect(ext_card.get_by_test_id("tool-name")).to_have_text("Bash")
    expect(ext_card.get_by_test_id("tool-input")).to_contain_text('"command": "ls"')
    expect(ext_card.get_by_test_id("tool-output")).to_have_text("a.txt\nb.txt")
    expect(page.get_by_test_id("message-assistant")).to_have_text("Two files.")
    expect(page.get_by_test_id("chat-input")).to_have_count(0)  # no chat for external sessions
    expect(page.get_by_test_id("status-badge")).to_have_text("running")
    ok(rest.post(f"/sessions/{ext}/events", json=hook(ext, "session_stop", reason="done", exit_code=0)))
    expect(page.get_by_test_id("status-badge")).to_have_text("finished")
    expect(page.locator('[data-testid="marker"][data-kind="stopped"]')).to_contain_text("done")

    # Delete it from the UI: it leaves the list, and the API agrees.
    page.get_by_test_id("delete-session").click()
    page.get_by_test_id("delete-session-confirm").click()
    expect(item(page, ext)).to_have_count(0)
    expect(page).to_have_url(re.compile(r"#/sessions$"))
    assert rest.get(f"/sessions/{ext}").status_code == 404

    # Create an agent through the form, picking a capability.
    page.get_by_test_id("nav-agents").click()
    page.get_by_test_id("new-agent").click()
    form = page.get_by_test_id("agent-form")
    form.get_by_test_id("agent-name-input").fill("UI agent")
    form.get_by_test_id("agent-description").fill("made in the browser")
    form.get_by_test_id("agent-system-prompt").fill("Be helpful.")
    form.locator('[data-capability-id="current_time"] input').check()
    form.get_by_test_id("agent-save").click()
    row = page.get_by_test_id("agent-row").filter(has_text="UI agent")
    expect(row).to_be_visible()
    expect(row).to_contain_text("current_time")
    created = [a for a in ok(rest.get("/v1/agents"))["data"] if a["name"] == "UI agent"]
    assert len(created) == 1 and created[0]["capability_ids"] == ["current_time"]
    assert created[0]["system_prompt"] == "Be helpful." and created[0]["description"] == "made in the browser"

    # Add a provider: the key is written, never shown back (only the server's hint).
    secret = "sk-ui-secret-key-987654321"
    page.get_by_test_id("nav-providers").click()
    page.get_by_test_id("new-provider").click()
    pform = page.get_by_test_id("provider-form")
    pform.get_by_test_id("provider-name-input").fill("Local fake")
    pform.get_by_test_id("provider-type").select_option("openai")
    pform.get_by_test_id("provider-base-url").fill(fake_llm.openai_base_url)
    pform.get_by_test_id("provider-api-key").fill(secret)
    pform.get_by_test_id("provider-save").click()
    expect(page.get_by_test_id("provider-key-hint")).to_have_text("sk-...4321")
    expect(page.get_by_test_id("provider-api-key")).to_have_value("")
    expect(page.locator("body")).not_to_contain_text(secret)
    assert secret not in page.content()
    # ... and a model for it.
    mform = page.get_by_test_id("model-form")
    mform.get_by_test_id("model-id-input").fill("ui-model")
    mform.get_by_test_id("model-display-name").fill("UI model")
    mform.get_by_test_id("model-save").click()
    expect(page.get_by_test_id("model-row")).to_have_count(1)
    expect(page.get_by_test_id("model-row")).to_contain_text("ui-model")
    providers = ok(rest.get("/v1/llm-providers"))["data"]
    mine = [p for p in providers if p["name"] == "Local fake"]
    assert len(mine) == 1 and mine[0]["api_key_set"] and "api_key" not in mine[0]
    page.get_by_test_id("nav-providers").click()
    expect(page.get_by_test_id("provider-row")).to_have_count(2)  # the one from the environment, and ours
    expect(page.get_by_test_id("provider-row").filter(has_text="Local fake")).to_contain_text("sk-...4321")
    expect(page.locator("body")).not_to_contain_text(secret)

    # Back to the chat for the screenshot.
    item(page, session["id"]).click()
    expect(page.get_by_test_id("tool-card")).to_have_count(1)
    expect(page.get_by_test_id("message-assistant").first).to_have_text("Hello there")
    page.evaluate("document.getElementById('toasts').replaceChildren()")  # keep the picture clear
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard.png"))


def test_new_session_dialog(page, rest):
    agent = ok(rest.post("/v1/agents", json={"name": "Dialog agent", "system_prompt": ""}))
    page.get_by_test_id("new-session").click()
    dialog = page.get_by_test_id("new-session-dialog")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_test_id("new-session-agent").locator("option")).to_have_text(["Dialog agent"])
    dialog.get_by_test_id("new-session-title").fill("From the dialog")
    dialog.get_by_test_id("new-session-create").click()
    expect(dialog).to_be_hidden()
    expect(page.get_by_test_id("session-title")).to_have_text("From the dialog")
    expect(page.get_by_test_id("chat-input")).to_be_visible()
    sessions = ok(rest.get("/v1/sessions"))["data"]
    assert [s["title"] for s in sessions] == ["From the dialog"] and sessions[0]["agent_id"] == agent["id"]
    expect(page.get_by_test_id("session-item")).to_have_count(1)


def test_reconnect_catches_up_without_duplicates(page, rest):
    ext = "ext-reconnect"
    ok(rest.post("/sessions", json={"session_id": ext, "session_name": "Reconnect run"}))
    ok(rest.post(f"/sessions/{ext}/events", json=hook(ext, "pre_tool", tool_name="Read", tool_use_id="t1",
                                                        tool_input={"path": "a"})))
    ok(rest.post(f"/sessions/{ext}/events", json=hook(ext, "post_tool", tool_name="Read", tool_use_id="t1",
                                                        tool_output="A")))
    feed = Feed(page)
    page.reload()
    item(page, ext).click()
    cards = page.get_by_test_id("tool-card")
    expect(cards).to_have_count(1)
    status = page.get_by_test_id("connection-status")
    expect(status).to_have_attribute("data-state", "live")
    assert len(feed.connections) == 1

    # Drop the connection; while the dashboard waits to reconnect (1 s), things happen.
    feed.drop()
    expect(status).not_to_have_attribute("data-state", "live")
    for n in (2, 3):
        ok(rest.post(f"/sessions/{ext}/events", json=hook(ext, "pre_tool", tool_name="Read", tool_use_id=f"t{n}",
                                                            tool_input={"path": f"file{n}"})))
        ok(rest.post(f"/sessions/{ext}/events", json=hook(ext, "post_tool", tool_name="Read", tool_use_id=f"t{n}",
                                                            tool_output=f"content {n}")))
    ok(rest.post("/sessions", json={"session_id": "ext-born-offline", "session_name": "Born offline"}))
    assert status.get_attribute("data-state") != "live", "reconnected before the test posted its events"

    # It comes back by itself, refreshes the list and fetches what it missed, once.
    expect(status).to_have_attribute("data-state", "live")
    expect(item(page, "ext-born-offline")).to_be_visible()
    expect(cards).to_have_count(3)
    for n in (1, 2, 3):
        card = page.locator(f'[data-testid="tool-card"][data-tool-call-id="t{n}"]')
        expect(card).to_have_count(1)
        expect(card).to_have_attribute("data-state", "ok")
    expect(page.locator('[data-testid="tool-card"][data-tool-call-id="t3"] [data-testid="tool-output"]')).to_have_text("content 3")

    # And the live feed works again: a new event arrives once; nothing earlier doubled.
    ok(rest.post(f"/sessions/{ext}/events", json=hook(ext, "message", role="assistant", content="all read")))
    expect(page.get_by_test_id("message-assistant")).to_have_text("all read")
    expect(cards).to_have_count(3)
    assert len(feed.connections) == 2


def test_long_session_list_loads_more_on_request(page, rest):
    ids = [f"old-{i:03d}" for i in range(105)]
    for session_id in ids:
        ok(rest.post("/sessions", json={"session_id": session_id, "session_name": f"Run {session_id}"}))
    page.reload()
    expect(page.get_by_test_id("connection-status")).to_have_attribute("data-state", "live")
    items = page.get_by_test_id("session-item")
    expect(items).to_have_count(100)  # the newest page only
    expect(item(page, "old-005")).to_be_visible()
    expect(item(page, "old-004")).to_have_count(0)

    # A change to a session not loaded yet does not list it out of order.
    ok(rest.patch("/sessions/old-000/metadata", json={"session_name": "Renamed while unloaded"}))
    ok(rest.post("/sessions", json={"session_id": "new-one", "session_name": "Newest"}))
    expect(items.first).to_have_attribute("data-session-id", "new-one")
    expect(item(page, "old-000")).to_have_count(0)

    page.get_by_test_id("load-more").click()
    expect(items).to_have_count(106)
    expect(page.get_by_test_id("load-more")).to_be_hidden()  # that was the last page
    expect(items.last).to_have_attribute("data-session-id", "old-000")
    expect(item(page, "old-000").get_by_test_id("session-name")).to_have_text("Renamed while unloaded")
    ok(rest.delete("/sessions/old-002"))  # the live feed still applies to every loaded page
    expect(items).to_have_count(105)


def test_sign_in_when_auth_is_on(browser, live_server_factory, fake_llm):
    """With AUTH_MODE=admin the dashboard asks for a login, keeps it in HttpOnly cookies,
    renews an expired access token (also for the /ws handshake) and can sign out."""
    email, password = "admin@example.com", "correct horse battery staple"
    server = live_server_factory({"OPENAI_API_KEY": FAKE_KEY, "OPENAI_BASE_URL": fake_llm.openai_base_url,
                                  "OPENAI_MODEL": "fake-model", "AUTH_MODE": "admin", "AUTH_ADMIN_EMAIL": email,
                                  "AUTH_ADMIN_PASSWORD": password, "ACCESS_TOKEN_TTL_SECONDS": "2"})
    with httpx.Client(base_url=server.url, timeout=10) as rest:
        assert rest.get("/sessions").status_code == 401
        token = ok(rest.post("/v1/auth/login", json={"email": email, "password": password}))["access_token"]
        key = ok(rest.post("/v1/auth/api-keys", json={"name": "test", "scopes": ["*"]},
                           headers={"Authorization": f"Bearer {token}"}))["key"]
        rest.headers["X-API-Key"] = key
        rest.cookies.clear()

        context = browser.new_context(viewport={"width": 1280, "height": 800})
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        feed = Feed(page)
        refreshed: list[int] = []  # statuses of the page's POST /v1/auth/refresh
        page.on("response", lambda r: refreshed.append(r.status) if r.url.endswith("/v1/auth/refresh") else None)
        try:
            page.goto(server.url + "/")
            login = page.get_by_test_id("login-form")
            expect(login).to_be_visible()
            login.get_by_test_id("login-email").fill(email)
            login.get_by_test_id("login-password").fill("wrong password")
            login.get_by_test_id("login-submit").click()
            expect(login.get_by_test_id("login-error")).to_have_text("Wrong email or password.")
            login.get_by_test_id("login-password").fill(password)
            login.get_by_test_id("login-submit").click()
            expect(page.get_by_test_id("login-screen")).to_have_count(0)
            expect(page.get_by_test_id("user-email")).to_have_text(email)
            status = page.get_by_test_id("connection-status")
            expect(status).to_have_attribute("data-state", "live")
            assert all(c["httpOnly"] for c in context.cookies() if c["name"].startswith("evr_"))

            agent = ok(rest.post("/v1/agents", json={"name": "Guarded", "system_prompt": ""}))
            session = ok(rest.post(f"/v1/agents/{agent['id']}/sessions", json={"title": "Behind the login"}))
            expect(item(page, session["id"])).to_be_visible()

            # Let the 2 s access cookie lapse (the browser drops it), then reconnect /ws
            # and load a page: both renew the login through the refresh cookie.
            deadline = time.monotonic() + 10
            while any(c["name"] == "evr_access" for c in context.cookies()):
                assert time.monotonic() < deadline, "the access cookie did not expire"
                time.sleep(0.1)
            feed.drop()
            expect(status).to_have_attribute("data-state", "live")
            page.get_by_test_id("nav-agents").click()
            expect(page.get_by_test_id("agent-row").filter(has_text="Guarded")).to_be_visible()
            assert 200 in refreshed, refreshed
            assert len(feed.connections) >= 2

            page.get_by_test_id("logout").click()
            expect(page.get_by_test_id("login-form")).to_be_visible()
            assert not any(c["name"] == "evr_access" for c in context.cookies())
        finally:
            context.close()
        assert not errors, errors


def test_a_reported_event_shows_the_same_time_live_and_after_a_reload(page, rest):
    """Reported: live (from /ws) a posted event showed its reporter's timestamp, after a
    reload (from /v1) the time the server stored it, and with no date either way. Both
    now show the reporter's, with its date when that is not today."""
    ext = "ext-times"
    ok(rest.post("/sessions", json={"session_id": ext, "session_name": "Times"}))
    item(page, ext).click()
    expect(page.get_by_test_id("session-kind")).to_have_text("external")
    ok(rest.post(f"/sessions/{ext}/events", json=hook(ext, "message", role="user", content="time check",
                                                      timestamp="2020-01-02T03:04:05Z")))
    live = page.get_by_test_id("message-user").locator("xpath=..").locator("time")
    expect(live).to_contain_text("2020")
    shown = live.inner_text()
    page.reload()
    expect(page.get_by_test_id("message-user")).to_have_text("time check")
    assert page.get_by_test_id("message-user").locator("xpath=..").locator("time").inner_text() == shown


def test_full_mode_sign_in_offers_sign_up_and_oauth(browser, live_server_factory):
    """Reported: with AUTH_MODE=full the form had no "Sign in with …" for the enabled OAuth
    providers (an account made by an OAuth sign-in has no password) and no sign-up though
    it was enabled; and a throttled login told the user to read a header the page hides."""
    server = live_server_factory({"AUTH_MODE": "full", "OAUTH_GITHUB_CLIENT_ID": "id",
                                  "OAUTH_GITHUB_CLIENT_SECRET": "secret"})
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        page.goto(server.url + "/")
        login = page.get_by_test_id("login-form")
        expect(login.get_by_test_id("login-oauth-github")).to_have_attribute("href", "/v1/auth/oauth/github")
        expect(login.get_by_test_id("login-oauth-github")).to_have_text("Sign in with GitHub")
        login.get_by_test_id("login-toggle-signup").click()
        login.get_by_test_id("login-email").fill("new@example.com")
        login.get_by_test_id("login-password").fill("a long enough password")
        login.get_by_test_id("login-submit").click()
        expect(page.get_by_test_id("user-email")).to_have_text("new@example.com")  # registered, then signed in

        page.get_by_test_id("logout").click()
        login = page.get_by_test_id("login-form")
        for _ in range(11):  # 10 a minute per account (§8.7)
            login.get_by_test_id("login-email").fill("new@example.com")
            login.get_by_test_id("login-password").fill("wrong password")
            login.get_by_test_id("login-submit").click()
            expect(login.get_by_test_id("login-submit")).to_be_enabled()
        expect(login.get_by_test_id("login-error")).to_have_text(re.compile(r"^Too many attempts; try again in \d+ s\.$"))
    finally:
        context.close()
    assert not errors, errors


def test_agents_that_share_a_name_are_told_apart_in_the_new_session_dialog(page, rest):
    """Reported: names need not be unique (§3.3), and the dialog listed "Twin", "Twin"."""
    first = ok(rest.post("/v1/agents", json={"name": "Twin", "system_prompt": "", "description": "the careful one"}))
    second = ok(rest.post("/v1/agents", json={"name": "Twin", "system_prompt": ""}))
    ok(rest.post("/v1/agents", json={"name": "Solo", "system_prompt": ""}))
    page.get_by_test_id("new-session").click()
    options = page.get_by_test_id("new-session-dialog").get_by_test_id("new-session-agent").locator("option")
    expect(options).to_have_count(3)
    labels = {options.nth(i).get_attribute("value"): options.nth(i).inner_text() for i in range(3)}
    assert labels[first["id"]] == "Twin (the careful one)" and labels[second["id"]] == f"Twin ({second['id'][:8]})"
    assert "Solo" in labels.values()
