"""The AgentSpec dialect over the same agents, sessions, loop and event log."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from tests.fakes import Error, Hang, Text, ToolCalls
from tests.helpers import events, make_chat, messages, wait_for_event, wait_turns

pytestmark = pytest.mark.both_modes  # in process and on Temporal (tests/conftest.py)


async def agent_named(client, fake_llm, name="assistant", prompt="You help {{user}} with {{topic}}.", caps=("current_time",)):
    chat = await make_chat(client, fake_llm)  # default provider + model at the fake
    response = await client.post("/v1/agents", json={"name": name, "system_prompt": prompt, "capability_ids": list(caps)})
    return await response.get_json(), chat


async def test_invoke_by_name_with_input(client, fake_llm):
    agent, _ = await agent_named(client, fake_llm, prompt="Plain prompt.")
    fake_llm.script(Text(["Hello ", "there"], input_tokens=11, output_tokens=4))
    response = await client.post("/v1/agents/assistant/invoke", json={"input": "Hi"})
    body = await response.get_json()
    assert response.status_code == 200 and body["output"] == "Hello there"
    assert body["usage"] == {"input_tokens": 11, "output_tokens": 4, "total_tokens": 15}
    assert body["turns"] == 1 and body["tool_calls"] == [] and body["duration_ms"] > 0
    stored = await messages(client, body["session_id"])  # stored like any other turn
    assert [(m["role"], m["content"]["text"]) for m in stored] == [("user", "Hi"), ("assistant", "Hello there")]
    session = await (await client.get(f"/v1/sessions/{body['session_id']}")).get_json()
    assert session["agent_id"] == agent["id"] and session["agent"] == "assistant"


async def test_invoke_with_message_variables_and_tools(client, fake_llm):
    agent, _ = await agent_named(client, fake_llm)
    fake_llm.script(ToolCalls([("c1", "get_current_time", {"timezone": "Asia/Tokyo"})]), Text(["Done."]))
    response = await client.post(f"/v1/agents/{agent['id']}/invoke",
                                 json={"message": "time?", "variables": {"user": "Ada", "topic": "clocks"}})
    body = await response.get_json()
    assert response.status_code == 200 and body["output"] == "Done."
    call = body["tool_calls"][0]
    assert call["tool_name"] == "get_current_time" and call["input"] == {"timezone": "Asia/Tokyo"}
    assert "+09:00" in call["output"]["time"] and call["id"] == "c1" and "error" not in call
    system = fake_llm.requests[0]["json"]["messages"][0]["content"]
    assert system == "You help Ada with clocks."


async def test_missing_variable_is_400_and_creates_nothing(client, fake_llm):
    await agent_named(client, fake_llm)
    before = (await (await client.get("/v1/sessions")).get_json())["total"]
    response = await client.post("/v1/agents/assistant/invoke", json={"input": "hi", "variables": {"user": "Ada"}})
    assert response.status_code == 400 and "'topic'" in (await response.get_json())["error"]["message"]
    assert (await (await client.get("/v1/sessions")).get_json())["total"] == before
    assert (await client.post("/v1/agents/assistant/invoke", json={})).status_code == 400
    assert (await client.post("/v1/agents/assistant/invoke", json={"input": "   "})).status_code == 400


async def test_name_ambiguity_and_unknown(client, fake_llm):
    first, _ = await agent_named(client, fake_llm, name="twin", prompt="p")
    second = await (await client.post("/v1/agents", json={"name": "twin", "system_prompt": "p"})).get_json()
    response = await client.post("/v1/agents/twin/invoke", json={"input": "hi"})
    body = await response.get_json()
    assert response.status_code == 409 and body["error"]["code"] == "ambiguous_agent_name"
    assert first["id"] in body["error"]["message"] and second["id"] in body["error"]["message"]
    await client.delete(f"/v1/agents/{second['id']}")  # archived agents do not count
    assert (await client.get("/v1/agents/twin")).status_code == 200
    assert (await client.post("/v1/agents/nobody/invoke", json={"input": "x"})).status_code == 404


async def test_failed_invoke_is_an_error_answer(client, fake_llm):
    await agent_named(client, fake_llm, prompt="p")
    fake_llm.script(Error(500, "down", sticky=True))
    response = await client.post("/v1/agents/assistant/invoke", json={"input": "hi"})
    body = await response.get_json()
    assert response.status_code == 502 and body["error"]["code"] == "provider_unavailable"


async def test_multi_turn_sessions(client, fake_llm):
    await agent_named(client, fake_llm, prompt="p")
    created = await client.post("/v1/agents/assistant/sessions")  # no body at all
    session = await created.get_json()
    assert created.status_code == 201 and session["session_id"] == session["id"] and session["agent"] == "assistant"
    assert session["metadata"] == {} and session["turns"] == 0
    with_meta = await (await client.post("/v1/agents/assistant/sessions", json={"metadata": {"ticket": 7}})).get_json()
    assert with_meta["metadata"] == {"ticket": 7}
    fake_llm.script(Text(["one"]), Text(["two"]))
    first = await (await client.post(f"/v1/agents/assistant/sessions/{session['id']}/continue", json={"input": "a"})).get_json()
    second = await (await client.post(f"/v1/agents/assistant/sessions/{session['id']}", json={"message": "b"})).get_json()
    assert (first["output"], first["turn"]) == ("one", 1) and (second["output"], second["turn"]) == ("two", 2)
    assert second["usage"]["total_tokens"] == 15
    # The second call saw the first exchange.
    assert [m["content"] for m in fake_llm.requests[-1]["json"]["messages"][1:]] == ["a", "one", "b"]
    listing = await (await client.get("/v1/agents/assistant/sessions?limit=1&offset=0")).get_json()
    assert listing["total"] == 2 and len(listing["sessions"]) == 1 and listing["sessions"] == listing["data"]
    assert listing["sessions"][0]["session_id"] == with_meta["id"]
    everything = await (await client.get("/v1/agents/assistant/sessions")).get_json()
    assert {s["session_id"]: s["turns"] for s in everything["sessions"]}[session["id"]] == 2
    assert (await client.post("/v1/agents/assistant/sessions/nope/continue", json={"input": "x"})).status_code == 404
    assert (await client.delete(f"/v1/agents/assistant/sessions/{session['id']}")).status_code == 204
    assert (await client.delete(f"/v1/agents/assistant/sessions/{session['id']}")).status_code == 404
    bad = await client.post("/v1/agents/assistant/sessions", data=b"{oops", headers={"Content-Type": "application/json"})
    assert bad.status_code == 400


@pytest.mark.parametrize("agent_ref", ["assistant", "Nobody"])
async def test_an_external_session_is_no_agents_session(client, fake_llm, agent_ref):
    """Reported: with an agent *name* in the path (a real one or not), an external
    session could be read, renamed and deleted, because neither has an agent id."""
    await agent_named(client, fake_llm, prompt="p")
    await client.post("/sessions", json={"session_id": "ext-1", "session_name": "outside"})
    base = f"/v1/agents/{agent_ref}/sessions/ext-1"
    for response in (await client.get(base), await client.patch(base, json={"title": "hijacked"}),
                     await client.delete(base), await client.post(f"{base}/continue", json={"input": "x"}),
                     await client.post(f"/v1/agents/{agent_ref}/invoke", json={"input": "x", "session_id": "ext-1"})):
        assert response.status_code == 404, await response.get_json()
    session = (await (await client.get("/sessions/ext-1")).get_json())["session"]
    assert session["session_name"] == "outside"  # not renamed, not deleted


def parse_sse(raw: bytes) -> list[dict]:
    frames = []
    for block in raw.decode().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "event" in fields:
            frames.append({"id": int(fields["id"]), "event": fields["event"], "data": json.loads(fields["data"])})
    return frames


async def test_stream_uses_agentspec_event_names(client, fake_llm):
    await agent_named(client, fake_llm, prompt="p")
    fake_llm.script(ToolCalls([("c1", "get_current_time", {"timezone": "UTC"})]), Text(["It ", "is ", "now."]))
    response = await client.post("/v1/agents/assistant/stream", json={"input": "time?"})
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("text/event-stream")
    frames = parse_sse(await response.get_data())
    names = [f["event"] for f in frames]
    assert names[0] == "tool_call" and names[1] == "tool_result" and names[-1] == "done"
    assert "".join(f["data"]["content"] for f in frames if f["event"] == "token") == "It is now."
    assert frames[0]["data"] == {"id": "c1", "name": "get_current_time", "arguments": {"timezone": "UTC"}}
    assert frames[-1]["data"]["usage"]["total_tokens"] == 30
    assert [f["id"] for f in frames] == sorted(f["id"] for f in frames)
    sid = response.headers["X-Session-ID"]
    assert [m["role"] for m in await messages(client, sid)] == ["user", "tool_call", "tool_result", "assistant"]


async def test_a_turn_with_no_text_has_output_empty_on_invoke_and_stream_alike(client, fake_llm):
    """Reported: a turn that hit MAX_ITERATIONS (10) with only tool calls answered invoke
    with `output: ""` but ended the stream with `done.output: null` (docs/api.md 9.4:
    the answer as invoke returns it)."""
    await agent_named(client, fake_llm, name="timer", prompt="p")
    loop = [ToolCalls([(f"e{i}", "get_current_time", {})]) for i in range(10)]
    fake_llm.script(*loop)
    invoked = await client.post("/v1/agents/timer/invoke", json={"input": "loop"})
    assert invoked.status_code == 200 and (await invoked.get_json())["output"] == ""
    fake_llm.script(*loop)
    streamed = await client.post("/v1/agents/timer/stream", json={"input": "loop"})
    done = parse_sse(await streamed.get_data())[-1]
    assert streamed.status_code == 200 and done["event"] == "done"
    assert done["data"]["reason"] == "max_iterations" and done["data"]["output"] == ""


async def test_stream_error_event(client, fake_llm):
    await agent_named(client, fake_llm, prompt="p")
    fake_llm.script(Error(401, "bad key"))
    frames = parse_sse(await (await client.post("/v1/agents/assistant/stream", json={"input": "x"})).get_data())
    assert frames[-1]["event"] == "error" and frames[-1]["data"]["code"] == "provider_auth_failed"


async def test_stream_disconnected_halfway_still_completes(client, fake_llm):
    await agent_named(client, fake_llm, prompt="p")
    fake_llm.script(Text(["slow ", "and ", "steady"], delay=0.2))
    async with client.request("/v1/agents/assistant/stream", method="POST", headers={"Content-Type": "application/json"}) as conn:
        await conn.send(json.dumps({"input": "go"}).encode())
        await conn.send_complete()
        first = await asyncio.wait_for(conn.receive(), 5)
        assert b"event: token" in first
        sid = conn.headers["X-Session-ID"]
        await conn.disconnect()
    log = await wait_turns(client, sid)
    assert log[-1]["type"] == "session.completed"
    assert [m["content"]["text"] for m in await messages(client, sid) if m["role"] == "assistant"] == ["slow and steady"]


async def test_a_stream_whose_queued_turn_a_cancel_drops_ends_with_an_error(client, fake_llm):
    """Reported: /stream queued behind a running turn, then a cancel: the stream sent
    nothing and never ended. Now the cancel's session.cancelled names the dropped message
    (in both runner modes) and the stream ends with `error` (code `cancelled`)."""
    await agent_named(client, fake_llm, prompt="p")
    sid = (await (await client.post("/v1/agents/assistant/sessions")).get_json())["id"]
    fake_llm.script(Hang(["thinking"], seconds=30))
    await client.post(f"/v1/sessions/{sid}/messages", json={"content": "first"})
    await wait_for_event(client, sid, "message.delta")
    async with client.request("/v1/agents/assistant/stream", method="POST",
                              headers={"Content-Type": "application/json"}) as conn:
        await conn.send(json.dumps({"input": "queued", "session_id": sid}).encode())
        await conn.send_complete()
        deadline = time.monotonic() + 10
        while not [m for m in await messages(client, sid) if m["content"].get("text") == "queued"]:
            assert time.monotonic() < deadline, "the streamed message was never stored"
            await asyncio.sleep(0.02)
        assert (await client.post(f"/v1/sessions/{sid}/cancel")).status_code == 202
        body = b""
        while b"event: error" not in body:
            body += await asyncio.wait_for(conn.receive(), 10)  # a stream that never ends fails here
    frames = parse_sse(body)
    assert [f["event"] for f in frames] == ["error"]
    assert frames[0]["data"] == {"code": "cancelled", "message": "cancelled by request"}
    cancelled = [e for e in await events(client, sid) if e["type"] == "session.cancelled"]
    queued_id = next(m["id"] for m in await messages(client, sid) if m["content"].get("text") == "queued")
    assert [queued_id] in [e["data"].get("dropped_message_ids") for e in cancelled]


async def test_healthz_and_metrics_move_with_traffic(client, fake_llm):
    health = await (await client.get("/healthz")).get_json()
    assert health["status"] == "ok" and health["uptime_seconds"] >= 0 and health["version"]
    await agent_named(client, fake_llm, prompt="p")
    fake_llm.script(ToolCalls([("c", "get_current_time", {})]), Text(["x"], input_tokens=7, output_tokens=3))
    await client.post("/v1/agents/assistant/invoke", json={"input": "hi"})
    await client.get("/v1/agents/nope")
    text = await (await client.get("/v1/metrics")).get_data(as_text=True)

    def value(line_start: str) -> float:
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(line_start))

    assert value('agentspec_requests_total{method="POST",route="/v1/agents/<agent_ref>/invoke",status="200"}') == 1
    assert value('agentspec_requests_total{method="GET",route="/v1/agents/<agent_id>",status="404"}') == 1
    assert value('agentspec_tokens_total{kind="input",model="fake-model",provider="openai"}') == 17
    assert value('agentspec_tokens_total{kind="output",model="fake-model",provider="openai"}') == 8
    assert value('agentspec_turns_total{outcome="completed"}') == 1
    assert value('agentspec_tool_calls_total{outcome="ok",tool="get_current_time"}') == 1
    assert value('agentspec_errors_total{code="404",kind="http"}') >= 1
    assert value("agentspec_request_duration_seconds_count") >= 3
    for gauge in ("agentspec_sessions_active", "agentspec_sse_connections", "agentspec_websocket_connections"):
        assert gauge in text
    again = await (await client.get("/v1/metrics")).get_data(as_text=True)
    assert 'route="/v1/metrics",status="200"} 1.0' in again


async def test_healthz_degraded_when_the_database_is_gone(pg_settings, postgres_url):
    """A real outage: the app's PostgreSQL database is dropped under it."""
    import asyncpg

    from app.main import create_app

    app = create_app(pg_settings)
    async with app.test_app():
        client = app.test_client()
        assert (await client.get("/healthz")).status_code == 200
        admin = await asyncpg.connect(postgres_url.rsplit("/", 1)[0].replace("postgres://", "postgresql://", 1) + "/test")
        try:
            await admin.execute(f'DROP DATABASE "{postgres_url.rsplit("/", 1)[1]}" WITH (FORCE)')
        finally:
            await admin.close()
        response = await client.get("/healthz")
        body = await response.get_json()
        assert response.status_code == 503 and body["status"] == "degraded"
        assert body["checks"]["database"].startswith("error")


