"""Reading a turn back from its event log (app/runtime/outcome.py)."""

from __future__ import annotations

import uuid

from app.runtime.outcome import unfinished_step


async def test_the_text_of_an_unfinished_step_is_that_of_its_latest_attempt(app, client):
    """A step run again (temporal mode: `step.retried`) streams anew: readers drop what its
    earlier attempt streamed, and so does the text kept for it. A late delta of the earlier
    attempt (its worker had not heard yet) counts no more than they do."""
    events = app.extensions["runtime"].events
    sid = "s"  # any session: its log is written here directly
    assert (await client.post("/sessions", json={"session_id": sid, "session_name": "s"})).status_code == 200
    step, message = str(uuid.uuid4()), str(uuid.uuid4())
    started = await events.append(sid, "session.started", {"message_id": str(uuid.uuid4())})

    async def delta(text: str, attempt: int | None = None) -> None:
        await events.append(sid, "message.delta", {"step_id": step, "message_id": message, "delta": text,
                                                   **({"attempt": attempt} if attempt else {})})

    await delta("Hel")
    await delta("lo")
    assert await unfinished_step(sid, started.sequence) == (step, message, "Hello")
    await events.append(sid, "step.retried", {"step_id": step, "message_id": message, "attempt": 2, "reason": "r"})
    assert await unfinished_step(sid, started.sequence) == (step, message, "")  # nothing streamed again yet
    await delta("Hi ", 2)
    await delta(" there")  # the first attempt, still going
    await delta("there", 2)
    assert await unfinished_step(sid, started.sequence) == (step, message, "Hi there")
    await events.append(sid, "step.completed", {"step_id": step})
    assert await unfinished_step(sid, started.sequence) is None  # completed: its message is stored as it ended
