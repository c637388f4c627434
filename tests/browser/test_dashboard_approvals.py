"""Tool calls that wait, in the dashboard (real server, fake LLM, Debian's chromium): the
session view lists a call waiting for approval with its arguments, Approve runs it and the
turn completes, Deny with a reason gives the model a denial; a call answered elsewhere
shows the server's 409 as an error; a client tool is shown as waiting for the client.

Waits use Playwright's auto-retrying `expect`, never sleeps.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.browser.chromium import playwright_or_skip
from tests.browser.pages import dashboard_page, ok
from tests.fakes import Text, ToolCalls

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"

expect = playwright_or_skip().expect

WEATHER = {"name": "get_weather", "description": "The weather in a city, from the user's device.",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}


@pytest.fixture
def page(browser, server):
    with dashboard_page(browser, server.url + "/", tolerated="409") as page:  # the 409 the test provokes
        yield page


def careful_agent(rest) -> dict:
    """An agent whose current_time tool needs approval (the provider comes from the env)."""
    agent = ok(rest.post("/v1/agents", json={"name": "Careful clock", "system_prompt": "Ask first."}))
    ok(rest.put(f"/v1/agents/{agent['id']}/capabilities",
                json={"capabilities": [{"id": "current_time", "requires_approval": True}]}))
    return agent


def paused_session(rest, fake_llm, agent: dict, title: str, call_id: str, reply: str) -> str:
    sid = ok(rest.post(f"/v1/agents/{agent['id']}/sessions", json={"title": title}))["id"]
    fake_llm.script(ToolCalls([(call_id, "get_current_time", {"timezone": "Europe/Oslo"})]), Text([reply]))
    ok(rest.post(f"/v1/sessions/{sid}/messages", json={"content": "what time is it?"}))
    return sid


def item(page, session_id: str):
    return page.locator(f'[data-testid="session-item"][data-session-id="{session_id}"]')


def test_approve_and_deny_from_the_session_view(page, rest, fake_llm, server):
    agent = careful_agent(rest)

    # The turn pauses before the dashboard opens the session: the call comes from GET.
    sid = paused_session(rest, fake_llm, agent, "Approve me", "call_a", "It is late in Oslo.")
    expect(item(page, sid)).to_have_attribute("data-status", "waiting_for_approval")
    expect(item(page, sid).get_by_test_id("session-status")).to_have_text("waiting for approval")
    page.goto(f"{server.url}/#/sessions/{sid}")
    expect(page.get_by_test_id("status-badge")).to_have_text("waiting for approval")
    call = page.locator('[data-testid="pending-call"][data-tool-call-id="call_a"]')
    expect(call).to_have_attribute("data-kind", "approval")
    expect(call.get_by_test_id("pending-call-name")).to_have_text("get_current_time")
    expect(call.get_by_test_id("pending-call-arguments")).to_have_text('{\n  "timezone": "Europe/Oslo"\n}')
    expect(page.locator('[data-testid="marker"][data-kind="approval"]')).to_contain_text("get_current_time")
    expect(page.get_by_test_id("cancel-button")).to_be_enabled()  # a paused turn can be cancelled
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard-approval.png"))

    call.get_by_test_id("approve-call").click()
    expect(page.get_by_test_id("pending-call")).to_have_count(0)
    expect(page.get_by_test_id("pending-calls")).to_be_hidden()
    card = page.locator('[data-testid="tool-card"][data-tool-call-id="call_a"]')
    expect(card).to_have_attribute("data-state", "ok")
    expect(card.get_by_test_id("tool-output")).to_contain_text('"timezone": "Europe/Oslo"')
    expect(page.locator('[data-testid="marker"][data-kind="answer-approved"]')).to_have_count(1)
    expect(page.get_by_test_id("message-assistant")).to_have_text("It is late in Oslo.")
    expect(page.locator('[data-testid="marker"][data-kind="completed"]')).to_have_count(1)
    expect(page.get_by_test_id("status-badge")).to_have_text("pending")
    assert ok(rest.get(f"/v1/sessions/{sid}"))["status"] == "pending"
    calls = ok(rest.get(f"/v1/sessions/{sid}/tool-calls"))["data"]
    assert [(c["tool_call_id"], c["status"]) for c in calls] == [("call_a", "approved")]
    assert ok(rest.get(f"/v1/sessions/{sid}/events?format=json"))["data"][-1]["type"] == "session.completed"

    # A second session, open while its turn pauses: the call arrives live; Deny with a reason.
    sid2 = ok(rest.post(f"/v1/agents/{agent['id']}/sessions", json={"title": "Deny me"}))["id"]
    item(page, sid2).click()
    expect(page.get_by_test_id("session-title")).to_have_text("Deny me")
    fake_llm.script(ToolCalls([("call_d", "get_current_time", {"timezone": "UTC"})]), Text(["Fine, I will not."]))
    page.get_by_test_id("chat-input").fill("time, please")
    page.get_by_test_id("chat-send").click()
    call = page.locator('[data-testid="pending-call"][data-tool-call-id="call_d"]')
    expect(call.get_by_test_id("pending-call-arguments")).to_contain_text('"timezone": "UTC"')
    expect(page.get_by_test_id("status-badge")).to_have_text("waiting for approval")
    call.get_by_test_id("deny-reason").fill("not during the meeting")
    call.get_by_test_id("deny-call").click()
    expect(page.get_by_test_id("pending-call")).to_have_count(0)
    card = page.locator('[data-testid="tool-card"][data-tool-call-id="call_d"]')
    expect(card).to_have_attribute("data-state", "error")
    expect(card.get_by_test_id("tool-error")).to_contain_text("denied")
    expect(card.get_by_test_id("tool-error")).to_contain_text("not during the meeting")
    expect(page.locator('[data-testid="marker"][data-kind="answer-denied"]')).to_contain_text("not during the meeting")
    expect(page.get_by_test_id("message-assistant")).to_have_text("Fine, I will not.")
    expect(page.get_by_test_id("status-badge")).to_have_text("pending")
    result = next(m for m in ok(rest.get(f"/v1/sessions/{sid2}/messages"))["data"] if m["role"] == "tool_result")
    assert result["content"]["result"] is None
    assert "denied" in result["content"]["error"] and "not during the meeting" in result["content"]["error"]


def test_a_call_answered_elsewhere_shows_the_409(page, rest, fake_llm, server):
    agent = careful_agent(rest)
    sid = paused_session(rest, fake_llm, agent, "Answered twice", "call_x", "Done.")
    page.goto(f"{server.url}/#/sessions/{sid}")
    call = page.locator('[data-testid="pending-call"][data-tool-call-id="call_x"]')
    expect(call).to_be_visible()

    # Someone else denies the call just before this page's Approve reaches the server:
    # the race is made certain (a muted live feed was not: under load the page could
    # reconnect, learn of the denial and drop the call before the click).
    def deny_first(route):
        ok(rest.post(f"/v1/sessions/{sid}/tool-calls/call_x/deny", json={"reason": "from the API"}))
        route.continue_()

    page.route(f"**/v1/sessions/{sid}/tool-calls/call_x/approve", deny_first)
    call.get_by_test_id("approve-call").click()
    expect(page.get_by_test_id("toast").filter(has_text="Approve failed")).to_contain_text("already answered")
    expect(call).to_have_count(0)
    expect(page.locator('[data-testid="marker"][data-kind="answer-denied"]')).to_contain_text("from the API")
    expect(page.locator('[data-testid="marker"][data-kind="completed"]')).to_have_count(1)
    expect(page.get_by_test_id("pending-call")).to_have_count(0)


def test_a_client_tool_is_shown_as_waiting_for_the_client(page, rest, fake_llm, server):
    agent = ok(rest.post("/v1/agents", json={"name": "Weather", "system_prompt": "p", "client_tools": [WEATHER]}))
    sid = ok(rest.post(f"/v1/agents/{agent['id']}/sessions", json={"title": "Client tool"}))["id"]
    fake_llm.script(ToolCalls([("w1", "get_weather", {"city": "Oslo"})]), Text(["Cold."]))
    ok(rest.post(f"/v1/sessions/{sid}/messages", json={"content": "weather?"}))
    page.goto(f"{server.url}/#/sessions/{sid}")
    call = page.locator('[data-testid="pending-call"][data-tool-call-id="w1"]')
    expect(call).to_have_attribute("data-kind", "client")
    expect(call.get_by_test_id("pending-call-kind")).to_have_text("waiting for the client")
    expect(call.get_by_test_id("pending-call-arguments")).to_contain_text('"city": "Oslo"')
    expect(call.get_by_test_id("approve-call")).to_have_count(0)
    expect(page.get_by_test_id("status-badge")).to_have_text("waiting for client")
    ok(rest.post(f"/v1/sessions/{sid}/tool-calls/w1/result", json={"result": {"temp_c": -3}}))
    expect(call).to_have_count(0)
    expect(page.get_by_test_id("message-assistant")).to_have_text("Cold.")
    expect(page.get_by_test_id("status-badge")).to_have_text("pending")


def test_cancel_while_waiting_clears_the_call(page, rest, fake_llm, server):
    agent = careful_agent(rest)
    sid = paused_session(rest, fake_llm, agent, "Cancel me", "call_c", "never said")
    page.goto(f"{server.url}/#/sessions/{sid}")
    expect(page.locator('[data-testid="pending-call"][data-tool-call-id="call_c"]')).to_be_visible()
    page.get_by_test_id("cancel-button").click()
    expect(page.locator('[data-testid="marker"][data-kind="cancelled"]')).to_have_count(1)
    expect(page.get_by_test_id("pending-call")).to_have_count(0)
    expect(page.get_by_test_id("status-badge")).to_have_text("pending")
    calls = ok(rest.get(f"/v1/sessions/{sid}/tool-calls"))["data"]
    assert [(c["tool_call_id"], c["status"]) for c in calls] == [("call_c", "cancelled")]
