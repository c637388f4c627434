"""The agent loop end to end: the real SDKs talk to a fake provider on loopback."""

from __future__ import annotations

import asyncio
import datetime as dt
import time

import pytest

from app.runtime import capabilities
from app.runtime.deltas import MAX_DELTA_INTERVAL, DeltaWriter
from tests.fakes import Broken, Cut, Error, Hang, Text, ToolCalls
from tests.helpers import FAKE_KEY, events, make_chat, messages, say, session, wait_for_event, wait_turns

pytestmark = pytest.mark.both_modes

LIFECYCLE = ["session.started", "step.started", "message.delta", "message.created", "step.completed", "session.completed"]


async def test_plain_streamed_reply(client, fake_llm):
    chat = await make_chat(client, fake_llm)
    fake_llm.script(Text(["Hello", ", ", "world"], input_tokens=12, output_tokens=3))
    posted = await say(client, chat["id"], "Hi there")
    log = await wait_turns(client, chat["id"])

    assert [e["sequence"] for e in log] == list(range(1, len(log) + 1))
    types = [e["type"] for e in log]
    assert types[0] == "message.created" and log[0]["data"]["message_id"] == posted["id"]
    assert [t for t in dict.fromkeys(types[1:])] == LIFECYCLE
    assert "".join(e["data"]["delta"] for e in log if e["type"] == "message.delta") == "Hello, world"
    step = next(e for e in log if e["type"] == "step.completed")["data"]
    assert step["usage"] == {"input_tokens": 12, "output_tokens": 3}

    stored = await messages(client, chat["id"])
    assert [(m["role"], m["content"]) for m in stored] == [("user", {"text": "Hi there"}), ("assistant", {"text": "Hello, world"})]
    delta_ids = {e["data"]["message_id"] for e in log if e["type"] == "message.delta"}
    assert delta_ids == {stored[1]["id"]}
    after = await session(client, chat["id"])
    assert after["status"] == "pending" and after["usage"] == {"input_tokens": 12, "output_tokens": 3}

    sent = fake_llm.requests[-1]["json"]
    assert sent["model"] == "fake-model" and sent["stream"] is True
    assert sent["messages"][0] == {"role": "system", "content": "You are terse."}
    assert sent["messages"][-1] == {"role": "user", "content": "Hi there"}
    assert fake_llm.requests[-1]["headers"]["authorization"] == "Bearer sk-test-fake-provider-key"


async def test_tool_call_in_a_named_timezone_then_answer(client, fake_llm):
    chat = await make_chat(client, fake_llm)
    fake_llm.script(ToolCalls([("call_1", "get_current_time", {"timezone": "Asia/Tokyo"})], text="Checking."),
                    Text(["It is late in Tokyo."], input_tokens=30, output_tokens=6))
    await say(client, chat["id"], "What time is it in Tokyo?")
    log = await wait_turns(client, chat["id"])

    started = next(e for e in log if e["type"] == "tool.started")["data"]
    done = next(e for e in log if e["type"] == "tool.completed")["data"]
    assert started["tool_name"] == "get_current_time" and started["arguments"] == {"timezone": "Asia/Tokyo"}
    assert done["error"] is None and done["tool_call_id"] == "call_1"
    assert dt.datetime.fromisoformat(done["result"]["time"]).utcoffset() == dt.timedelta(hours=9)

    roles = [(m["role"], m["content"]) for m in await messages(client, chat["id"])]
    assert [r for r, _ in roles] == ["user", "assistant", "tool_call", "tool_result", "assistant"]
    assert roles[2][1] == {"id": "call_1", "name": "get_current_time", "arguments": {"timezone": "Asia/Tokyo"}}
    assert roles[4][1] == {"text": "It is late in Tokyo."}

    second = fake_llm.requests[-1]["json"]["messages"]
    assistant = next(m for m in second if m["role"] == "assistant")
    assert assistant["tool_calls"][0]["function"]["name"] == "get_current_time"
    tool = next(m for m in second if m["role"] == "tool")
    assert tool["tool_call_id"] == "call_1" and "+09:00" in tool["content"]
    assert fake_llm.requests[0]["json"]["tools"][0]["function"]["name"] == "get_current_time"
    assert (await session(client, chat["id"]))["usage"] == {"input_tokens": 40, "output_tokens": 11}


