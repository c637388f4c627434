"""Temporal mode when its parts are missing: /healthz says which, a message that cannot
be queued is a clear 503 and the log says it will not be answered."""

from __future__ import annotations

import asyncio
import logging
import time

from app.main import create_app
from app.runtime.outcome import TERMINAL
from app.runtime.temporal.types import workflow_id
from tests.conftest import temporal_app_serving
from tests.fakes import Hang, Text
from tests.helpers import events, make_chat, say, session, wait_for_event, wait_turns
from tests.live_server import free_port
from tests.tcp_proxy import TcpProxy


async def test_healthz_checks_every_part(temporal_app):
    client = temporal_app.test_client()
    response = await client.get("/healthz")
    body = await response.get_json()
    assert response.status_code == 200 and body["status"] == "ok"
    assert body["checks"] == {"database": "ok", "redis": "ok", "temporal": "ok"}
    assert (await (await client.get("/health")).get_json())["runner_mode"] == "Temporal"


async def test_temporal_unreachable(temporal_settings, fake_llm):
    settings = temporal_settings.replace(temporal_address=f"127.0.0.1:{free_port()}")  # nothing listens
    app = create_app(settings)
    async with app.test_app():
        client = app.test_client()
        started = time.monotonic()
        response = await client.get("/healthz")
        body = await response.get_json()
        assert response.status_code == 503 and time.monotonic() - started < 2.5
        assert body["status"] == "degraded" and body["checks"]["temporal"].startswith("error")
        assert body["checks"]["database"] == "ok" and body["checks"]["redis"] == "ok"

        chat = await make_chat(client, fake_llm)
        response = await client.post(f"/v1/sessions/{chat['id']}/messages", json={"content": "hello"})
        assert response.status_code == 503
        assert (await response.get_json())["error"]["code"] == "runner_unavailable"
        log = await events(client, chat["id"])
        assert [e["type"] for e in log] == ["message.created", "session.failed"]
        assert log[1]["data"]["code"] == "runner_unavailable"
        assert log[1]["data"]["message_id"] == log[0]["data"]["message_id"]
        assert (await session(client, chat["id"]))["status"] == "failed"

        # Reported: on a session whose turn goes on (running, or waiting for an answer), a
        # message that cannot be queued marked the session failed, mid-turn. Only the
        # message is given up then.
        from app.models import Session
        from app.models.enums import SessionStatus

        await Session.filter(id=chat["id"]).update(status=SessionStatus.WAITING_FOR_CLIENT, last_error=None)
        response = await client.post(f"/v1/sessions/{chat['id']}/messages", json={"content": "and this?"})
        assert response.status_code == 503
        given_up = (await events(client, chat["id"]))[-1]
        assert given_up["type"] == "session.cancelled" and given_up["data"]["message_id"] is None
        assert len(given_up["data"]["dropped_message_ids"]) == 1
        assert (await session(client, chat["id"]))["status"] == "waiting_for_client"

        # Reported: a cancel (and a DELETE, which cancels first) answered 500 internal_error,
        # even for external sessions, which never use Temporal.
        cancel = await client.post(f"/v1/sessions/{chat['id']}/cancel")
        assert cancel.status_code == 503 and (await cancel.get_json())["error"]["code"] == "runner_unavailable"
        assert (await client.post("/sessions", json={"session_id": "ext-1", "session_name": "x"})).status_code == 200
        ext_cancel = await client.post("/v1/sessions/ext-1/cancel")
        assert ext_cancel.status_code == 202 and (await ext_cancel.get_json())["cancelled"] is False
        assert (await client.delete("/sessions/ext-1")).status_code == 200


