"""Configured limits: the iteration cap ends a turn with an event that says so."""

from __future__ import annotations

import pytest

from tests.fakes import ToolCalls
from tests.helpers import make_chat, say, session, wait_turns


@pytest.fixture
def settings(settings):
    return settings.replace(max_iterations=2)


async def test_iteration_limit_is_said_in_an_event(client, fake_llm):
    chat = await make_chat(client, fake_llm)
    fake_llm.script(*[ToolCalls([(f"c{i}", "get_current_time", {})]) for i in range(3)])
    await say(client, chat["id"], "loop forever")
    done = (await wait_turns(client, chat["id"]))[-1]
    assert done["type"] == "session.completed" and done["data"]["reason"] == "max_iterations"
    assert "MAX_ITERATIONS" in done["data"]["message"] and len(fake_llm.requests) == 2
    assert (await session(client, chat["id"]))["status"] == "pending"