async def test_two_tool_calls_run_concurrently_results_in_call_order(client, fake_llm, monkeypatch):
    class NapArgs(capabilities.BaseModel):
        seconds: float

    async def nap(args):
        await asyncio.sleep(args.seconds)
        return f"slept {args.seconds}"

    napper = capabilities.Capability("napper", "Napper", "test tool", tools=(capabilities.Tool.builtin("nap", "sleep", NapArgs, nap),))
    monkeypatch.setitem(capabilities.REGISTRY, "napper", napper)
    chat = await make_chat(client, fake_llm, capabilities=("napper",))
    fake_llm.script(ToolCalls([("a", "nap", {"seconds": 0.4}), ("b", "nap", {"seconds": 0.1})]), Text(["done"]))
    await say(client, chat["id"], "nap twice")
    log = await wait_turns(client, chat["id"])

    tool_events = [(e["type"], e["data"]["tool_call_id"]) for e in log if e["type"].startswith("tool.")]
    # Both started before either ended. In which order is not fixed (docs/api.md §4.1, "all
    # calls of the step start together"): on Temporal each call is its own activity.
    assert sorted(tool_events[:2]) == [("tool.started", "a"), ("tool.started", "b")]
    assert tool_events[2:] == [("tool.completed", "b"), ("tool.completed", "a")]
    results = [m["content"]["tool_call_id"] for m in await messages(client, chat["id"]) if m["role"] == "tool_result"]
    assert results == ["a", "b"]
    tool_messages = [m for m in fake_llm.requests[-1]["json"]["messages"] if m["role"] == "tool"]
    assert [m["tool_call_id"] for m in tool_messages] == ["a", "b"]


async def test_unknown_tool_and_bad_arguments_become_errors_the_model_sees(client, fake_llm):
    chat = await make_chat(client, fake_llm)
    fake_llm.script(ToolCalls([("u", "launch_rocket", {}), ("j", "get_current_time", '{"timezone": nope'),
                               ("v", "get_current_time", {"format": "roman"}), ("z", "get_current_time", {"timezone": "Mars/Base"})]),
                    Text(["Sorry."]))
    await say(client, chat["id"], "do odd things")
    log = await wait_turns(client, chat["id"])
    assert log[-1]["type"] == "session.completed"
    errors = {e["data"]["tool_call_id"]: e["data"]["error"] for e in log if e["type"] == "tool.completed"}
    assert "unknown tool 'launch_rocket'" in errors["u"] and "get_current_time" in errors["u"]
    assert "not valid JSON" in errors["j"]
    assert "format" in errors["v"] and "unknown timezone" in errors["z"]
    sent = [m for m in fake_llm.requests[-1]["json"]["messages"] if m["role"] == "tool"]
    assert [m["tool_call_id"] for m in sent] == ["u", "j", "v", "z"] and "unknown tool" in sent[0]["content"]


@pytest.mark.parametrize("provider_type", ["openai", "anthropic"])
async def test_provider_500_is_retried_then_fails_clearly(client, fake_llm, provider_type):
    chat = await make_chat(client, fake_llm, provider_type=provider_type)
    fake_llm.script(Error(500, "upstream exploded", sticky=True))
    await say(client, chat["id"], "hello?")
    log = await wait_turns(client, chat["id"])
    failed = log[-1]
    assert failed["type"] == "session.failed" and failed["data"]["code"] == "provider_unavailable"
    assert "500" in failed["data"]["error"] and "upstream exploded" in failed["data"]["error"]
    assert failed["data"]["error"].endswith("(after 3 attempts)")  # docs/api.md §4.3
    assert len(fake_llm.requests) == 3  # LLM_MAX_RETRIES=2: one try and two retries
    after = await session(client, chat["id"])
    assert after["status"] == "failed" and "500" in after["last_error"]
    # A new message starts again.
    fake_llm.reset()
    await say(client, chat["id"], "again")
    log = await wait_turns(client, chat["id"], count=2)
    assert log[-1]["type"] == "session.completed" and (await session(client, chat["id"]))["status"] == "pending"
    assert (await session(client, chat["id"]))["last_error"] is None


async def test_429_is_retried_with_retry_after_then_succeeds(client, fake_llm):
    chat = await make_chat(client, fake_llm)
    fake_llm.script(Error(429, "slow down", retry_after=0.05), Text(["ok"]))
    await say(client, chat["id"], "hi")
    log = await wait_turns(client, chat["id"])
    assert log[-1]["type"] == "session.completed" and len(fake_llm.requests) == 2


