"""Model resolution is cached per runtime: API writes clear the cache at once, and a
change made behind the server's back (another process) is seen after the time limit."""

from __future__ import annotations

import asyncio

import pytest

from app.models import LlmProvider, Session
from app.runtime.resolution import ModelResolver, NoModel
from tests.helpers import make_chat, say, wait_turns


async def test_an_api_change_applies_to_the_very_next_turn(client, fake_llm):
    chat = await make_chat(client, fake_llm)
    await say(client, chat["id"], "one")
    assert (await wait_turns(client, chat["id"]))[-1]["type"] == "session.completed"  # resolution now cached
    await client.patch(f"/v1/llm-providers/{chat['provider_id']}", json={"status": "disabled"})
    await say(client, chat["id"], "two")
    failed = (await wait_turns(client, chat["id"], count=2))[-1]
    assert failed["type"] == "session.failed" and "disabled" in failed["data"]["error"]
    assert len(fake_llm.requests) == 1

    other = await (await client.post(f"/v1/llm-providers/{chat['provider_id']}/models",
                                     json={"model_id": "second-model", "is_default": True})).get_json()
    await client.patch(f"/v1/llm-providers/{chat['provider_id']}", json={"status": "active"})
    await say(client, chat["id"], "three")
    assert (await wait_turns(client, chat["id"], count=3))[-1]["type"] == "session.completed"
    assert fake_llm.requests[-1]["json"]["model"] == other["model_id"]


async def test_a_change_behind_the_servers_back_is_seen_after_the_time_limit(client, fake_llm):
    chat = await make_chat(client, fake_llm)
    session = await Session.get(id=chat["id"]).select_related("agent")
    resolver = ModelResolver(ttl=0.2)
    first = await resolver.resolve(session, session.agent)
    await LlmProvider.filter(id=chat["provider_id"]).update(status="disabled")  # as another process would
    assert (await resolver.resolve(session, session.agent)).id == first.id
    await asyncio.sleep(0.25)
    with pytest.raises(NoModel, match="disabled"):
        await resolver.resolve(session, session.agent)
