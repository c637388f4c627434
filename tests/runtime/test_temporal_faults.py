"""Temporal mode when its parts are missing: /healthz says which, a message that cannot
be queued is a clear 503 and the log says it will not be answered."""

from __future__ import annotations

import time

from app.main import create_app
from tests.helpers import events, make_chat, session
from tests.live_server import free_port


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


async def test_redis_unreachable(temporal_settings):
    settings = temporal_settings.replace(redis_url=f"redis://127.0.0.1:{free_port()}/0")
    app = create_app(settings)
    async with app.test_app():
        response = await app.test_client().get("/healthz")
        body = await response.get_json()
        assert response.status_code == 503 and body["checks"]["redis"].startswith("error")
        assert body["checks"]["temporal"] == "ok"
