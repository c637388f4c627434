"""Running turns for AgentSpec clients: pick or create the session, start the turn
through the shared start_turn, and wait for (or subscribe to) its outcome."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from app.events.bus import Subscription
from app.models import Message, Session, raw_sql
from app.runtime.turn import TurnOutcome
from app.services.agents import get_active_agent
from app.services.sessions import create_session, get_session, turn_count
from app.services.turns import check_variables, start_turn

if TYPE_CHECKING:
    from app.wiring import Runtime


async def _session_for(runtime: Runtime, agent_ref: str, session_id: str | None, variables: dict[str, Any] | None,
                       must_exist: bool = False) -> Session:
    if session_id is not None or must_exist:
        assert session_id is not None  # must_exist: a continue, whose path names the session
        return await get_session(session_id, agent_ref)
    agent = await get_active_agent(agent_ref)
    check_variables(agent.system_prompt, variables)  # before creating anything
    session = await create_session(runtime.events, str(agent.id), {})
    return await get_session(session.id)


async def run_and_wait(runtime: Runtime, agent_ref: str, text: str, variables: dict[str, Any] | None,
                       session_id: str | None, must_exist: bool = False) -> tuple[Session, TurnOutcome, int]:
    session = await _session_for(runtime, agent_ref, session_id, variables, must_exist)
    _, done = await start_turn(runtime, session, text, variables, require_variables=True)
    outcome = await done
    return session, outcome, await turn_count(session.id)


async def start_streamed(runtime: Runtime, agent_ref: str, text: str, variables: dict[str, Any] | None,
                         session_id: str | None) -> tuple[Session, Subscription, Message, int, int]:
    """Subscribe before the turn starts, so the stream misses none of its events. The count
    of user messages just after this one is stored is the turn number `done` reports; the
    last event number before it, where the stream's reading of the log starts."""
    session = await _session_for(runtime, agent_ref, session_id, variables)
    subscription = runtime.bus.subscribe(session.id)
    try:
        before = await raw_sql.event_total(session.id)
        message, _ = await start_turn(runtime, session, text, variables, require_variables=True)
        turns = await turn_count(session.id)
    except BaseException:
        subscription.close()
        raise
    return session, subscription, message, turns, before