async def test_a_cancel_with_no_worker_running_is_answered_and_kept(temporal_settings, fake_llm):
    """Reported: with no worker running, a cancel (and a DELETE) waited for good: its
    workflow update needs a worker. And a cancel whose client gave up was lost: when the
    workers came back the turn ran anyway. The cancel now falls back to a signal, which
    Temporal keeps until a worker runs the workflow."""
    from temporalio.client import Client

    from app.runtime.temporal.worker import build_worker
    from app.runtime.toolbox import Toolbox
    from app.runtime.turn import TurnDeps
    from app.services.agents import get_active_agent

    app = create_app(temporal_settings)
    async with app.test_app():
        client = app.test_client()
        chat = await make_chat(client, fake_llm)
        posted = await (await client.post(f"/v1/sessions/{chat['id']}/messages", json={"content": "hi"})).get_json()
        started = time.monotonic()
        cancel = await client.post(f"/v1/sessions/{chat['id']}/cancel")
        assert cancel.status_code == 202 and time.monotonic() - started < 10

        runtime = app.extensions["runtime"]  # a worker comes (back): the queued turn is dropped, never run
        deps = TurnDeps(temporal_settings, runtime.events, runtime.clients, runtime.metrics, runtime.models,
                        Toolbox(runtime.mcp))
        async with build_worker(await Client.connect(temporal_settings.temporal_address), temporal_settings, deps,
                                get_active_agent):
            log = await wait_for_event(client, chat["id"], "session.cancelled", timeout=20)
        cancelled = next(e for e in log if e["type"] == "session.cancelled")["data"]
        assert cancelled["dropped_message_ids"] == [posted["id"]] and fake_llm.requests == []

        other = await make_chat(client, fake_llm)  # no worker again: a DELETE is answered too
        await client.post(f"/v1/sessions/{other['id']}/messages", json={"content": "hi"})
        started = time.monotonic()
        assert (await client.delete(f"/v1/sessions/{other['id']}")).status_code == 204
        assert time.monotonic() - started < 10


async def test_redis_unreachable(temporal_settings):
    settings = temporal_settings.replace(redis_url=f"redis://127.0.0.1:{free_port()}/0")
    app = create_app(settings)
    async with app.test_app():
        response = await app.test_client().get("/healthz")
        body = await response.get_json()
        assert response.status_code == 503 and body["checks"]["redis"].startswith("error")
        assert body["checks"]["temporal"] == "ok"


def through(proxy: TcpProxy, settings):
    """The settings with Temporal reached through the proxy (so a test can cut it)."""
    return settings.replace(temporal_address=f"127.0.0.1:{proxy.port}")


async def test_while_temporal_is_down_a_message_and_a_cancel_answer_503_in_seconds(
        temporal_settings, temporal_server, fake_llm, caplog):
    """Reported: with Temporal stopped, the SDK retried each call for up to 10 s. A message
    answered 503 after 6-10 s and a cancel after 17 s (its update, then its signal): a
    client with a 5-10 s timeout got a timeout instead of the 503. And each message logged
    an ERROR with the whole gRPC traceback, for an outage /healthz reports already."""
    with TcpProxy("127.0.0.1", temporal_server.port) as proxy:
        app = create_app(through(proxy, temporal_settings))
        logging.getLogger().addHandler(caplog.handler)  # create_app set up logging anew
        async with app.test_app():
            client = app.test_client()
            queued = await make_chat(client, fake_llm)
            await say(client, queued["id"], "hi")  # connected; its workflow waits for a worker
            idle = await (await client.post(f"/v1/agents/{queued['agent_id']}/sessions", json={})).get_json()
            proxy.refuse()  # Temporal goes away
            caplog.clear()

            started = time.monotonic()
            response = await client.post(f"/v1/sessions/{idle['id']}/messages", json={"content": "hello"})
            took = time.monotonic() - started
            assert response.status_code == 503 and (await response.get_json())["error"]["code"] == "runner_unavailable"
            assert took < 2.5, f"the 503 took {took:.1f} s"
            assert [e["type"] for e in await events(client, idle["id"])] == ["message.created", "session.failed"]

            started = time.monotonic()
            cancel = await client.post(f"/v1/sessions/{queued['id']}/cancel")
            took = time.monotonic() - started
            assert cancel.status_code == 503 and (await cancel.get_json())["error"]["code"] == "runner_unavailable"
            assert took < 2.5, f"the 503 took {took:.1f} s"

            said = [(r.levelname, r.name, r.exc_info) for r in caplog.records if r.levelno >= logging.WARNING]
            assert said == [("WARNING", "app.services.turns", None), ("WARNING", "app.runtime.temporal", None)]
            assert "Temporal cannot be reached" in caplog.records[0].getMessage()