async def test_bad_api_key_fails_with_a_fix(client, fake_llm):
    chat = await make_chat(client, fake_llm, api_key="sk-wrong-key-0000")
    await say(client, chat["id"], "hi")
    failed = (await wait_turns(client, chat["id"]))[-1]
    assert failed["type"] == "session.failed" and failed["data"]["code"] == "provider_auth_failed"
    # The fix names the provider to update: a route the client can call as it is.
    assert "API key" in failed["data"]["error"]
    assert failed["data"]["error"].endswith(f"Update it with PATCH /v1/llm-providers/{chat['provider_id']}")
    assert len(fake_llm.requests) == 1  # a 401 is not retried


async def test_a_provider_quoting_the_key_it_refused_does_not_leak_it(client, fake_llm):
    """Reported: a provider's 401 text that quotes the key put the whole key into the
    session's last_error, its session.failed event and the log (§3.10: never returned)."""
    chat = await make_chat(client, fake_llm)
    fake_llm.script(Error(401, f"Incorrect API key provided: {FAKE_KEY}."))
    await say(client, chat["id"], "hi")
    failed = (await wait_turns(client, chat["id"]))[-1]
    assert failed["data"]["code"] == "provider_auth_failed"
    assert FAKE_KEY not in failed["data"]["error"] and "Incorrect API key provided: [API key]. Update" in failed["data"]["error"]
    assert FAKE_KEY not in (await session(client, chat["id"]))["last_error"]


async def test_a_short_key_the_provider_quotes_is_taken_out_too(client):
    """Reported: a key shorter than 8 characters (`sk-test`) quoted in a provider's 401
    reached the invoke answer, the session's last_error and the stream's error frame."""
    from tests.agentspec.test_agentspec import parse_sse
    from tests.fakes import FakeLLM

    with FakeLLM() as fake:  # takes any key, so the scripted 401 is the one answered
        chat = await make_chat(client, fake, api_key="sk-test")
        fake.script(*[Error(401, "Incorrect API key provided: sk-test") for _ in range(2)])
        response = await client.post(f"/v1/agents/{chat['agent_id']}/invoke", json={"input": "x"})
        body = await response.get_json()
        assert response.status_code == 502 and body["error"]["code"] == "provider_auth_failed"
        assert "sk-test" not in body["error"]["message"]
        assert "Incorrect API key provided: [API key]" in body["error"]["message"]
        session_id = body["error"]["message"].rsplit("(session ", 1)[1].rstrip(")")
        assert "sk-test" not in (await session(client, session_id))["last_error"]
        streamed = await client.post(f"/v1/agents/{chat['agent_id']}/stream", json={"input": "x"})
        error = parse_sse(await streamed.get_data())[-1]
        assert error["event"] == "error" and "sk-test" not in error["data"]["message"]
    # Alone only: a short key does not cut into the words and numbers around it.
    from app.runtime.providers.base import without_key

    assert without_key("key 'test' rejected in test-2 (401), not testing", "test") == \
        "key '[API key]' rejected in [API key]-2 (401), not testing"
    assert without_key("provider returned 401", "401") == "provider returned [API key]"
    assert without_key("HTTP 4011 error", "401") == "HTTP 4011 error"


async def test_no_model_configured_fails_at_once(client):
    agent = await (await client.post("/v1/agents", json={"name": "a", "system_prompt": "p"})).get_json()
    chat = await (await client.post(f"/v1/agents/{agent['id']}/sessions", json={})).get_json()
    await say(client, chat["id"], "hi")
    failed = (await wait_turns(client, chat["id"], timeout=3))[-1]
    assert failed["type"] == "session.failed" and failed["data"]["code"] == "no_model_configured"
    assert "POST /v1/llm-providers" in failed["data"]["error"]


async def test_disabled_provider_fails_with_a_fix(client, fake_llm):
    chat = await make_chat(client, fake_llm)
    await client.patch(f"/v1/llm-providers/{chat['provider_id']}", json={"status": "disabled"})
    await say(client, chat["id"], "hi")
    failed = (await wait_turns(client, chat["id"]))[-1]
    assert "disabled" in failed["data"]["error"] and fake_llm.requests == []


