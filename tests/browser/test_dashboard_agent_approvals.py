"""The agent editor's "Requires approval" boxes (real server, Debian's chromium): one per
capability, usable only while it is ticked; saved with `PUT /v1/agents/{id}/capabilities`
only when one changed; shown again when the agent is reopened; and a failed PUT says the
agent was saved but its approval settings were not.

Waits use Playwright's auto-retrying `expect`, never sleeps.
"""

from __future__ import annotations

import re

import pytest

from tests.browser.chromium import playwright_or_skip
from tests.browser.pages import dashboard_page, ok

expect = playwright_or_skip().expect

APPROVAL = "Requires approval for Current time (current_time)"


@pytest.fixture
def page(browser, server):
    with dashboard_page(browser, server.url + "/", tolerated="503") as page:  # the 503 one test provokes
        yield page


def agent_named(rest, name: str) -> dict:
    found = [a for a in ok(rest.get("/v1/agents"))["data"] if a["name"] == name]
    assert len(found) == 1, found
    return found[0]


def settings(rest, agent_id: str) -> list[dict]:
    return ok(rest.get(f"/v1/agents/{agent_id}/capabilities"))["capabilities"]


def new_agent_form(page, name: str):
    page.get_by_test_id("nav-agents").click()
    page.get_by_test_id("new-agent").click()
    form = page.get_by_test_id("agent-form")
    form.get_by_test_id("agent-name-input").fill(name)
    form.get_by_test_id("agent-system-prompt").fill("Ask first.")
    return form


def test_requires_approval_is_set_shown_and_lifted_from_the_editor(page, rest, server):
    puts: list[str] = []
    page.on("request", lambda r: puts.append(r.url) if r.method == "PUT" else None)
    form = new_agent_form(page, "Careful clock")
    capability = form.locator('[data-capability-id="current_time"] input')
    approval = form.get_by_label(APPROVAL, exact=True)
    expect(form.get_by_test_id("requires-approval")).to_have_count(2)  # noop and current_time

    # Usable only while its capability is ticked; unticking clears it.
    expect(approval).to_be_disabled()
    capability.check()
    expect(approval).to_be_enabled()
    approval.check()
    capability.uncheck()
    expect(approval).to_be_disabled()
    expect(approval).not_to_be_checked()
    capability.check()
    expect(approval).to_be_enabled()
    approval.check()

    form.get_by_test_id("agent-save").click()
    expect(page.get_by_test_id("agent-row").filter(has_text="Careful clock")).to_contain_text("current_time")
    agent = agent_named(rest, "Careful clock")
    assert agent["capability_ids"] == ["current_time"]
    assert settings(rest, agent["id"]) == [{"id": "current_time", "requires_approval": True}]
    assert puts == [f"{server.url}/v1/agents/{agent['id']}/capabilities"]

    # Reopened, the editor shows the setting; saving unchanged sends no PUT.
    page.get_by_test_id("agent-row").filter(has_text="Careful clock").get_by_test_id("agent-name").click()
    form = page.get_by_test_id("agent-form")
    approval = form.get_by_label(APPROVAL, exact=True)
    expect(approval).to_be_checked()
    expect(approval).to_be_enabled()
    form.get_by_test_id("agent-description").fill("asks before it reads the clock")
    form.get_by_test_id("agent-save").click()
    expect(page.get_by_test_id("agent-row").filter(has_text="Careful clock")).to_contain_text("asks before")
    assert len(puts) == 1
    assert settings(rest, agent["id"]) == [{"id": "current_time", "requires_approval": True}]

    # Untick it and save: the API has it lifted.
    page.goto(f"{server.url}/#/agents/{agent['id']}")
    approval = page.get_by_test_id("agent-form").get_by_label(APPROVAL, exact=True)
    expect(approval).to_be_checked()
    approval.uncheck()
    page.get_by_test_id("agent-save").click()
    expect(page.get_by_test_id("agent-table")).to_be_visible()  # the list: after the PUT
    assert len(puts) == 2
    assert settings(rest, agent["id"]) == [{"id": "current_time", "requires_approval": False}]
    assert agent_named(rest, "Careful clock")["capability_ids"] == ["current_time"]

    page.goto(f"{server.url}/#/agents/{agent['id']}")
    expect(page.get_by_test_id("agent-form").get_by_label(APPROVAL, exact=True)).not_to_be_checked()


