"""`GET /sessions/{id}/events` (and `/events/{id}`): the whole list is written in batches
read from the log, and is byte for byte the document the handler used to build in
memory (`{"events": [...]}` through app/json_encoding.py). Here on both databases, in
process; tests/api/test_agent_runtime_list_live.py has its memory and its stalled clients
against a real server."""

from __future__ import annotations

import pytest

from app.dialects.agent_runtime import ar_event, has_ar_meaning
from app.events.log import EventLog
from app.json_encoding import dumpb

BIG = 400_000  # three of these pass the 1 MB a batch holds (app/events/sse.py BATCH_BYTES)
SMALL = 1_100  # past the 500 events a batch holds


def hook(event_type: str, **fields) -> dict:
    return {"session_name": "posted name", "timestamp": "2026-01-01T00:00:00Z", **fields, "event_type": event_type}


async def _mixed_log(log: EventLog, sid: str) -> None:
    """Agent Runtime events (posted shapes and loop events that map to them) among loop
    events that have no such meaning (steps, deltas, tool messages), a few large ones."""
    await log.append(sid, "session.started", {"agent_id": "a"})
    for i in range(SMALL):
        kind = i % 6
        if kind == 0:
            await log.append(sid, "pre_tool", hook("pre_tool", tool_name="Bash", tool_input={"command": f"ls {i}"}))
        elif kind == 1:
            await log.append(sid, "message.delta", {"delta": f"tok{i} é"})
        elif kind == 2:
            await log.append(sid, "message.created", {"role": "tool" if i % 4 else "assistant", "message_id": f"m{i}",
                                                      "content": {"text": f"said {i}"}})
        elif kind == 3:
            await log.append(sid, "tool.completed", {"tool_name": "t", "arguments": {"n": i}, "result": i, "error": None})
        elif kind == 4:
            await log.append(sid, "step.started", {"step": i})
        else:
            await log.append(sid, "post_tool", hook("post_tool", tool_output=0, exit_code=0))
        if i % 300 == 150:  # large ones, alone or a few together in a batch
            for _ in range(3):
                await log.append(sid, "post_tool", hook("post_tool", tool_output="x" * BIG))
            await log.append(sid, "step.completed", {"output": "y" * BIG})
    await log.append(sid, "session.completed", {})


def _old_answer(events, name: str, everything: bool, limit: int | None) -> bytes:
    """What the handler returned before: the filtered events shaped in one list, encoded
    once by the JSON provider (app/api/responses.py: the document and a newline)."""
    kept = [e for e in events if everything or has_ar_meaning(e)]
    return dumpb({"events": [ar_event(e, name) for e in kept[:limit]]}) + b"\n"


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
async def test_the_streamed_list_is_the_document_built_in_memory_before(request, settings, database):
    from app.main import create_app

    app = create_app(request.getfixturevalue("pg_settings") if database == "postgres" else settings)
    async with app.test_app():
        client, log = app.test_client(), app.extensions["runtime"].events
        sid = "mixed"
        assert (await client.post("/sessions", json={"session_id": sid, "session_name": "Mixed"})).status_code == 200
        await _mixed_log(log, sid)
        events = await EventLog.read(sid)
        middle = events[len(events) // 2].sequence
        assert sum(has_ar_meaning(e) for e in events) > 500 and len(events) > 1000
        for path in (f"/sessions/{sid}/events", f"/events/{sid}"):
            for everything in (False, True):
                for after in (0, 1, middle, events[-1].sequence):
                    for limit in (None, 1, 7, 500, 10**6):
                        query = f"?after={after}" + ("&events=all" if everything else "") + \
                                ("" if limit is None else f"&limit={limit}")
                        response = await client.get(path + query)
                        assert response.status_code == 200 and response.mimetype == "application/json"
                        expected = _old_answer([e for e in events if e.sequence > after], "Mixed", everything, limit)
                        assert await response.get_data() == expected, query


async def test_errors_are_answered_before_any_of_the_list(client):
    """A status is decided before the first byte: an unknown session is a 404, a bad
    query a 400, each in the dialect's {"detail"} shape."""
    for path in ("/sessions/nobody/events", "/events/nobody"):
        response = await client.get(path)
        assert response.status_code == 404 and await response.get_json() == {"detail": "Session not found"}
    await client.post("/sessions", json={"session_id": "s", "session_name": "S"})
    for query in ("limit=0", "after=-1", "events=some", "limit=x"):
        response = await client.get(f"/sessions/s/events?{query}")
        assert response.status_code == 400 and set(await response.get_json()) == {"detail"}, query
    assert await (await client.get("/sessions/s/events")).get_json() == {"events": []}
