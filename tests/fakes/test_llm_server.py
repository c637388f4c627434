"""Tests of the fake LLM server, driven by the real openai / anthropic SDKs."""

import asyncio
import json
import time

import anthropic
import openai
import pytest
import pytest_asyncio

from tests.fakes import Error, FakeLLM, Hang, Text, ToolCalls

pytestmark = pytest.mark.asyncio  # harmless under asyncio_mode=auto, needed under strict

KEY = "sk-test"
MSGS = [{"role": "user", "content": "hi there"}]


@pytest.fixture(scope="module")
def server():
    with FakeLLM(api_key=KEY) as fake:
        yield fake


@pytest.fixture
def fake(server):
    server.reset()
    yield server
    server.reset()


# Clients are closed per test: each test has its own event loop, and pooled
# keep-alive connections would otherwise leak (ResourceWarning).
@pytest_asyncio.fixture
async def oai(fake):
    async with openai.AsyncOpenAI(base_url=fake.openai_base_url, api_key=KEY, max_retries=0) as client:
        yield client


@pytest_asyncio.fixture
async def ant(fake):
    async with anthropic.AsyncAnthropic(base_url=fake.anthropic_base_url, api_key=KEY, max_retries=0) as client:
        yield client


async def oai_stream(oai, **kw):
    """Consume an OpenAI stream the way an agent loop does: text + tool calls accumulated by index."""
    text, calls, finish, usage = "", {}, None, None
    stream = await oai.chat.completions.create(
        model="gpt-x", messages=MSGS, stream=True, stream_options={"include_usage": True}, **kw
    )
    async for chunk in stream:
        usage = chunk.usage or usage
        for choice in chunk.choices:
            text += choice.delta.content or ""
            finish = choice.finish_reason or finish
            for tc in choice.delta.tool_calls or []:
                c = calls.setdefault(tc.index, {"id": None, "name": None, "args": "", "fragments": 0})
                c["id"] = tc.id or c["id"]
                c["name"] = (tc.function.name if tc.function else None) or c["name"]
                if tc.function and tc.function.arguments:
                    c["args"] += tc.function.arguments
                    c["fragments"] += 1
    return text, [calls[i] for i in sorted(calls)], finish, usage


TWO_CALLS = ToolCalls(
    [("call_a", "get_weather", {"city": "Paris", "units": "metric"}), ("call_b", "get_time", {"tz": "UTC"})],
    text="Let me check.",
    input_tokens=42,
    output_tokens=7,
)


async def test_openai_streamed_text_and_usage(fake, oai):
    fake.script(Text(["Hel", "lo", " world"], input_tokens=3, output_tokens=4))
    text, calls, finish, usage = await oai_stream(oai)
    assert (text, calls, finish) == ("Hello world", [], "stop")
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (3, 4, 7)
    req = fake.requests[-1]
    assert req["path"] == "/v1/chat/completions" and req["json"]["model"] == "gpt-x"
    assert req["headers"]["authorization"] == f"Bearer {KEY}"


async def test_openai_two_tool_calls_streamed(fake, oai):
    fake.script(TWO_CALLS)
    text, calls, finish, usage = await oai_stream(oai)
    assert text == "Let me check." and finish == "tool_calls"
    assert [(c["id"], c["name"]) for c in calls] == [("call_a", "get_weather"), ("call_b", "get_time")]
    assert json.loads(calls[0]["args"]) == {"city": "Paris", "units": "metric"}
    assert json.loads(calls[1]["args"]) == {"tz": "UTC"}
    assert all(c["fragments"] >= 2 for c in calls)  # arguments really arrive in pieces
    assert usage.prompt_tokens == 42


async def test_openai_non_streaming_and_malformed_args(fake, oai):
    fake.script(Text(["a", "b"]), ToolCalls([("c1", "f", '{"broken": ')]))
    r = await oai.chat.completions.create(model="gpt-y", messages=MSGS)
    assert r.choices[0].message.content == "ab" and r.model == "gpt-y" and r.usage.total_tokens == 15
    r = await oai.chat.completions.create(model="gpt-y", messages=MSGS)
    tc = r.choices[0].message.tool_calls[0]
    assert (tc.id, tc.function.name, tc.function.arguments) == ("c1", "f", '{"broken": ')
    assert r.choices[0].finish_reason == "tool_calls"


async def test_anthropic_streamed_text(fake, ant):
    fake.script(Text(["Hel", "lo"], input_tokens=11, output_tokens=2))
    async with ant.messages.stream(model="claude-x", max_tokens=100, messages=MSGS) as stream:
        pieces = [t async for t in stream.text_stream]
        msg = await stream.get_final_message()
    assert pieces == ["Hel", "lo"] and msg.content[0].text == "Hello"
    assert msg.stop_reason == "end_turn" and msg.model == "claude-x"
    assert (msg.usage.input_tokens, msg.usage.output_tokens) == (11, 2)


async def test_anthropic_two_tool_calls_streamed(fake, ant):
    fake.script(TWO_CALLS)
    fragments = 0
    async with ant.messages.stream(model="claude-x", max_tokens=100, messages=MSGS) as stream:
        async for event in stream:
            if event.type == "content_block_delta" and event.delta.type == "input_json_delta":
                fragments += bool(event.delta.partial_json)
        msg = await stream.get_final_message()
    assert msg.stop_reason == "tool_use" and fragments >= 4
    assert [b.type for b in msg.content] == ["text", "tool_use", "tool_use"]
    assert msg.content[0].text == "Let me check."
    assert [(b.id, b.name, b.input) for b in msg.content[1:]] == [
        ("call_a", "get_weather", {"city": "Paris", "units": "metric"}),
        ("call_b", "get_time", {"tz": "UTC"}),
    ]
    assert (msg.usage.input_tokens, msg.usage.output_tokens) == (42, 7)


