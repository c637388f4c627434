"""The in-memory conversation the turns read: filled from the database once, extended
by what this process stores, and read again whenever it might be out of step."""

from __future__ import annotations

import pytest

from app.events.messages import record_message
from app.models import Message


@pytest.fixture
async def chat(client):
    agent = await (await client.post("/v1/agents", json={"name": "a", "system_prompt": "p"})).get_json()
    return await (await client.post(f"/v1/agents/{agent['id']}/sessions", json={})).get_json()


@pytest.fixture
def log(app):
    return app.extensions["runtime"].events


async def texts(log, session_id: str) -> list[str]:
    return [row.content["text"] for row in await log.messages.of(session_id)]


async def test_stored_messages_are_added_without_reading_again(log, chat):
    await record_message(log, chat["id"], "user", {"text": "one"})
    assert await texts(log, chat["id"]) == ["one"]  # read from the database
    await record_message(log, chat["id"], "assistant", {"text": "two"})
    # Rows removed behind its back are still listed: proof that nothing was read again.
    await Message.filter(session_id=chat["id"]).delete()
    assert await texts(log, chat["id"]) == ["one", "two"]


async def test_out_of_step_lists_are_read_again(log, chat):
    await record_message(log, chat["id"], "user", {"text": "one"})
    assert await texts(log, chat["id"]) == ["one"]
    # Another writer took number 2; this process's next message gets 3 after its retry.
    await Message.create(session_id=chat["id"], sequence=2, role="assistant", content={"text": "elsewhere"})
    await record_message(log, chat["id"], "user", {"text": "three"})
    assert await texts(log, chat["id"]) == ["one", "elsewhere", "three"]


async def test_a_deleted_session_is_forgotten(client, log, chat):
    await record_message(log, chat["id"], "user", {"text": "one"})
    await log.messages.of(chat["id"])
    assert (await client.delete(f"/v1/sessions/{chat['id']}")).status_code in (200, 204)
    assert await log.messages.of(chat["id"]) == []