def test_a_failed_approval_save_says_the_agent_was_saved_without_it(page, rest, server):
    page.route("**/v1/agents/*/capabilities", lambda route: route.fulfill(
        status=503, content_type="application/json",
        body='{"error": {"code": "unavailable", "message": "try later"}, "status": 503}')
        if route.request.method == "PUT" else route.continue_())
    form = new_agent_form(page, "Half saved")
    form.locator('[data-capability-id="current_time"] input').check()
    form.get_by_label(APPROVAL, exact=True).check()
    form.get_by_test_id("agent-save").click()

    toast = page.get_by_test_id("toast").filter(has_text="approval settings were not")
    expect(toast).to_contain_text("“Half saved” was saved")
    expect(toast).to_contain_text("try later")
    expect(page.get_by_test_id("toast").filter(has_text="created")).to_have_count(0)
    # The new agent exists; the editor now edits it and shows the server's setting.
    agent = agent_named(rest, "Half saved")
    expect(page).to_have_url(re.compile(rf"#/agents/{agent['id']}$"))
    approval = page.get_by_test_id("agent-form").get_by_label(APPROVAL, exact=True)
    expect(approval).to_be_enabled()
    expect(approval).not_to_be_checked()
    assert settings(rest, agent["id"]) == [{"id": "current_time", "requires_approval": False}]

    # Editing an existing agent: the form keeps the choice and shows the error too.
    approval.check()
    page.get_by_test_id("agent-save").click()
    expect(page.get_by_test_id("form-error")).to_contain_text("was saved, but its approval settings were not")
    expect(approval).to_be_checked()
    assert settings(rest, agent["id"]) == [{"id": "current_time", "requires_approval": False}]


def test_saving_an_agent_keeps_its_capability_order(page, rest):
    """Reported: the editor sent the ticked boxes in the registry's order, so saving an
    agent with ["current_time", "noop"] (description changed only) made it ["noop",
    "current_time"] (capability_ids is ordered, §3.3)."""
    agent = ok(rest.post("/v1/agents", json={"name": "Ordered", "system_prompt": "p",
                                             "capability_ids": ["current_time", "noop"]}))
    page.get_by_test_id("nav-agents").click()
    page.get_by_test_id("agent-row").filter(has_text="Ordered").get_by_test_id("agent-name").click()
    form = page.get_by_test_id("agent-form")
    form.get_by_test_id("agent-description").fill("only this changes")
    form.get_by_test_id("agent-save").click()
    expect(page.get_by_test_id("agent-row").filter(has_text="Ordered")).to_contain_text("only this changes")
    saved = ok(rest.get(f"/v1/agents/{agent['id']}"))
    assert saved["description"] == "only this changes" and saved["capability_ids"] == ["current_time", "noop"]


def test_a_link_with_a_bad_percent_escape_does_not_stop_the_page(browser, server):
    """Reported: opening /#/sessions/50%off threw URIError in the router: the sidebar and
    the live feed never started. dashboard_page fails the test on any uncaught error."""
    with dashboard_page(browser, server.url + "/#/sessions/50%off", tolerated="404") as page:  # no such session
        expect(page.get_by_test_id("session-list")).to_be_visible()


def test_client_tools_are_shown_and_edited_in_the_agent_editor(browser, server, rest):
    """Reported: an agent's client_tools (§5.12) appeared nowhere in the dashboard."""
    weather = {"name": "get_weather", "description": "On the user's device",
               "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}
    agent = ok(rest.post("/v1/agents", json={"name": "Device", "system_prompt": "p", "client_tools": [weather]}))
    with dashboard_page(browser, server.url + f"/#/agents/{agent['id']}", tolerated="400") as page:  # one it provokes
        _edit_client_tools(page, rest, agent["id"])


def _edit_client_tools(page, rest, agent_id: str) -> None:
    tools = page.get_by_test_id("agent-form").get_by_test_id("agent-client-tools")
    expect(tools).to_have_value(re.compile(r'"name": "get_weather"'))
    tools.fill("[not json")
    page.get_by_test_id("agent-save").click()
    expect(page.get_by_test_id("form-error")).to_contain_text("Client tools are not valid JSON")
    tools.fill('[{"name": "has space"}]')  # the server's own check, as it says it
    page.get_by_test_id("agent-save").click()
    expect(page.get_by_test_id("form-error")).to_contain_text("client_tools")
    tools.fill('[{"name": "get_location"}]')
    page.get_by_test_id("agent-save").click()
    expect(page.get_by_test_id("agent-table")).to_be_visible()
    assert [t["name"] for t in ok(rest.get(f"/v1/agents/{agent_id}"))["client_tools"]] == ["get_location"]