async def test_anthropic_non_streaming(fake, ant):
    fake.script(ToolCalls([("t1", "lookup", {"q": 1})]))
    msg = await ant.messages.create(model="claude-x", max_tokens=10, messages=MSGS)
    assert msg.stop_reason == "tool_use" and msg.content[0].input == {"q": 1}
    msg = await ant.messages.create(model="claude-x", max_tokens=10, messages=MSGS)  # empty queue
    assert msg.content[0].text == "echo: hi there"


async def test_echo_default_both_protocols(fake, oai, ant):
    text, *_ = await oai_stream(oai)
    assert text == "echo: hi there"
    blocks = [{"role": "user", "content": [{"type": "text", "text": "block text"}]}]
    async with ant.messages.stream(model="m", max_tokens=10, messages=blocks) as stream:
        assert await stream.get_final_text() == "echo: block text"


@pytest.mark.parametrize(
    "status,oai_exc,ant_exc",
    [
        (500, openai.InternalServerError, anthropic.InternalServerError),
        (429, openai.RateLimitError, anthropic.RateLimitError),
    ],
)
async def test_errors(fake, oai, ant, status, oai_exc, ant_exc):
    fake.script(Error(status, "boom", retry_after=2), Error(status, "boom"))
    with pytest.raises(oai_exc) as e:
        await oai_stream(oai)
    assert e.value.response.headers["retry-after"] == "2" and e.value.body["message"] == "boom"
    with pytest.raises(ant_exc) as e:
        await ant.messages.create(model="m", max_tokens=10, messages=MSGS, stream=True)
    expected = "rate_limit_error" if status == 429 else "api_error"
    assert e.value.body["error"]["type"] == expected
    assert (await ant.messages.create(model="m", max_tokens=10, messages=MSGS)).content  # consumed


async def test_sticky_error_fails_every_retry(fake):
    fake.script(Error(503, "down", retry_after=0.01, sticky=True))  # SDK ignores retry-after <= 0
    async with openai.AsyncOpenAI(base_url=fake.openai_base_url, api_key=KEY, max_retries=2) as client:
        with pytest.raises(openai.InternalServerError):
            await client.chat.completions.create(model="m", messages=MSGS)
    assert len(fake.requests) == 3


async def test_wrong_key(fake):
    async with openai.AsyncOpenAI(base_url=fake.openai_base_url, api_key="nope", max_retries=0) as bad_oai:
        with pytest.raises(openai.AuthenticationError):
            await bad_oai.chat.completions.create(model="m", messages=MSGS)
    async with anthropic.AsyncAnthropic(base_url=fake.anthropic_base_url, api_key="nope", max_retries=0) as bad_ant:
        with pytest.raises(anthropic.AuthenticationError) as e:
            await bad_ant.messages.create(model="m", max_tokens=10, messages=MSGS)
    assert e.value.body["error"]["type"] == "authentication_error"


async def test_hang_can_be_cancelled(fake, oai, ant):
    fake.script(Hang(["wait"], seconds=30), Hang(["wait"], seconds=30))
    got = []

    async def consume_openai():
        async for chunk in await oai.chat.completions.create(model="m", messages=MSGS, stream=True):
            got.extend(c.delta.content for c in chunk.choices if c.delta.content)

    async def consume_anthropic():
        async with ant.messages.stream(model="m", max_tokens=10, messages=MSGS) as stream:
            async for t in stream.text_stream:
                got.append(t)

    t0 = time.monotonic()
    for consume in (consume_openai, consume_anthropic):
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(consume(), timeout=0.5)
    assert got == ["wait", "wait"] and time.monotonic() - t0 < 5
    text, *_ = await oai_stream(oai)  # server is still answering
    assert text == "echo: hi there"


async def test_hang_does_not_block_other_requests(fake, oai, ant):
    fake.script(Hang(["wait"], seconds=30))
    stream = await oai.chat.completions.create(model="m", messages=MSGS, stream=True)
    first = await stream.__anext__()  # the hang is now in progress server-side
    assert first.choices[0].delta.content == "wait"
    msg = await asyncio.wait_for(ant.messages.create(model="m", max_tokens=10, messages=MSGS), timeout=2)
    assert msg.content[0].text == "echo: hi there"
    await stream.close()


async def test_sync_use_and_fast_stop():
    await asyncio.to_thread(sync_scenario)  # plain blocking code, as in a sync test or bench script


def sync_scenario():
    fake = FakeLLM().start()  # no api_key: any key accepted
    with openai.OpenAI(base_url=fake.openai_base_url, api_key="anything", max_retries=0) as client:
        assert client.chat.completions.create(model="m", messages=MSGS).choices[0].message.content == "echo: hi there"
        fake.script(Hang(seconds=30))
        stream = client.chat.completions.create(model="m", messages=MSGS, stream=True)
        next(iter(stream))  # leave a request hanging while stopping
        t0 = time.monotonic()
        fake.stop()
        assert time.monotonic() - t0 < 3
        stream.close()


async def test_text_delay_is_streamed(fake, oai):
    fake.script(Text(["a", "b", "c"], delay=0.2))
    stream = await oai.chat.completions.create(model="m", messages=MSGS, stream=True)
    arrivals = []
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            arrivals.append(time.monotonic())
    assert len(arrivals) == 3 and arrivals[2] - arrivals[0] >= 0.35
