"""Stored messages → the neutral chat history a provider adapter converts.

Storage keeps one row per item (assistant text, each tool_call, each tool_result);
providers want an assistant message that carries its tool calls, so rows are grouped.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import Any, Protocol

from app.runtime.providers.base import ChatMessage, ToolCall


def _result_text(content: dict) -> tuple[str, bool]:
    if "error" in content and content["error"] is not None:
        return str(content["error"]), True
    result = content.get("result")
    return (result if isinstance(result, str) else json.dumps(result, default=str)), False


class StoredMessage(Protocol):
    """What the history needs of a message: a Message or a MessageRow (read only: a
    MessageRow is a named tuple)."""

    @property
    def id(self) -> uuid.UUID | None: ...  # None: no message (a Turn only finishing a cancel, temporal mode)

    @property
    def sequence(self) -> int: ...

    @property
    def role(self) -> str: ...

    @property
    def content(self) -> dict[str, Any]: ...

    @property
    def reply_to(self) -> uuid.UUID | None: ...  # the user message a turn's own message answers


def to_chat_history(messages: list[StoredMessage]) -> list[ChatMessage]:
    history: list[ChatMessage] = []
    for m in messages:
        content = m.content or {}
        if m.role == "user":
            history.append(ChatMessage("user", text=content.get("text", "")))
        elif m.role == "assistant":
            history.append(ChatMessage("assistant", text=content.get("text", "")))
        elif m.role == "tool_call":
            arguments = content.get("arguments", {})
            call = ToolCall(content["id"], content["name"],
                            arguments if isinstance(arguments, str) else json.dumps(arguments))
            if history and history[-1].role == "assistant":
                history[-1].tool_calls.append(call)
            else:
                history.append(ChatMessage("assistant", tool_calls=[call]))
        elif m.role == "tool_result":
            text, is_error = _result_text(content)
            history.append(ChatMessage("tool", text=text, tool_call_id=content["tool_call_id"], is_error=is_error))
    return _answer_unanswered_calls(history)


INTERRUPTED = "no result: the turn was interrupted before this tool finished"


def _answer_unanswered_calls(history: list[ChatMessage]) -> list[ChatMessage]:
    """Providers refuse a tool call without a result; a cancel or restart can leave one."""
    out: list[ChatMessage] = []
    open_ids: list[str] = []
    for m in history:
        if m.role == "tool":
            open_ids = [i for i in open_ids if i != m.tool_call_id]
        else:
            out.extend(ChatMessage("tool", text=INTERRUPTED, tool_call_id=i, is_error=True) for i in open_ids)
            open_ids = [c.id for c in m.tool_calls]
        out.append(m)
    out.extend(ChatMessage("tool", text=INTERRUPTED, tool_call_id=i, is_error=True) for i in open_ids)
    return out


def turn_history(messages: Sequence[StoredMessage], current: StoredMessage, started_at_seq: int) -> list[StoredMessage]:
    """What the model sees in the turn answering `current`.

    `started_at_seq` is the session's last message sequence when the turn began. Before
    it: the conversation so far, minus user messages still queued for later turns, with
    `current` moved after the answers to earlier messages. After it: this turn's own
    assistant text, tool calls and results (user messages posted meanwhile wait).
    """
    earlier = [m for m in messages if m.sequence <= started_at_seq and m.id != current.id
               and not (m.role == "user" and m.sequence > current.sequence)]
    this_turn = [m for m in messages if m.sequence > started_at_seq and m.role != "user"]
    return [*_answers_after_questions(earlier), current, *this_turn]


def _answers_after_questions(messages: list[StoredMessage]) -> list[StoredMessage]:
    """Each user message followed by its turn's own messages (those that name it in
    `reply_to`). A message posted while a turn ran is numbered before that turn's reply,
    so the numbers alone put a later question before an earlier answer. Messages that name
    no user message here (stored before `reply_to` existed) keep their place."""
    users = {m.id for m in messages if m.role == "user"}
    answers: dict[uuid.UUID | None, list[StoredMessage]] = {}
    for m in messages:
        if m.role != "user" and m.reply_to in users:
            answers.setdefault(m.reply_to, []).append(m)
    ordered: list[StoredMessage] = []
    for m in messages:
        if m.role == "user":
            ordered.append(m)
            ordered.extend(answers.get(m.id, ()))
        elif m.reply_to not in users:
            ordered.append(m)
    return ordered
