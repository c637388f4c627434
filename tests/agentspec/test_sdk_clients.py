"""The AgentSpec Python SDK (`sdk/python`: AgentSpecClient over stdlib urllib, and
AsyncStreamingClient over a raw asyncio connection) against a real server process.

Each test sends exactly what the SDK sends (method, path, `Content-Type: application/json`
on every request, a body only when the SDK has one) and checks exactly the fields the
SDK reads, so a value the SDK would silently default (`[]`, `0`, `""`) fails here."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from typing import Any

import httpx

from tests.fakes import Error, Text
from tests.helpers import FAKE_KEY


def sdk_request(server, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, dict, str]:
    """AgentSpecClient._request: (status, parsed body, str(HTTPError) or "")."""
    data = json.dumps(body).encode() if body else None  # the SDK sends no body for {} or None
    req = urllib.request.Request(f"{server.url}{path}", data=data, headers={"Content-Type": "application/json"},
                                 method=method)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, ({} if resp.status == 204 else json.loads(resp.read().decode())), ""
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read().decode()), str(e)


def setup_agents(server, fake, *names: str, prompt: str = "Be brief.") -> None:
    """A default provider + model at the fake LLM, and agents with these names."""
    with httpx.Client(base_url=server.url, timeout=10) as http:
        provider = http.post("/v1/llm-providers", json={"name": "fake", "provider_type": "openai",
                                                        "base_url": fake.openai_base_url, "api_key": FAKE_KEY,
                                                        "is_default": True}).json()
        http.post(f"/v1/llm-providers/{provider['id']}/models", json={"model_id": "fake-model", "is_default": True})
        for name in names:
            assert http.post("/v1/agents", json={"name": name, "system_prompt": prompt}).status_code == 201


def last_user_text(request: dict) -> str:
    return [m for m in request["json"]["messages"] if m["role"] == "user"][-1]["content"]


def test_list_agents_finds_the_agents(live_server, fake_llm):
    setup_agents(live_server, fake_llm, "assistant", "critic")
    status, body, _ = sdk_request(live_server, "GET", "/v1/agents")
    assert status == 200
    assert [(a["name"], a["status"]) for a in body["agents"]] == [("critic", "active"), ("assistant", "active")]
    assert body["data"] == body["agents"] and body["total"] == 2  # the Everruns envelope is unchanged


def test_invoke_reports_tokens_and_turns(live_server, fake_llm):
    setup_agents(live_server, fake_llm, "assistant")
    fake_llm.script(Text(["Hello ", "there"], input_tokens=11, output_tokens=4))
    status, body, _ = sdk_request(live_server, "POST", "/v1/agents/assistant/invoke", {"message": "Hi"})
    assert status == 200 and body["output"] == "Hello there" and body["turns"] == 1
    assert body["tokens"] == {"input": 11, "output": 4, "total": 15}
    assert body["usage"] == {"input_tokens": 11, "output_tokens": 4, "total_tokens": 15}  # seed 004's, kept
    assert last_user_text(fake_llm.requests[0]) == "Hi"


def test_api_error_carries_the_message(live_server, fake_llm):
    setup_agents(live_server, fake_llm, "assistant")
    status, body, _ = sdk_request(live_server, "POST", "/v1/agents/nobody/invoke", {"message": "Hi"})
    # APIError(e.code, body.get("error"), body.get("message", str(e))): the message is top-level.
    assert status == 404 and body["message"] == "agent 'nobody' not found"
    assert body == {"error": {"code": "not_found", "message": body["message"]}, "message": body["message"],
                    "status": 404}
    status, body, _ = sdk_request(live_server, "POST", "/v1/agents/assistant/invoke", {"message": ""})
    assert status == 400 and body["message"] == body["error"]["message"] and "input" in body["message"]
    # The Agent Runtime API keeps its own error shape.
    with httpx.Client(base_url=live_server.url, timeout=10) as http:
        response = http.get("/sessions/no-such-session")
    assert response.status_code == 404 and set(response.json()) == {"detail"}


def test_session_messages_report_turns(live_server, fake_llm):
    setup_agents(live_server, fake_llm, "assistant")
    status, created, _ = sdk_request(live_server, "POST", "/v1/agents/assistant/sessions", {})  # no body at all
    assert status == 201 and created["agent"] == "assistant"
    path = f"/v1/agents/assistant/sessions/{created['session_id']}"
    fake_llm.script(Text("first", input_tokens=7, output_tokens=2), Text("second"))
    for number, text in ((1, "first"), (2, "second")):
        status, body, _ = sdk_request(live_server, "POST", path, {"message": f"message {number}"})
        assert status == 200 and body["output"] == text and body["session_id"] == created["session_id"]
        assert body["turns"] == number and body["turn"] == number and body["duration_ms"] > 0
    assert [last_user_text(r) for r in fake_llm.requests] == ["message 1", "message 2"]
    assert sdk_request(live_server, "DELETE", path)[:2] == (204, {})


def define_pipeline(server) -> None:
    steps = [{"name": "A", "agent": "Writer"}, {"name": "B", "agent": "Critic", "depends_on": ["A"]}]
    with httpx.Client(base_url=server.url, timeout=10) as http:
        assert http.post("/v1/pipelines", json={"name": "flow", "steps": steps}).status_code == 201


def test_run_pipeline_with_a_trigger(live_server, fake_llm):
    setup_agents(live_server, fake_llm, "Writer", "Critic")
    define_pipeline(live_server)
    fake_llm.script(Text("draft", input_tokens=10, output_tokens=5), Text("review", input_tokens=20, output_tokens=3))
    status, body, _ = sdk_request(live_server, "POST", "/v1/pipelines/flow/run",
                                  {"trigger": {"input": "batteries"}})
    assert status == 200 and body["pipeline"] == "flow" and body["status"] == "completed"
    assert list(body["steps"]) == ["A", "B"]  # resp["steps"].items(), keyed by step name
    a, b = body["steps"]["A"], body["steps"]["B"]
    assert (a["agent"], a["status"], a["output"]) == ("Writer", "completed", "draft")
    assert (b["agent"], b["status"], b["output"], b["error"]) == ("Critic", "completed", "review", None)
    assert isinstance(a["duration_ms"], int) and body["tokens"]["total"] == 38
    assert [last_user_text(r) for r in fake_llm.requests] == ["batteries", "draft"]


def test_pipeline_trigger_without_text_and_the_documented_form(live_server, fake_llm):
    setup_agents(live_server, fake_llm, "Writer", "Critic")
    define_pipeline(live_server)
    fake_llm.script(Text("a1"), Text("b1"), Text("a2"), Text("b2"))
    status, body, _ = sdk_request(live_server, "POST", "/v1/pipelines/flow/run", {"trigger": {"topic": "cells"}})
    assert status == 200 and body["steps"]["B"]["output"] == "b1"
    assert json.loads(last_user_text(fake_llm.requests[0])) == {"topic": "cells"}  # the whole trigger
    status, body, _ = sdk_request(live_server, "POST", "/v1/pipelines/flow/run", {"input": "plain"})
    assert status == 200 and [s["name"] for s in body["steps"]] == ["A", "B"]  # seed 004's list, kept
    assert body["tokens"]["total"] == body["usage"]["total_tokens"] == 30
    status, body, _ = sdk_request(live_server, "POST", "/v1/pipelines/flow/run", {"input": "x", "trigger": {}})
    assert status == 400 and "exactly one of" in body["message"]


async def stream_like_the_sdk(server, agent: str, message: str) -> tuple[int, list[tuple[str, dict]]]:
    """AsyncStreamingClient.stream: HTTP/1.1 by hand, then every line read as SSE until `done`."""
    host, port = server.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        body = json.dumps({"message": message}).encode()
        head = (f"POST /v1/agents/{agent}/stream HTTP/1.1\r\nHost: {host}:{port}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                "Accept: text/event-stream\r\n\r\n")
        writer.write(head.encode() + body)
        await writer.drain()
        status = int((await asyncio.wait_for(reader.readline(), 30)).decode().split(" ")[1])
        while (await reader.readline()) not in (b"\r\n", b"\n"):
            pass
        events, event_type = [], ""
        async for raw_line in reader:
            line = raw_line.decode("utf-8").rstrip("\n\r")
            if line.startswith("event: "):
                event_type = line[7:]
            elif line.startswith("data: "):
                events.append((event_type, json.loads(line[6:])))
                if event_type == "done":
                    break
                event_type = ""
        return status, events
    finally:
        writer.close()


async def test_stream_text_collects_text_tokens_and_turns(live_server, fake_llm):
    setup_agents(live_server, fake_llm, "assistant")
    fake_llm.script(Text(["Hello ", "there"], input_tokens=11, output_tokens=4, delay=0.05))
    status, events = await asyncio.wait_for(stream_like_the_sdk(live_server, "assistant", "Hi"), 30)
    assert status == 200
    # stream_text(): the text of `text` events, then tokens/turns from `done`.
    assert "".join(data["text"] for kind, data in events if kind == "text") == "Hello there"
    assert "".join(data["content"] for kind, data in events if kind == "token") == "Hello there"  # seed 004's
    kind, done = events[-1]
    assert kind == "done" and done["tokens"] == {"input": 11, "output": 4, "total": 15} and done["turns"] == 1
    assert done["usage"]["total_tokens"] == 15 and done["duration_ms"] > 0


async def test_a_stream_that_ends_without_done_ends_its_connection(live_server, fake_llm):
    """Reported: a stream ending with `error` (or `waiting`), and a JSON error answer, left
    the SDK's reader (which reads until `done` or EOF) waiting 75 s, Hypercorn's
    keep_alive_timeout: the body ended but the connection stayed open. /stream answers
    now carry `Connection: close`."""
    setup_agents(live_server, fake_llm, "assistant")
    fake_llm.script(Error(401, "Incorrect API key provided"))
    status, events = await asyncio.wait_for(stream_like_the_sdk(live_server, "assistant", "Hi"), 10)
    assert status == 200
    assert events[-1][0] == "error" and events[-1][1]["code"] == "provider_auth_failed"
    status, events = await asyncio.wait_for(stream_like_the_sdk(live_server, "nobody", "Hi"), 10)
    assert (status, events) == (404, [])
    async with httpx.AsyncClient(base_url=live_server.url, timeout=10) as http:
        assert (await http.post("/v1/agents/nobody/stream", json={"input": "x"})).headers["Connection"] == "close"
        assert (await http.get("/v1/agents")).headers.get("Connection") != "close"  # other routes keep theirs