async def test_a_message_given_up_while_the_turn_ends_is_given_up_after_that_end(temporal_settings, temporal_server,
                                                                                  fake_llm):
    """Reported: a message posted to a running session, whose hand-off to Temporal then
    failed, was given up by the session's status as read before the wait. The turn had
    ended during it, so a `session.cancelled` (message_id null, the message dropped)
    came after that turn's `session.completed`, ending no turn. The status is now read
    once the hand-off failed: the session is idle, and the message fails as on an idle
    session."""
    with TcpProxy("127.0.0.1", temporal_server.port) as proxy:
        settings = through(proxy, temporal_settings)
        async with temporal_app_serving(settings, worker_address=temporal_server.address) as app:
            client = app.test_client()
            chat = await make_chat(client, fake_llm)
            fake_llm.script(Text(["Hel", "lo"], delay=0.5))
            first = await say(client, chat["id"], "hi")
            await wait_for_event(client, chat["id"], "message.delta")
            assert (await session(client, chat["id"]))["status"] == "running"
            proxy.black_hole()  # the API's Temporal stops answering (REQUEST_ANSWER_TIMEOUT); the worker's does not
            post = asyncio.ensure_future(client.post(f"/v1/sessions/{chat['id']}/messages", json={"content": "more"}))
            await wait_turns(client, chat["id"])
            assert not post.done()  # the turn ended while the message was being handed over
            response = await post
            assert response.status_code == 503 and (await response.get_json())["error"]["code"] == "runner_unavailable"

            log = await events(client, chat["id"])
            second = next(e["data"]["message_id"] for e in log
                          if e["type"] == "message.created" and e["data"]["content"] == {"text": "more"})
            ends = [(e["type"], e["data"]["message_id"]) for e in log if e["type"] in TERMINAL]
            assert ends == [("session.completed", first["id"]), ("session.failed", second)]
            assert log[-1]["type"] == "session.failed" and log[-1]["data"]["code"] == "runner_unavailable"
            assert (await session(client, chat["id"]))["status"] == "failed"


async def model_step_attempt(temporal_address: str, session_id: str, attempt: int) -> None:
    """Until Temporal has scheduled the session's model call for its `attempt`th try."""
    from temporalio.client import Client

    handle = (await Client.connect(temporal_address)).get_workflow_handle(workflow_id(session_id))
    async with asyncio.timeout(15):
        while True:  # Temporal tells no one: it is asked
            pending = (await handle.describe()).raw_description.pending_activities
            if any(p.activity_type.name == "model_step" and p.attempt >= attempt for p in pending):
                return
            await asyncio.sleep(0.1)


async def test_a_step_whose_worker_lost_temporal_is_retried_saying_so(temporal_settings, temporal_server, fake_llm):
    """Reported: a worker that lost Temporal for longer than the heartbeat timeout (2 s)
    had its model call run again, with a `step.retried` whose reason said "the worker
    running this model call stopped". No worker had stopped. The reason now names both
    causes, which the retry cannot tell apart."""
    with TcpProxy("127.0.0.1", temporal_server.port) as proxy:
        async with temporal_app_serving(temporal_settings, worker_address=f"127.0.0.1:{proxy.port}") as app:
            client = app.test_client()
            chat = await make_chat(client, fake_llm)
            fake_llm.script(Hang(["Hel"], seconds=10), Text(["Hello"]))
            posted = await say(client, chat["id"], "hi")
            await wait_for_event(client, chat["id"], "message.delta")
            proxy.refuse()  # the worker loses Temporal; its heartbeats stop arriving
            try:
                await model_step_attempt(temporal_settings.temporal_address, chat["id"], 2)
            finally:
                proxy.forward()
            log = await wait_turns(client, chat["id"], timeout=15)

    assert log[-1]["type"] == "session.completed" and log[-1]["data"]["message_id"] == posted["id"]
    (retried,) = [e["data"] for e in log if e["type"] == "step.retried"]
    assert retried["attempt"] == 2
    assert retried["reason"] == ("the previous attempt of this model call did not finish (its worker stopped or "
                                 "lost contact with the Temporal server, or a write to the database failed); the "
                                 "call is made again, and the text streamed so far for this message_id is replaced")
