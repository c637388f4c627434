"""Tool calls that wait for someone outside: a person's approval, a client's result.

One mechanism (app/runtime/waits.py) in both runner modes: the turn pauses with an
event per call and `session.waiting`, the session shows why, and an answer (once per
call) lets the turn go on; cancel and APPROVAL_TIMEOUT_SECONDS end the wait too."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import httpx
import pytest

from tests.fakes import FakeLLM, Text, ToolCalls
from tests.helpers import (
    FAKE_KEY,
    approval_chat,
    events,
    make_chat,
    messages,
    say,
    session,
    wait_turns,
    waiting,
)

pytestmark = pytest.mark.both_modes

WEATHER = {"name": "get_weather", "description": "The weather in a city, from the user's device.",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}


def tool_text(fake_llm, call_id: str) -> str:
    """What the model was told about the call, in its last request (OpenAI wire format)."""
    body = fake_llm.requests[-1]["json"]
    return next(m["content"] for m in body["messages"] if m.get("role") == "tool" and m["tool_call_id"] == call_id)


async def test_approved_call_runs_and_the_turn_goes_on(client, fake_llm):
    chat = await approval_chat(client, fake_llm)
    sid = chat["id"]
    capabilities = await (await client.get(f"/v1/agents/{chat['agent_id']}/capabilities")).get_json()
    assert capabilities["capabilities"] == [{"id": "current_time", "requires_approval": True}]
    fake_llm.script(ToolCalls([("c1", "get_current_time", {"timezone": "UTC"})]), Text(["It is now."]))
    await say(client, sid, "what time is it?")

    pending = await waiting(client, sid)
    assert [(p["tool_call_id"], p["tool_name"], p["arguments"], p["kind"]) for p in pending] == \
        [("c1", "get_current_time", {"timezone": "UTC"}, "approval")]
    assert (await session(client, sid))["status"] == "waiting_for_approval"
    log = await events(client, sid)
    asked = next(e for e in log if e["type"] == "tool.approval_requested")["data"]
    assert asked["tool_call_id"] == "c1" and asked["arguments"] == {"timezone": "UTC"}
    assert not any(e["type"] == "tool.started" for e in log)  # nothing ran before the approval

    response = await client.post(f"/v1/sessions/{sid}/tool-calls/c1/approve")
    assert response.status_code == 200 and (await response.get_json())["status"] == "approved"
    log = await wait_turns(client, sid)
    assert log[-1]["type"] == "session.completed"
    done = next(e for e in log if e["type"] == "tool.completed")["data"]
    assert done["error"] is None and done["result"]["timezone"] == "UTC"
    assert '"timezone": "UTC"' in tool_text(fake_llm, "c1")
    assert (await session(client, sid))["status"] == "pending"

    again = await client.post(f"/v1/sessions/{sid}/tool-calls/c1/approve")
    body = await again.get_json()
    assert again.status_code == 409 and body["error"]["code"] == "already_answered"


async def _clock_call_waiting(client, fake_llm) -> str:
    """A session whose call c1 (get_current_time) waits for an approval; its id."""
    chat = await approval_chat(client, fake_llm)
    fake_llm.script(ToolCalls([("c1", "get_current_time", {})]), Text(["Understood."]))
    await say(client, chat["id"], "time?")
    await waiting(client, chat["id"])
    return chat["id"]


async def test_denied_call_tells_the_model_why(client, fake_llm):
    sid = await _clock_call_waiting(client, fake_llm)
    response = await client.post(f"/v1/sessions/{sid}/tool-calls/c1/deny", json={"reason": "not now"})
    assert response.status_code == 200 and (await response.get_json())["reason"] == "not now"
    log = await wait_turns(client, sid)
    assert log[-1]["type"] == "session.completed"
    answered = next(e for e in log if e["type"] == "tool.call_answered")["data"]
    assert {k: answered[k] for k in ("tool_call_id", "tool_name", "decision", "reason")} == \
        {"tool_call_id": "c1", "tool_name": "get_current_time", "decision": "denied", "reason": "not now"}
    assert "denied" in tool_text(fake_llm, "c1") and "not now" in tool_text(fake_llm, "c1")
    result = next(m for m in await messages(client, sid) if m["role"] == "tool_result")
    assert result["content"]["result"] is None and "denied" in result["content"]["error"]


async def test_client_tool_waits_for_the_clients_result_beside_a_tool_that_runs(client, fake_llm):
    chat = await make_chat(client, fake_llm)
    await client.patch(f"/v1/agents/{chat['agent_id']}", json={"client_tools": [WEATHER]})
    sid = chat["id"]
    fake_llm.script(ToolCalls([("w1", "get_weather", {"city": "Oslo"}), ("t1", "get_current_time", {})]),
                    Text(["Cold, and late."]))
    await say(client, sid, "weather and time?")
    pending = await waiting(client, sid)
    assert [(p["tool_call_id"], p["kind"]) for p in pending] == [("w1", "client")]
    assert (await session(client, sid))["status"] == "waiting_for_client"
    log = await events(client, sid)
    assert [e["data"]["tool_call_id"] for e in log if e["type"] == "tool.completed"] == ["t1"]  # ran at once
    assert next(e for e in log if e["type"] == "tool.client_requested")["data"]["arguments"] == {"city": "Oslo"}

    wrong = await client.post(f"/v1/sessions/{sid}/tool-calls/w1/approve")
    assert wrong.status_code == 404  # a client tool takes a result, not an approval
    response = await client.post(f"/v1/sessions/{sid}/tool-calls/w1/result", json={"result": {"temp_c": -3}})
    assert response.status_code == 200, await response.get_json()
    log = await wait_turns(client, sid)
    assert log[-1]["type"] == "session.completed"
    results = [m["content"] for m in await messages(client, sid) if m["role"] == "tool_result"]
    assert [r["tool_call_id"] for r in results] == ["w1", "t1"]  # in call order
    assert results[0]["result"] == {"temp_c": -3}
    assert "temp_c" in tool_text(fake_llm, "w1")


@pytest.mark.parametrize("result", ["Tokyo", "", "123", '{"a": 1}', "null"])
async def test_a_client_result_that_is_a_string_stays_that_string(client, fake_llm, result):
    """Reported: {"result": "Tokyo"} answered 500 (the JSON column took the str for JSON
    text), and "123" reached the model as the number 123."""
    chat = await make_chat(client, fake_llm)
    await client.patch(f"/v1/agents/{chat['agent_id']}", json={"client_tools": [WEATHER]})
    sid = chat["id"]
    fake_llm.script(ToolCalls([("w1", "get_weather", {"city": "Tokyo"})]), Text(["Noted."]))
    await say(client, sid, "weather?")
    await waiting(client, sid)
    response = await client.post(f"/v1/sessions/{sid}/tool-calls/w1/result", json={"result": result})
    assert response.status_code == 200, await response.get_json()
    assert (await response.get_json())["result"] == result
    log = await wait_turns(client, sid)
    assert log[-1]["type"] == "session.completed"
    assert next(e for e in log if e["type"] == "tool.completed")["data"]["result"] == result
    stored = next(m["content"] for m in await messages(client, sid) if m["role"] == "tool_result")
    assert stored["result"] == result
    listed = await (await client.get(f"/v1/sessions/{sid}/tool-calls")).get_json()
    assert listed["data"][0]["result"] == result


async def test_a_waiting_step_stores_arguments_that_are_not_json_and_plain_text_results(client, fake_llm):
    """Reported: when a call of a step waited, a sibling call's string argument or
    result failed the whole turn with internal_error (§5.4: tool errors never do)."""
    chat = await approval_chat(client, fake_llm)
    sid = chat["id"]
    await client.patch(f"/v1/agents/{chat['agent_id']}", json={"client_tools": [WEATHER]})
    fake_llm.script(ToolCalls([("a1", "get_current_time", "{bad json"), ("a2", "get_current_time", '"just text"'),
                               ("w1", "get_weather", "{bad")]), Text(["Done."]))
    await say(client, sid, "go")
    pending = await waiting(client, sid)
    assert {p["tool_call_id"]: p["arguments"] for p in pending} == {"a1": "{bad json", "a2": "just text",
                                                                       "w1": "{bad"}
    for call in ("a1", "a2"):
        assert (await client.post(f"/v1/sessions/{sid}/tool-calls/{call}/approve")).status_code == 200
    assert (await client.post(f"/v1/sessions/{sid}/tool-calls/w1/result", json={"result": "sunny"})).status_code == 200
    log = await wait_turns(client, sid)
    assert log[-1]["type"] == "session.completed", log[-1]
    results = {m["content"]["tool_call_id"]: m["content"] for m in await messages(client, sid)
               if m["role"] == "tool_result"}
    assert results["w1"]["result"] == "sunny"
    assert results["a1"]["error"] and results["a1"]["result"] is None  # not valid JSON: an error the model sees


async def test_cancel_while_waiting_ends_the_turn_and_closes_the_call(client, fake_llm):
    chat = await approval_chat(client, fake_llm)
    sid = chat["id"]
    fake_llm.script(ToolCalls([("c1", "get_current_time", {})]))
    await say(client, sid, "time?")
    await waiting(client, sid)
    response = await client.post(f"/v1/sessions/{sid}/cancel")
    assert (await response.get_json())["cancelled"] is True
    log = await wait_turns(client, sid, timeout=30)  # a loaded machine slows Temporal's cancel
    assert log[-1]["type"] == "session.cancelled"
    assert (await session(client, sid))["status"] == "pending"
    late = await client.post(f"/v1/sessions/{sid}/tool-calls/c1/approve")
    assert late.status_code == 409 and "cancelled" in (await late.get_json())["error"]["message"]


async def test_a_message_sent_while_waiting_runs_after_the_turn(client, fake_llm):
    chat = await approval_chat(client, fake_llm)
    sid = chat["id"]
    fake_llm.script(ToolCalls([("c1", "get_current_time", {})]), Text(["first"]), Text(["second"]))
    await say(client, sid, "one")
    await waiting(client, sid)
    await say(client, sid, "two")
    assert (await session(client, sid))["status"] == "waiting_for_approval"
    await client.post(f"/v1/sessions/{sid}/tool-calls/c1/approve")
    await wait_turns(client, sid, count=2)
    seen = [(m["role"], m.get("content")) for m in fake_llm.requests[-1]["json"]["messages"]
            if m["role"] in ("user", "assistant") and m.get("content")]
    assert seen == [("user", "one"), ("assistant", "first"), ("user", "two")]  # the second turn came after


async def test_unknown_call_and_bad_answers(client, fake_llm):
    chat = await approval_chat(client, fake_llm)
    sid = chat["id"]
    missing = await client.post(f"/v1/sessions/{sid}/tool-calls/nope/approve")
    assert missing.status_code == 404 and (await missing.get_json())["error"]["code"] == "not_found"
    bad = await client.post(f"/v1/sessions/{sid}/tool-calls/nope/deny", json={"reason": 5})
    assert bad.status_code == 400
    assert (await client.post("/v1/sessions/no-such-session/tool-calls/x/approve")).status_code == 404
    not_object = await client.post(f"/v1/sessions/{sid}/tool-calls/nope/result", json=["x"])
    # Reported: "… or instance of ClientResult", a class of ours, not the API's.
    assert (await not_object.get_json())["error"]["message"] == "body: Input should be a valid dictionary (a JSON object)"


async def test_a_deny_needs_no_body(client, fake_llm):
    """Reported: `curl -X POST …/deny` without a body (the reason is optional, §5.12) was a 400."""
    sid = await _clock_call_waiting(client, fake_llm)
    response = await client.post(f"/v1/sessions/{sid}/tool-calls/c1/deny")
    assert response.status_code == 200 and (await response.get_json())["status"] == "denied"
    assert (await wait_turns(client, sid))[-1]["type"] == "session.completed"
    assert "not run: the user denied this call" in tool_text(fake_llm, "c1")


@pytest.fixture
def settings(settings, request):
    """APPROVAL_TIMEOUT_SECONDS for the test that is about it (both modes take it from here)."""
    if "after_the_timeout" in request.node.name:
        return settings.replace(approval_timeout_seconds=0.5)
    if "provider_was_edited" in request.node.name:  # the replaced client is closed this long after
        return settings.replace(llm_timeout_seconds=1)
    return settings


async def test_unanswered_call_is_denied_after_the_timeout(client, fake_llm):
    chat = await approval_chat(client, fake_llm)
    sid = chat["id"]
    fake_llm.script(ToolCalls([("c1", "get_current_time", {})]), Text(["ok, without it"]))
    await say(client, sid, "time?")
    pending = await waiting(client, sid)
    assert pending[0]["expires_at"] is not None
    # Reported: the events wrote it as "…+00:00"; §1's form is "…Z", as the list has it.
    listed = (await (await client.get(f"/v1/sessions/{sid}/tool-calls")).get_json())["data"][0]["expires_at"]
    asked = [e["data"]["expires_at"] for e in await events(client, sid)
             if e["type"] in ("tool.approval_requested", "session.waiting")]
    assert asked == [listed, listed] and listed.endswith("Z")
    log = await wait_turns(client, sid, timeout=15)
    assert log[-1]["type"] == "session.completed"
    answered = next(e for e in log if e["type"] == "tool.call_answered")["data"]
    assert answered["decision"] == "expired"
    assert "no one approved" in tool_text(fake_llm, "c1")


def _careful_agent(http: httpx.Client, prompt: str) -> dict:
    agent = http.post("/v1/agents", json={"name": "careful", "system_prompt": prompt}).json()
    http.put(f"/v1/agents/{agent['id']}/capabilities",
             json={"capabilities": [{"id": "current_time", "requires_approval": True}]})
    return agent


def _provider_env(fake_llm) -> dict[str, str]:
    return {"OPENAI_API_KEY": FAKE_KEY, "OPENAI_BASE_URL": fake_llm.openai_base_url, "OPENAI_MODEL": "fake-model"}


def _asked_the_time(http: httpx.Client, fake_llm) -> str:
    """A session of a careful agent whose model calls get_current_time (c1), which waits
    for an approval, then says "It is late."; its id."""
    agent = _careful_agent(http, "p")
    sid = http.post(f"/v1/agents/{agent['id']}/sessions", json={}).json()["id"]
    fake_llm.script(ToolCalls([("c1", "get_current_time", {"timezone": "UTC"})]), Text(["It is late."]))
    http.post(f"/v1/sessions/{sid}/messages", json={"content": "time?"})
    return sid


def _restart_while_waiting(live_server_factory, env: dict, server, sid: str, data_dir) -> httpx.Client:
    """kill -9 the server once the session waits for an approval; a client of the new one."""
    http = httpx.Client(base_url=server.url, timeout=10)
    deadline = time.monotonic() + 10
    while http.get(f"/v1/sessions/{sid}").json()["status"] != "waiting_for_approval":
        assert time.monotonic() < deadline, "the turn never waited"
        time.sleep(0.05)
    os.kill(server.proc.pid, signal.SIGKILL)
    server.proc.wait()
    return httpx.Client(base_url=live_server_factory(env, data_dir=data_dir).url, timeout=10)


def _approve_and_wait(http: httpx.Client, sid: str, call_id: str) -> None:
    assert http.post(f"/v1/sessions/{sid}/tool-calls/{call_id}/approve").status_code == 200
    deadline = time.monotonic() + 20
    while http.get(f"/v1/sessions/{sid}").json()["status"] != "pending":
        assert time.monotonic() < deadline, "the resumed turn never ended"
        time.sleep(0.05)


def test_a_waiting_call_survives_a_server_restart(live_server_factory, fake_llm, tmp_path):
    """In process: kill -9 the server while a call waits; the restarted server still
    waits for it, and the approval sent to it finishes the turn."""
    env = _provider_env(fake_llm)
    server = live_server_factory(env, data_dir=tmp_path / "node")
    http = httpx.Client(base_url=server.url, timeout=10)
    sid = _asked_the_time(http, fake_llm)

    http = _restart_while_waiting(live_server_factory, env, server, sid, tmp_path / "node")
    assert http.get(f"/v1/sessions/{sid}").json()["status"] == "waiting_for_approval"
    pending = http.get(f"/v1/sessions/{sid}/tool-calls?status=waiting").json()["data"]
    assert [p["tool_call_id"] for p in pending] == ["c1"]
    _approve_and_wait(http, sid, "c1")
    log = http.get(f"/v1/sessions/{sid}/events?limit=500", headers={"Accept": "application/json"}).json()["data"]
    types = [e["type"] for e in log]
    assert types[-1] == "session.completed" and types.count("session.started") == 1
    done = next(e for e in log if e["type"] == "tool.completed")["data"]
    assert done["result"]["timezone"] == "UTC"
    assert [m["role"] for m in http.get(f"/v1/sessions/{sid}/messages").json()["data"]] == \
        ["user", "tool_call", "tool_result", "assistant"]


def test_a_waiting_call_survives_a_graceful_stop(live_server_factory, fake_llm, tmp_path):
    """Reported: a SIGTERM (a deploy, Ctrl-C) cancelled every call that waited, and the
    approval sent after the restart was a 409; §5.12 says a stopped server waits again.
    A message queued behind the waiting turn is given up, and the log says so."""
    env = _provider_env(fake_llm)
    server = live_server_factory(env, data_dir=tmp_path / "node")
    http = httpx.Client(base_url=server.url, timeout=10)
    sid = _asked_the_time(http, fake_llm)
    deadline = time.monotonic() + 10
    while http.get(f"/v1/sessions/{sid}").json()["status"] != "waiting_for_approval":
        assert time.monotonic() < deadline, "the turn never waited"
        time.sleep(0.05)
    queued = http.post(f"/v1/sessions/{sid}/messages", json={"content": "and the date?"}).json()["id"]
    server.stop()  # SIGTERM: a graceful stop
    assert server.proc.returncode == 0

    http = httpx.Client(base_url=live_server_factory(env, data_dir=tmp_path / "node").url, timeout=10)
    assert http.get(f"/v1/sessions/{sid}").json()["status"] == "waiting_for_approval"
    log = http.get(f"/v1/sessions/{sid}/events?limit=500", headers={"Accept": "application/json"}).json()["data"]
    given_up = [e["data"] for e in log if e["type"] == "session.cancelled"]
    assert [(g["reason"], g["message_id"], g["dropped_message_ids"]) for g in given_up] == \
        [("server shutting down", None, [queued])]
    _approve_and_wait(http, sid, "c1")
    log = http.get(f"/v1/sessions/{sid}/events?limit=500", headers={"Accept": "application/json"}).json()["data"]
    assert log[-1]["type"] == "session.completed"
    assert next(e for e in log if e["type"] == "tool.completed")["data"]["result"]["timezone"] == "UTC"


def test_a_wait_that_ran_out_over_a_restart_names_its_own_timeout(live_server_factory, fake_llm, tmp_path):
    """Reported: restarted without APPROVAL_TIMEOUT_SECONDS, an expired call told the
    model "no one approved this call within 0 s"; it was given 1 s."""
    env = {"OPENAI_API_KEY": FAKE_KEY, "OPENAI_BASE_URL": fake_llm.openai_base_url, "OPENAI_MODEL": "fake-model"}
    server = live_server_factory({**env, "APPROVAL_TIMEOUT_SECONDS": "1"}, data_dir=tmp_path / "node")
    http = httpx.Client(base_url=server.url, timeout=10)
    agent = _careful_agent(http, "p")
    sid = http.post(f"/v1/agents/{agent['id']}/sessions", json={}).json()["id"]
    fake_llm.script(ToolCalls([("c1", "get_current_time", {})]), Text(["Never mind."]))
    http.post(f"/v1/sessions/{sid}/messages", json={"content": "time?"})
    http = _restart_while_waiting(live_server_factory, env, server, sid, tmp_path / "node")
    deadline = time.monotonic() + 20
    while http.get(f"/v1/sessions/{sid}").json()["status"] != "pending":
        assert time.monotonic() < deadline, "the expired wait never ended the turn"
        time.sleep(0.05)
    assert "no one approved this call within 1 s" in tool_text(fake_llm, "c1")


def test_a_turn_resumed_after_a_restart_keeps_its_prompt_variables(live_server_factory, fake_llm, tmp_path):
    """An AgentSpec invoke with variables waits for an approval, and the server is
    killed: the model call after the approval gets the prompt filled in as before."""
    env = {"OPENAI_API_KEY": FAKE_KEY, "OPENAI_BASE_URL": fake_llm.openai_base_url, "OPENAI_MODEL": "fake-model"}
    server = live_server_factory(env, data_dir=tmp_path / "node")
    http = httpx.Client(base_url=server.url, timeout=10)
    agent = _careful_agent(http, "You help {{user}} with {{topic}}.")
    fake_llm.script(ToolCalls([("c1", "get_current_time", {"timezone": "UTC"})]), Text(["It is late, Ada."]))
    invoked = http.post(f"/v1/agents/{agent['id']}/invoke",
                        json={"message": "time?", "variables": {"user": "Ada", "topic": "clocks"}}).json()
    assert invoked["status"] == "waiting_for_approval"

    http = _restart_while_waiting(live_server_factory, env, server, invoked["session_id"], tmp_path / "node")
    _approve_and_wait(http, invoked["session_id"], "c1")
    systems = [r["json"]["messages"][0]["content"] for r in fake_llm.requests]
    assert systems == ["You help Ada with clocks.", "You help Ada with clocks."]
    answer = http.get(f"/v1/sessions/{invoked['session_id']}/messages").json()["data"][-1]
    assert answer["content"]["text"] == "It is late, Ada."


async def test_two_calls_wait_in_one_step_and_each_is_answered_once(client, fake_llm):
    chat = await approval_chat(client, fake_llm)
    sid = chat["id"]
    fake_llm.script(ToolCalls([("a", "get_current_time", {"timezone": "UTC"}),
                               ("b", "get_current_time", {"timezone": "Asia/Tokyo"})]), Text(["Both done."]))
    await say(client, sid, "two clocks")
    pending = await waiting(client, sid)
    assert sorted(p["tool_call_id"] for p in pending) == ["a", "b"]
    # Reported: listed as b, a (each row had its own created_at, newest first), so the
    # README's `.data[0]` picked the step's last call. A step's calls list in call order.
    listed = (await (await client.get(f"/v1/sessions/{sid}/tool-calls")).get_json())["data"]
    assert [c["tool_call_id"] for c in listed] == ["a", "b"]
    assert (await client.post(f"/v1/sessions/{sid}/tool-calls/b/deny", json={})).status_code == 200
    assert (await session(client, sid))["status"] == "waiting_for_approval"  # "a" still waits
    assert (await client.post(f"/v1/sessions/{sid}/tool-calls/b/approve")).status_code == 409
    assert (await client.post(f"/v1/sessions/{sid}/tool-calls/a/approve")).status_code == 200
    log = await wait_turns(client, sid)
    assert log[-1]["type"] == "session.completed"
    results = [m["content"] for m in await messages(client, sid) if m["role"] == "tool_result"]
    assert [r["tool_call_id"] for r in results] == ["a", "b"]
    assert results[0]["error"] is None and "denied" in results[1]["error"]


async def test_an_approval_after_the_provider_was_edited_uses_the_provider_as_now_configured(app, client, fake_llm):
    """Reported: a turn waiting for an approval kept the provider client it started with.
    The provider was moved (new base_url and key) while it waited, another session used
    the new settings, and the old client was closed LLM_TIMEOUT_SECONDS later: the
    approval then failed the turn with internal_error. The turn goes on with the
    provider as it is configured when it goes on."""
    chat = await approval_chat(client, fake_llm)
    sid = chat["id"]
    fake_llm.script(ToolCalls([("c1", "get_current_time", {"timezone": "UTC"})]), Text(["from the old address"]))
    await say(client, sid, "time?")
    await waiting(client, sid)
    with FakeLLM(api_key="sk-moved-provider-key") as moved:
        response = await client.patch(f"/v1/llm-providers/{chat['provider_id']}",
                                      json={"base_url": moved.openai_base_url, "api_key": "sk-moved-provider-key"})
        assert response.status_code == 200, await response.get_json()
        other = await (await client.post(f"/v1/agents/{chat['agent_id']}/sessions", json={})).get_json()
        await say(client, other["id"], "hello")  # builds the new client; the old one is closed a while later
        assert (await wait_turns(client, other["id"]))[-1]["type"] == "session.completed"
        closing = [t for t in app.extensions["runtime"].tasks.running()
                   if t.get_name().startswith("close-provider-client:")]
        assert closing, "the replaced client is not being closed"
        await asyncio.wait(closing)

        moved.script(Text(["It is late, said the new address."]))
        assert (await client.post(f"/v1/sessions/{sid}/tool-calls/c1/approve")).status_code == 200
        log = await wait_turns(client, sid)
        assert log[-1]["type"] == "session.completed", log[-1]
        assert (await messages(client, sid))[-1]["content"]["text"] == "It is late, said the new address."
        assert (await session(client, sid))["status"] == "pending"
        assert '"timezone": "UTC"' in tool_text(moved, "c1")  # the new address got the whole conversation