@pytest.mark.parametrize("code, status", [("database_unavailable", 503), ("runner_unavailable", 503),
                                          ("no_model_configured", 503), ("provider_timeout", 502),
                                          ("cancelled", 409), ("internal_error", 500)])
def test_a_turn_that_did_not_complete_maps_to_its_http_status(code, status):
    from app.dialects.agentspec import raise_for_failure
    from app.errors import ApiError
    from app.runtime.turn import TurnOutcome

    outcome = TurnOutcome("m1", status="failed", error={"code": code, "message": "it stopped"})
    with pytest.raises(ApiError) as caught:
        raise_for_failure(outcome, "s1")
    assert (caught.value.status, caught.value.code) == (status, code)
    assert caught.value.message == "it stopped (session s1)"


async def test_invoke_on_an_agent_that_waits_answers_with_the_pending_call(client, fake_llm):
    agent, _ = await agent_named(client, fake_llm, prompt="p")
    await client.put(f"/v1/agents/{agent['id']}/capabilities",
                     json={"capabilities": [{"id": "current_time", "requires_approval": True}]})
    fake_llm.script(ToolCalls([("c1", "get_current_time", {"timezone": "UTC"})]), Text(["It is late."]),
                    Text(["Bye."]))
    response = await asyncio.wait_for(client.post("/v1/agents/assistant/invoke", json={"input": "time?"}), 15)
    body = await response.get_json()
    assert response.status_code == 200, body
    assert body["status"] == "waiting_for_approval" and body["output"] == ""
    assert body["pending_tool_calls"] == [{"tool_call_id": "c1", "tool_name": "get_current_time",
                                           "arguments": {"timezone": "UTC"}, "kind": "approval"}]
    sid = body["session_id"]
    approved = await client.post(f"/v1/sessions/{sid}/tool-calls/c1/approve")
    assert approved.status_code == 200
    await wait_turns(client, sid)
    # The session goes on as usual: continue waits for the next turn's answer.
    response = await client.post(f"/v1/agents/assistant/sessions/{sid}/continue", json={"input": "thanks"})
    assert (await response.get_json())["output"] == "Bye."


async def test_stream_on_an_agent_that_waits_emits_the_request_and_ends(client, fake_llm):
    agent, _ = await agent_named(client, fake_llm, prompt="p")
    await client.patch(f"/v1/agents/{agent['id']}", json={"client_tools": [
        {"name": "pick_file", "description": "Let the user pick a file", "parameters": {"type": "object"}}]})
    fake_llm.script(ToolCalls([("f1", "pick_file", {})], text="Let me ask. "))
    response = await client.post("/v1/agents/assistant/stream", json={"input": "open something"})
    frames = parse_sse(await asyncio.wait_for(response.get_data(), 15))
    names = [f["event"] for f in frames]
    assert names[-2:] == ["tool_call_waiting", "waiting"], names
    assert frames[-2]["data"] == {"id": "f1", "name": "pick_file", "arguments": {}, "kind": "client"}
    assert frames[-1]["data"]["status"] == "waiting_for_client" and frames[-1]["data"]["tool_call_ids"] == ["f1"]
