"""Open streams end when their credential stops working (app/auth/stream_watch.py).

Reported: a /ws connection or an SSE stream opened before its API key was deleted, its
login logged out (or ended by refresh-token reuse), or its access token expired, kept
delivering the user's live data for as long as it stayed open. Each stream now checks its
credential again every SSE_HEARTBEAT_SECONDS (0.2 here) and at its expiry: SSE streams
end with an `error` frame (code `unauthorized`), /ws closes with 4401. What the report's
client did after the revocation comes a few rounds of checks later, and is not delivered."""

from __future__ import annotations

import asyncio
import json

import pytest
from quart.testing.connections import WebsocketDisconnectError

from tests.auth.conftest import make_key, register
from tests.auth.test_isolation import own_world
from tests.fakes import Hang

HEARTBEAT = 0.2
WITHIN = 5  # seconds a stream may take to notice (many heartbeats: a busy CI machine)
NOTICED = 1.0  # five rounds of checks: what the report's client did next comes after this


@pytest.fixture
def settings(settings):
    return settings.replace(sse_heartbeat_seconds=HEARTBEAT)


async def read_until_end(connection, timeout: float = WITHIN) -> bytes:
    """Everything the stream sends until it ends; fails if it does not end in time."""
    body = b""

    async def read() -> None:
        nonlocal body
        while chunk := await connection.receive():
            body += chunk

    try:
        await asyncio.wait_for(read(), timeout)  # the last body chunk of a response is b""
    except TimeoutError:
        raise AssertionError(f"the stream did not end within {timeout} s; it sent {body!r}") from None
    return body


def sse_events(body: bytes) -> list[tuple[str, dict]]:
    frames = []
    for block in body.decode().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line and not line.startswith(":"))
        if "event" in fields:
            frames.append((fields["event"], json.loads(fields["data"])))
    return frames


async def test_ws_closes_4401_when_its_api_key_is_deleted(client, bob):
    """The report's script: bob's sessions:read key opens /ws?events=all, the key is
    deleted, then bob creates a session. The socket used to receive it (11 messages)."""
    key = await make_key(client, bob, ["sessions:read"])
    key_id = (await (await client.get("/v1/auth/api-keys", headers=bob.headers)).get_json())["data"][0]["id"]
    async with client.websocket("/ws?events=all", headers={"X-API-Key": key}) as ws:
        assert json.loads(await ws.receive())["type"] == "init"
        assert (await client.delete(f"/v1/auth/api-keys/{key_id}", headers=bob.headers)).status_code == 204
        assert (await client.get("/v1/auth/me", headers={"X-API-Key": key})).status_code == 401
        await asyncio.sleep(NOTICED)
        await client.post("/sessions", json={"session_id": "bob-ws-2", "session_name": "after-revoke"},
                          headers=bob.headers)
        received = []
        with pytest.raises(WebsocketDisconnectError) as closed:
            while True:
                received.append(json.loads(await asyncio.wait_for(ws.receive(), WITHIN)))
    assert closed.value.args[0] == 4401
    assert not [m for m in received if m.get("session", {}).get("session_name") == "after-revoke"]


async def test_ws_closes_4401_when_refresh_token_reuse_signs_its_login_out(client, alice):
    async with client.websocket("/ws", headers=alice.headers) as ws:
        assert json.loads(await ws.receive())["type"] == "init"
        assert (await client.post("/v1/auth/refresh", json={"refresh_token": alice.refresh})).status_code == 200
        reuse = await client.post("/v1/auth/refresh", json={"refresh_token": alice.refresh})
        assert reuse.status_code == 401
        with pytest.raises(WebsocketDisconnectError) as closed:
            await asyncio.wait_for(ws.receive(), WITHIN)
    assert closed.value.args[0] == 4401


async def test_sse_alias_ends_with_an_error_frame_after_logout(client, bob, fake_llm):
    """The report's curl: /sse?access_token=T, logout with T, a message posted with bob's
    key. The stream used to deliver the whole new turn."""
    _, session, _ = await own_world(client, bob, fake_llm)
    key = await make_key(client, bob, ["*"])
    async with client.request(f"/v1/sessions/{session['id']}/sse?access_token={bob.access}") as stream:
        await stream.send_complete()
        assert b"retry:" in await stream.receive()
        assert (await client.post("/v1/auth/logout", headers=bob.headers)).status_code == 204
        me = await client.get("/v1/auth/me", headers=bob.headers)
        assert me.status_code == 401
        await asyncio.sleep(NOTICED)
        fake_llm.script(Hang(["posted after logout"], seconds=30))
        posted = await client.post(f"/v1/sessions/{session['id']}/messages", json={"content": "posted after logout"},
                                   headers={"X-API-Key": key})
        assert posted.status_code == 201
        body = await read_until_end(stream)
    frames = sse_events(body)
    assert frames[-1] == ("error", {"code": "unauthorized", "message": "this login was signed out; log in again"})
    assert "message.delta" not in [name for name, _ in frames]
    await client.post(f"/v1/sessions/{session['id']}/cancel", headers={"X-API-Key": key})


async def test_sse_ends_when_its_access_token_expires(app_factory, fake_llm):
    app = await app_factory(sse_heartbeat_seconds=30, access_token_ttl_seconds=2)
    client = app.test_client(use_cookies=False)
    carol = await register(client, "carol@example.com")
    _, session, _ = await own_world(client, carol)
    async with client.request(f"/v1/sessions/{session['id']}/events?access_token={carol.access}") as stream:
        await stream.send_complete()
        # Ends at the token's expiry (2 s), not at the next round of checks (30 s).
        body = await read_until_end(stream, timeout=8)
    assert sse_events(body)[-1] == ("error", {"code": "unauthorized",
                                              "message": "access token expired; refresh it with POST /v1/auth/refresh"})


async def test_agentspec_stream_ends_with_error_when_its_key_is_deleted(client, alice, fake_llm):
    agent, _, _ = await own_world(client, alice, fake_llm)
    key = await make_key(client, alice, ["sessions:read", "sessions:write"])
    key_id = (await (await client.get("/v1/auth/api-keys", headers=alice.headers)).get_json())["data"][0]["id"]
    fake_llm.script(Hang(["thinking"], seconds=30))
    async with client.request(f"/v1/agents/{agent['id']}/stream", method="POST",
                              headers={"Content-Type": "application/json", "X-API-Key": key}) as stream:
        await stream.send(json.dumps({"input": "go"}).encode())
        await stream.send_complete()
        assert b"event: token" in await asyncio.wait_for(stream.receive(), WITHIN)
        assert (await client.delete(f"/v1/auth/api-keys/{key_id}", headers=alice.headers)).status_code == 204
        body = await read_until_end(stream)
        session_id = stream.headers["X-Session-ID"]
    assert sse_events(body)[-1] == ("error", {"code": "unauthorized", "message": "invalid or revoked API key"})
    await client.post(f"/v1/sessions/{session_id}/cancel", headers=alice.headers)


async def test_a_stream_whose_credential_stays_good_goes_on(client, alice):
    """Checks that find nothing wrong end nothing: several rounds pass, the socket stays."""
    async with client.websocket("/ws", headers=alice.headers) as ws:
        assert json.loads(await ws.receive())["type"] == "init"
        await asyncio.sleep(HEARTBEAT * 5)
        await ws.send(json.dumps({"type": "ping"}))
        assert json.loads(await asyncio.wait_for(ws.receive(), WITHIN)) == {"type": "pong"}
