"""The AgentSpec dialect (seed 004): call an agent by name (or id) and wait for, or
stream, the answer; continue multi-turn sessions. The turn is the same turn as any other:
stored, visible over SSE and /ws, in the same session and event log."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

from pydantic import BaseModel, Field, model_validator
from quart import Blueprint, Response, request
from quart_schema import document_response, tag, validate_request

from app.auth.stream_watch import CredentialWatch, watch_credential
from app.dialects.agentspec import STREAM_ENDS, StreamTranslator, continue_body, invoke_body, raise_for_failure
from app.events.bus import Subscription
from app.events.log import LoggedEvent
from app.events.sse import SSE_HEADERS, KeepAlive, credential_ended_frame, ordered_events
from app.services import agentspec as service
from app.wiring import Runtime, current_runtime

bp = Blueprint("agentspec", __name__, url_prefix="/v1/agents/<agent_ref>")


class TurnRequest(BaseModel):
    """{"input": ...} as documented, or {"message", "variables", "session_id"} as the SDKs send."""

    input: str | None = None
    message: str | None = None
    variables: dict[str, Any] | None = None
    session_id: str | None = Field(None, max_length=128)

    @model_validator(mode="after")
    def _has_text(self) -> TurnRequest:
        if not (self.input or self.message or "").strip():
            raise ValueError("input: send {\"input\": \"...\"} or {\"message\": \"...\"}")
        return self

    @property
    def text(self) -> str:
        return self.input or self.message or ""


class InvokeResponse(BaseModel):
    output: str
    usage: dict[str, int]
    tokens: dict[str, int] = Field(description="The same usage as {input, output, total}, as the Python SDK reads it")
    session_id: str
    turns: int
    duration_ms: float
    tool_calls: list[dict[str, Any]]
    status: str = Field(description="completed, or waiting_for_approval / waiting_for_client: the turn waits")
    pending_tool_calls: list[dict[str, Any]] | None = Field(
        None, description="When the turn waits: the calls it waits for (tool_call_id, tool_name, arguments, kind)")


class ContinueResponse(BaseModel):
    output: str
    usage: dict[str, int]
    tokens: dict[str, int] = Field(description="The same usage as {input, output, total}, as the Python SDK reads it")
    turn: int
    turns: int = Field(description="The same number as `turn`, under the name the Python SDK reads")
    duration_ms: float
    session_id: str
    status: str
    pending_tool_calls: list[dict[str, Any]] | None = None


@bp.after_request
async def _close_after_stream(response: Response) -> Response:
    """Every /stream answer (the stream, or an error before it) ends its connection. The
    AgentSpec SDK's streaming client writes HTTP/1.1 itself and reads until `done` or the
    end of the connection: after an `error` or `waiting`, or a JSON error, a kept-alive
    connection left it waiting for Hypercorn's keep_alive_timeout (75 s). HTTP/2 drops
    the header (it has no Connection) and ends the stream as usual."""
    if request.endpoint == "agentspec.stream":
        response.headers["Connection"] = "close"
    return response


@bp.post("/invoke")
@tag(["AgentSpec"])
@validate_request(TurnRequest)
@document_response(InvokeResponse)
async def invoke(agent_ref: str, data: TurnRequest):
    """Run a turn (in a new session unless session_id is given) and answer when it ends."""
    started = time.monotonic()
    session, outcome, turns = await service.run_and_wait(current_runtime(), agent_ref, data.text, data.variables,
                                                         data.session_id)
    raise_for_failure(outcome, session.id)
    return invoke_body(outcome, session.id, turns, (time.monotonic() - started) * 1000)


@bp.post("/stream")
@tag(["AgentSpec"])
@validate_request(TurnRequest)
async def stream(agent_ref: str, data: TurnRequest):
    """The same turn as SSE: token (and text), tool_call, tool_result, error, done (each with an id)."""
    runtime = current_runtime()
    session, subscription, message, turns, before = await service.start_streamed(
        runtime, agent_ref, data.text, data.variables, data.session_id)
    translator = StreamTranslator(session.id, turns)
    frames = _turn_frames(runtime, session.id, subscription, str(message.id), translator, before, watch_credential())
    response = Response(frames, headers={**SSE_HEADERS, "X-Session-ID": session.id})
    response.timeout = None
    return response


async def _turn_frames(runtime: Runtime, session_id: str, subscription: Subscription, message_id: str,
                       translator: StreamTranslator, before: int, watch: CredentialWatch) -> AsyncIterator[bytes]:
    # A client that goes away only closes this subscription; the turn goes on.
    with subscription:
        async with watch.running(subscription.close):  # a revoked credential closes it too
            ours, keepalive = False, KeepAlive(runtime.settings.sse_heartbeat_seconds)
            async for event in ordered_events(runtime.events, subscription, session_id, before, keepalive.remaining):
                if watch.problem:
                    break
                if event is not None:
                    ours = ours or _starts_or_drops(event, message_id)
                    frame = translator.frame(event) if ours else None
                    if frame is not None:
                        yield frame
                        keepalive.sent()
                    if ours and event.type in STREAM_ENDS:
                        return
                # Quiet for its client: nothing came, or only events this stream leaves out
                # (an earlier turn's, while this one waits its turn).
                if event is None or not keepalive.remaining():
                    yield b": keepalive\n\n"
                    keepalive.sent()
            if watch.problem:
                yield credential_ended_frame(watch.problem)


def _starts_or_drops(event: LoggedEvent, message_id: str) -> bool:
    """The turn of `message_id` begins here, or a cancel dropped it before it began (its
    session.cancelled lists it: the stream ends with that event's `error`)."""
    if event.type == "session.started":
        return event.data.get("message_id") == message_id
    return event.type == "session.cancelled" and message_id in (event.data.get("dropped_message_ids") or ())


@bp.post("/sessions/<session_id>/continue")
@bp.post("/sessions/<session_id>")
@tag(["AgentSpec"])
@validate_request(TurnRequest)
@document_response(ContinueResponse)
async def continue_session(agent_ref: str, session_id: str, data: TurnRequest):
    """Send the next message of a multi-turn session and wait for the answer."""
    started = time.monotonic()
    session, outcome, turns = await service.run_and_wait(current_runtime(), agent_ref, data.text, data.variables,
                                                         session_id, must_exist=True)
    raise_for_failure(outcome, session.id)
    return continue_body(outcome, session.id, turns, (time.monotonic() - started) * 1000)