async def test_cancel_mid_stream_keeps_partial_text(client, fake_llm):
    chat = await make_chat(client, fake_llm)
    fake_llm.script(Hang(["Partial ", "answer"], seconds=30))
    await say(client, chat["id"], "long story please")
    await wait_for_event(client, chat["id"], "message.delta")
    await asyncio.sleep(0.1)
    started = time.monotonic()
    response = await client.post(f"/v1/sessions/{chat['id']}/cancel")
    assert response.status_code == 202 and time.monotonic() - started < 1.0
    body = await response.get_json()
    assert body["cancelled"] is True and body["status"] == "pending"
    log = await events(client, chat["id"])
    assert log[-1]["type"] == "session.cancelled"
    assert [m["content"] for m in await messages(client, chat["id"]) if m["role"] == "assistant"] == [{"text": "Partial answer"}]
    # Idle cancel is harmless, and the session works again.
    again = await client.post(f"/v1/sessions/{chat['id']}/cancel")
    assert again.status_code == 202 and (await again.get_json())["cancelled"] is False
    await say(client, chat["id"], "short one")
    assert (await wait_turns(client, chat["id"], count=2))[-1]["type"] == "session.completed"


async def test_cancel_drops_queued_turns(client, fake_llm):
    chat = await make_chat(client, fake_llm)
    fake_llm.script(Hang(["..."], seconds=30), Text(["third"]))
    await say(client, chat["id"], "first")
    await say(client, chat["id"], "second, queued")
    await wait_for_event(client, chat["id"], "message.delta")
    await client.post(f"/v1/agents/{chat['agent_id']}/sessions/{chat['id']}/cancel")
    # Turns run in order, so had "second" stayed queued it would run before "third".
    await say(client, chat["id"], "third")
    log = await wait_turns(client, chat["id"], count=2)
    assert [e["type"] for e in log].count("session.started") == 2 and len(fake_llm.requests) == 2
    assert fake_llm.requests[-1]["json"]["messages"][-1]["content"] == "third"


async def test_back_to_back_messages_run_in_order_one_at_a_time(client, fake_llm):
    chat = await make_chat(client, fake_llm)
    # The first answer takes 0.3 s (the delay is between chunks), so "second" surely
    # arrives while it runs, however fast the turn starts.
    fake_llm.script(Text(["o", "ne"], delay=0.3), Text(["two"]))
    await say(client, chat["id"], "first")
    await say(client, chat["id"], "second")
    log = await wait_turns(client, chat["id"], count=2)
    lifecycle = [e["type"] for e in log if e["type"] in ("session.started", "session.completed")]
    assert lifecycle == ["session.started", "session.completed"] * 2
    assert [m["content"]["text"] for m in await messages(client, chat["id"])] == ["first", "second", "one", "two"]
    first_request, second_request = (r["json"]["messages"] for r in fake_llm.requests)
    assert [m["content"] for m in first_request[1:]] == ["first"]  # the queued message is not answered early
    assert [(m["role"], m["content"]) for m in second_request[1:]] == [("user", "first"), ("assistant", "one"), ("user", "second")]


async def test_a_third_queued_turn_sees_each_answer_after_its_question(client, fake_llm):
    """Reported by a client test: with m2 and m3 queued behind m1, the third turn sent the
    model [m1, m2, one, two, m3]: m2 is numbered before the answer to m1."""
    chat = await make_chat(client, fake_llm)
    fake_llm.script(Text(["o", "ne"], delay=0.3), Text(["two"]), Text(["three"]))
    for text in ("first", "second", "third"):
        await say(client, chat["id"], text)
    await wait_turns(client, chat["id"], count=3)
    assert [m["content"]["text"] for m in await messages(client, chat["id"])] == \
        ["first", "second", "third", "one", "two", "three"]  # stored by number, as they came
    third_request = fake_llm.requests[2]["json"]["messages"][1:]
    assert [(m["role"], m["content"]) for m in third_request] == [
        ("user", "first"), ("assistant", "one"), ("user", "second"), ("assistant", "two"), ("user", "third")]


async def test_deltas_are_merged_but_never_dropped(client, fake_llm):
    chat = await make_chat(client, fake_llm)
    chunks = [f"w{i} " for i in range(200)]
    fake_llm.script(Text(chunks))
    await say(client, chat["id"], "many words")
    log = await wait_turns(client, chat["id"])
    deltas = [e["data"]["delta"] for e in log if e["type"] == "message.delta"]
    assert "".join(deltas) == "".join(chunks) and len(deltas) < 50


