"""Messages: create (object or bare string content), list in order, unique sequences."""

from __future__ import annotations

import asyncio
import uuid

import pytest

pytestmark = pytest.mark.both_modes  # in process and on Temporal (tests/conftest.py)



@pytest.fixture
async def session(client):
    agent = await (await client.post("/v1/agents", json={"name": "A", "system_prompt": "p"})).get_json()
    response = await client.post(f"/v1/agents/{agent['id']}/sessions", json={})
    return await response.get_json()


async def test_create_message_shape(client, session):
    url = f"/v1/agents/{session['agent_id']}/sessions/{session['id']}/messages"
    response = await client.post(url, json={"role": "user", "content": {"text": "How do I reset?"}})
    assert response.status_code == 201
    body = await response.get_json()
    assert set(body) == {"id", "session_id", "sequence", "role", "content", "created_at"}
    assert body["sequence"] == 1 and body["role"] == "user" and body["session_id"] == session["id"]
    assert body["content"] == {"text": "How do I reset?"} and uuid.UUID(body["id"])


async def test_bare_string_content_and_flat_path(client, session):
    response = await client.post(f"/v1/sessions/{session['id']}/messages", json={"content": "hello"})
    assert response.status_code == 201
    assert (await response.get_json())["content"] == {"text": "hello"}


@pytest.mark.parametrize("body, field", [
    ({}, "content"),
    ({"content": ""}, "content"),
    ({"content": {"text": "   "}}, "content"),
    ({"content": 42}, "content"),
    ({"role": "assistant", "content": "x"}, "role"),
    ({"role": "user", "content": {"txt": "x"}}, "content"),
])
async def test_invalid_messages(client, session, body, field):
    response = await client.post(f"/v1/sessions/{session['id']}/messages", json=body)
    assert response.status_code == 400
    error = (await response.get_json())["error"]
    assert error["code"] == "invalid_request" and field in error["message"]
    listing = await (await client.get(f"/v1/sessions/{session['id']}/messages")).get_json()
    assert listing["total"] == 0


async def test_unknown_session_and_wrong_agent(client, session):
    assert (await client.post("/v1/sessions/nope/messages", json={"content": "x"})).status_code == 404
    url = f"/v1/agents/{uuid.uuid4()}/sessions/{session['id']}/messages"
    assert (await client.post(url, json={"content": "x"})).status_code == 404
    assert (await client.get(url)).status_code == 404


async def test_list_in_sequence_order_with_paging(client, session):
    for i in range(5):
        await client.post(f"/v1/sessions/{session['id']}/messages", json={"content": f"m{i}"})
    page = await (await client.get(f"/v1/sessions/{session['id']}/messages?offset=1&limit=3")).get_json()
    assert [m["sequence"] for m in page["data"]] == [2, 3, 4]
    assert [m["content"]["text"] for m in page["data"]] == ["m1", "m2", "m3"] and page["total"] == 5


async def test_concurrent_posts_get_distinct_sequences(client, session):
    posts = [client.post(f"/v1/sessions/{session['id']}/messages", json={"content": f"c{i}"}) for i in range(25)]
    responses = await asyncio.gather(*posts)
    assert all(r.status_code == 201 for r in responses)
    sequences = sorted([(await r.get_json())["sequence"] for r in responses])
    assert sequences == list(range(1, 26))
