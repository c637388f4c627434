"""The seam between storing a user message and running the agent loop."""

from __future__ import annotations

from app.models import Message, Session


async def on_user_message(session: Session, message: Message) -> None:
    """Called once for every stored user message, after its transaction committed.

    The agent loop (issue 3) starts or queues a turn here.
    """
    return None