async def test_the_merge_window_widens_with_the_audience(app):
    """Each delta costs a write per subscriber: many subscribers, fewer (larger) deltas."""
    bus = app.extensions["runtime"].bus
    writer = DeltaWriter(app.extensions["runtime"].events, "s1", {}, interval=0.05, per_subscriber=0.15 / 1000)
    assert writer.interval() == 0.05
    audience = [bus.subscribe("s1") for _ in range(1000)]
    assert writer.interval() == pytest.approx(0.15)
    audience += [bus.subscribe("s1") for _ in range(9000)]
    assert writer.interval() == MAX_DELTA_INTERVAL
    for sub in audience:
        sub.close()
    assert writer.interval() == 0.05


async def test_azure_openai_routes_to_the_deployment(client, fake_llm):
    provider = await (await client.post("/v1/llm-providers", json={
        "name": "azure", "provider_type": "azure_openai", "base_url": fake_llm.openai_base_url.removesuffix("/v1"),
        "api_key": FAKE_KEY, "api_version": "2024-10-21", "is_default": True})).get_json()
    await client.post(f"/v1/llm-providers/{provider['id']}/models", json={"model_id": "my-deployment", "is_default": True})
    agent = await (await client.post("/v1/agents", json={"name": "a", "system_prompt": "p"})).get_json()
    chat = await (await client.post(f"/v1/agents/{agent['id']}/sessions", json={})).get_json()
    fake_llm.script(Text(["Hi ", "from Azure"]))
    await say(client, chat["id"], "hello")
    assert (await wait_turns(client, chat["id"]))[-1]["type"] == "session.completed"
    sent = fake_llm.requests[-1]
    assert sent["path"] == "/openai/deployments/my-deployment/chat/completions"
    assert sent["query"] == {"api-version": "2024-10-21"} and sent["headers"]["api-key"] == FAKE_KEY
    assert [m["content"] for m in await messages(client, chat["id"])][-1] == {"text": "Hi from Azure"}


async def test_anthropic_reply_and_tool_use(client, fake_llm):
    chat = await make_chat(client, fake_llm, provider_type="anthropic")
    fake_llm.script(ToolCalls([("toolu_1", "get_current_time", {"timezone": "Europe/Paris", "format": "unix"})]),
                    Text(["Bonjour."], input_tokens=7, output_tokens=2))
    await say(client, chat["id"], "Time in Paris?")
    log = await wait_turns(client, chat["id"])
    assert log[-1]["type"] == "session.completed"
    done = next(e for e in log if e["type"] == "tool.completed")["data"]
    assert isinstance(done["result"]["time"], int)
    request = fake_llm.requests[-1]
    assert request["path"] == "/v1/messages" and request["json"]["system"] == "You are terse."
    blocks = request["json"]["messages"]
    assert [m["role"] for m in blocks] == ["user", "assistant", "user"]
    assert blocks[1]["content"][0] == {"type": "tool_use", "id": "toolu_1", "name": "get_current_time",
                                       "input": {"timezone": "Europe/Paris", "format": "unix"}}
    assert blocks[2]["content"][0]["type"] == "tool_result" and blocks[2]["content"][0]["tool_use_id"] == "toolu_1"
    assert [m["content"]["text"] for m in await messages(client, chat["id"]) if m["role"] == "assistant"] == ["Bonjour."]


async def test_delete_a_running_session(client, fake_llm):
    chat = await make_chat(client, fake_llm)
    fake_llm.script(Hang(["..."], seconds=30))
    await say(client, chat["id"], "go")
    await wait_for_event(client, chat["id"], "message.delta")
    assert (await client.delete(f"/v1/sessions/{chat['id']}")).status_code == 204
    assert (await client.get(f"/v1/sessions/{chat['id']}")).status_code == 404


async def test_anthropic_errors_are_translated_too(client, fake_llm):
    chat = await make_chat(client, fake_llm, provider_type="anthropic", api_key="sk-ant-wrong-0000")
    await say(client, chat["id"], "hi")
    failed = (await wait_turns(client, chat["id"]))[-1]
    assert failed["data"]["code"] == "provider_auth_failed" and "Anthropic provider" in failed["data"]["error"]
    assert failed["data"]["error"].endswith(f"PATCH /v1/llm-providers/{chat['provider_id']}")


