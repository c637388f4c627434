"""Small helpers the runtime and events tests share."""

from __future__ import annotations

import asyncio
import time

FAKE_KEY = "sk-test-fake-provider-key"


async def make_chat(client, fake, *, provider_type="openai", capabilities=("current_time",), api_key=FAKE_KEY,
                    model_id="fake-model"):
    """Provider (pointing at the fake) + default model + agent + session; returns the session."""
    base_url = fake.anthropic_base_url if provider_type == "anthropic" else fake.openai_base_url
    provider = await (await client.post("/v1/llm-providers", json={
        "name": f"fake {provider_type}", "provider_type": provider_type, "base_url": base_url,
        "api_key": api_key, "is_default": True})).get_json()
    await client.post(f"/v1/llm-providers/{provider['id']}/models", json={"model_id": model_id, "is_default": True})
    agent = await (await client.post("/v1/agents", json={
        "name": "Helper", "system_prompt": "You are terse.", "capability_ids": list(capabilities)})).get_json()
    session = await (await client.post(f"/v1/agents/{agent['id']}/sessions", json={})).get_json()
    session["provider_id"] = provider["id"]
    return session


async def say(client, session_id: str, text: str) -> dict:
    response = await client.post(f"/v1/sessions/{session_id}/messages", json={"content": text})
    assert response.status_code == 201, await response.get_json()
    return await response.get_json()


async def events(client, session_id: str) -> list[dict]:
    response = await client.get(f"/v1/sessions/{session_id}/events?limit=500", headers={"Accept": "application/json"})
    assert response.status_code == 200
    return (await response.get_json())["data"]


async def wait_for_event(client, session_id: str, *types: str, count: int = 1, timeout: float = 10) -> list[dict]:
    """Poll the log until `count` events of these types exist; return the whole log."""
    deadline = time.monotonic() + timeout
    while True:
        log = await events(client, session_id)
        if sum(e["type"] in types for e in log) >= count:
            return log
        if time.monotonic() > deadline:
            raise AssertionError(f"no {types} x{count} after {timeout}s; log: {[e['type'] for e in log]}")
        await asyncio.sleep(0.02)


async def wait_turns(client, session_id: str, count: int = 1, timeout: float = 10) -> list[dict]:
    return await wait_for_event(client, session_id, "session.completed", "session.failed", "session.cancelled",
                                count=count, timeout=timeout)


async def messages(client, session_id: str) -> list[dict]:
    return (await (await client.get(f"/v1/sessions/{session_id}/messages")).get_json())["data"]


async def session(client, session_id: str) -> dict:
    return await (await client.get(f"/v1/sessions/{session_id}")).get_json()


async def approval_chat(client, fake_llm, *, client_tools=()):
    """A chat whose agent must have each current_time call approved (and may declare client tools)."""
    chat = await make_chat(client, fake_llm)
    agent_id = chat["agent_id"]
    response = await client.put(f"/v1/agents/{agent_id}/capabilities", json={
        "capabilities": [{"id": "current_time", "requires_approval": True}]})
    assert response.status_code == 200, await response.get_json()
    if client_tools:
        response = await client.patch(f"/v1/agents/{agent_id}", json={"client_tools": list(client_tools)})
        assert response.status_code == 200, await response.get_json()
    return chat


async def waiting(client, sid: str) -> list[dict]:
    """The session's waiting tool calls, once the turn has paused for them."""
    await wait_for_event(client, sid, "session.waiting")
    return (await (await client.get(f"/v1/sessions/{sid}/tool-calls?status=waiting")).get_json())["data"]


async def until(check, timeout: float = 10) -> None:
    """Poll `check` (a function, sync or async) until it is true; fail after `timeout` s."""
    deadline = time.monotonic() + timeout
    while not ((await result) if asyncio.iscoroutine(result := check()) else result):
        assert time.monotonic() < deadline, f"{getattr(check, '__name__', check)} still false after {timeout} s"
        await asyncio.sleep(0.02)


def refuse_activity(monkeypatch, activities: type, name: str, box: list) -> None:
    """The Temporal activity `name` (a method of `activities`) raises DatabaseUnavailable,
    as a database that went away does, while `box[0]` (the requests it refused) is not None."""
    import typing

    from temporalio import activity

    from app.db import DatabaseUnavailable

    original = getattr(activities, name)

    async def refusing(self, request):
        if box[0] is not None:
            box[0].append(request)
            raise DatabaseUnavailable("connection refused or lost")
        return await original(self, request)

    hints = typing.get_type_hints(original)  # how Temporal decodes the request
    (request_type,) = [t for n, t in hints.items() if n != "return"]
    refusing.__annotations__ = {"request": request_type, "return": hints["return"]}
    monkeypatch.setattr(activities, name, activity.defn(name=name)(refusing))
