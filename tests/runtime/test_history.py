"""Stored rows → provider history: grouping, ordering across queued turns, orphans."""

from __future__ import annotations

import uuid
from types import SimpleNamespace

from app.runtime.history import INTERRUPTED, to_chat_history, turn_history


def row(seq, role, **content):
    return SimpleNamespace(id=uuid.uuid4(), sequence=seq, role=role, content=content, reply_to=None)


def test_tool_calls_join_the_assistant_text_before_them():
    rows = [row(1, "user", text="hi"), row(2, "assistant", text="let me check"),
            row(3, "tool_call", id="a", name="t", arguments={"x": 1}), row(4, "tool_call", id="b", name="t", arguments="{bad"),
            row(5, "tool_result", tool_call_id="a", name="t", result={"ok": True}, error=None),
            row(6, "tool_result", tool_call_id="b", name="t", result=None, error="boom")]
    history = to_chat_history(rows)
    assert [m.role for m in history] == ["user", "assistant", "tool", "tool"]
    assert [(c.id, c.arguments) for c in history[1].tool_calls] == [("a", '{"x": 1}'), ("b", "{bad")]
    assert (history[2].text, history[2].is_error) == ('{"ok": true}', False)
    assert (history[3].text, history[3].is_error) == ("boom", True)


def test_unanswered_tool_calls_get_an_error_result():
    rows = [row(1, "user", text="hi"), row(2, "tool_call", id="a", name="t", arguments={}), row(3, "user", text="again")]
    history = to_chat_history(rows)
    assert [m.role for m in history] == ["user", "assistant", "tool", "user"]
    assert history[2].tool_call_id == "a" and history[2].text == INTERRUPTED and history[2].is_error


def test_answers_follow_their_questions_whatever_their_numbers():
    m1, m2, m3 = row(1, "user", text="m1"), row(2, "user", text="m2"), row(3, "user", text="m3")
    a1, a2 = row(4, "assistant", text="a1"), row(5, "assistant", text="a2")
    a1.reply_to, a2.reply_to = m1.id, m2.id
    legacy = row(6, "assistant", text="old row")  # stored before reply_to existed: stays by number
    shown = turn_history([m1, m2, m3, a1, a2, legacy], m3, started_at_seq=6)
    assert [m.content["text"] for m in shown] == ["m1", "a1", "m2", "a2", "old row", "m3"]


def test_turn_history_for_a_queued_message():
    m1, m2 = row(1, "user", text="first"), row(2, "user", text="second")
    a1 = row(3, "assistant", text="one")
    m3 = row(4, "user", text="third, still queued")
    # The turn for m2 starts when a1 exists (last sequence 4), then adds its own call.
    call = row(5, "tool_call", id="c", name="t", arguments={})
    shown = turn_history([m1, m2, a1, m3, call], m2, started_at_seq=4)
    assert [m.content.get("text", m.role) for m in shown] == ["first", "one", "second", "tool_call"]