@pytest.mark.parametrize(("how", "code"), [("drop", "provider_unreachable"), ("end", "provider_bad_response")])
async def test_an_anthropic_answer_cut_short_fails_the_turn_with_a_provider_code(client, fake_llm, how, code):
    """Reported: a connection lost mid-answer was internal_error on Anthropic, and an
    answer cut before its end was a completed turn (tests/runtime/test_provider_replies.py
    has every case, per SDK)."""
    chat = await make_chat(client, fake_llm, provider_type="anthropic")
    fake_llm.script(Cut(how, ["Half an ans"]))
    await say(client, chat["id"], "hi")
    failed = (await wait_turns(client, chat["id"]))[-1]
    assert failed["type"] == "session.failed" and failed["data"]["code"] == code, failed
    assert [m["content"]["text"] for m in await messages(client, chat["id"]) if m["role"] == "assistant"] == \
        ["Half an ans"]  # the text streamed before is kept (§5.4)


@pytest.mark.parametrize("provider_type", ["openai", "anthropic"])
async def test_an_error_event_inside_the_stream_fails_the_turn_clearly(client, fake_llm, provider_type):
    chat = await make_chat(client, fake_llm, provider_type=provider_type)
    fake_llm.script(Broken(["Half ", "a thought"], message="The model is overloaded, try again."))
    await say(client, chat["id"], "go")
    failed = (await wait_turns(client, chat["id"]))[-1]
    assert failed["type"] == "session.failed" and failed["data"]["code"] == "provider_error"
    assert "failed while answering: The model is overloaded, try again." in failed["data"]["error"]
    assert len(fake_llm.requests) == 1  # text was already streamed: no retry
    assert [m["content"] for m in await messages(client, chat["id"]) if m["role"] == "assistant"] == [{"text": "Half a thought"}]
    fake_llm.script(Text(["fine again"]))
    await say(client, chat["id"], "and now?")
    assert (await wait_turns(client, chat["id"], count=2))[-1]["type"] == "session.completed"


async def test_malformed_anthropic_tool_input_fails_clearly(client, fake_llm):
    chat = await make_chat(client, fake_llm, provider_type="anthropic")
    fake_llm.script(ToolCalls([("toolu_1", "get_current_time", '{"timezone": ')]))
    await say(client, chat["id"], "time?")
    failed = (await wait_turns(client, chat["id"]))[-1]
    assert failed["type"] == "session.failed" and failed["data"]["code"] == "provider_bad_response"
    assert "malformed reply" in failed["data"]["error"]


async def test_failure_mid_stream_keeps_what_was_said(client, fake_llm):
    chat = await make_chat(client, fake_llm)
    fake_llm.script(Hang(["Half an ans"], seconds=30))
    await say(client, chat["id"], "go")
    await wait_for_event(client, chat["id"], "message.delta")
    await client.patch(f"/v1/llm-providers/{chat['provider_id']}", json={"status": "disabled"})
    # Stop the provider mid-stream the hard way: the fake stops answering this request.
    fake_llm.stop()
    try:
        failed = (await wait_turns(client, chat["id"], timeout=15))[-1]
    finally:
        fake_llm.start()
    assert failed["type"] == "session.failed"
    assert [m["content"] for m in await messages(client, chat["id"]) if m["role"] == "assistant"] == [{"text": "Half an ans"}]


async def test_shutdown_cancels_running_turns_with_a_reason(app, client, fake_llm, runner_mode):
    """In process, a turn cannot outlive the server: it is cancelled, saying why. On
    Temporal the API process holds no turn: its shutdown leaves the turn running."""
    chat = await make_chat(client, fake_llm)
    fake_llm.script(Hang(["..."], seconds=30 if runner_mode == "inprocess" else 1.5))
    await say(client, chat["id"], "go")
    await wait_for_event(client, chat["id"], "message.delta")
    await app.extensions["runtime"].runner.shutdown()
    if runner_mode == "temporal":
        log = await wait_turns(client, chat["id"])
        assert log[-1]["type"] == "session.completed"
        return
    last = (await events(client, chat["id"]))[-1]
    assert last["type"] == "session.cancelled" and last["data"]["reason"] == "server shutting down"
    assert (await session(client, chat["id"]))["status"] == "pending"
