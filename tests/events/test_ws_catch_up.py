"""/ws catches up from the log once this process's Redis subscription is back.

Reported with a real cluster (RUNNER_MODE=temporal, Redis stopped for 7-20 s): /ws
clients had nothing of the turns that ran meanwhile until the workers' outboxes were
published again, 6-11 s after Redis returned; had a worker published before this
process subscribed again, nothing would have come until the session's next event. A
session created meanwhile could not have its gaps found at all.

Here the API process reaches a private redis-server through a proxy that the test cuts;
"another process" (its own bus, connected directly) writes to the database and publishes
while the cut lasts, so its live copies are lost to the API for good (nothing is sent
again unless the test does so): only the log can bring them.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import shutil
import subprocess
import time
import uuid
from collections.abc import AsyncIterator

import pytest

from app.events.bus import EventBus
from app.events.log import EventLog
from app.events.redis_bus import RedisEventBus
from app.main import create_app
from app.models import Event, Session, User
from app.models.enums import SessionKind, SessionStatus
from app.timeutil import utcnow
from tests.live_server import accepts_tcp, free_port, until
from tests.tcp_proxy import TcpProxy

CAUGHT_UP_WITHIN = 3.0  # seconds after Redis is reachable again (the listener's back-off is < 1 s here)


@pytest.fixture
def private_redis():
    """A redis-server of this test's own: no other test's live events on its channel."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("no redis-server on PATH")
    port = free_port()
    process = subprocess.Popen([binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        until(lambda: accepts_tcp("127.0.0.1", port, 0.2), 10, "redis-server listening")
        yield port
    finally:
        process.terminate()
        process.wait(10)


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request, settings) -> str:
    return request.getfixturevalue("pg_copy") if request.param == "postgres" else settings.database_url


class Cluster:
    """The API process under test and another process that writes to the same database."""

    def __init__(self, app, proxy: TcpProxy, writer: EventLog):
        self.app, self.proxy, self.writer = app, proxy, writer
        self.bus = app.extensions["runtime"].bus

    async def cut(self) -> None:
        """The API process loses Redis (and knows it); the other process does not."""
        self.proxy.refuse()
        deadline = time.monotonic() + 5
        while "listen" not in self.bus._down:
            assert time.monotonic() < deadline, "the API's listener never noticed"
            await asyncio.sleep(0.01)

    async def create(self, session_id: str, name: str, owner: uuid.UUID | None = None) -> None:
        await Session.create(id=session_id, kind=SessionKind.EXTERNAL, status=SessionStatus.RUNNING, title=name,
                             owner_id=owner)
        self.writer.notify_session("session_created", session_id)

    async def hooks(self, session_id: str, count: int) -> list[int]:
        return [(await self.writer.append(session_id, "post_tool", {"tool_name": "Bash", "tool_output": i})).sequence
                for i in range(count)]


@contextlib.asynccontextmanager
async def running(settings, redis_port: int) -> AsyncIterator[Cluster]:
    with TcpProxy("127.0.0.1", redis_port) as proxy:
        app = create_app(settings.replace(auto_migrate=True, redis_url=f"redis://127.0.0.1:{proxy.port}/0"))
        async with app.test_app():
            other_bus = RedisEventBus(f"redis://127.0.0.1:{redis_port}/0")
            await other_bus.start()
            try:
                yield Cluster(app, proxy, EventLog(other_bus, on_postgres=settings.database_url.startswith("postgres"),
                                                   single_writer=False))
            finally:
                await other_bus.stop()


@pytest.fixture
async def cluster(settings, database_url, private_redis):
    async with running(settings.replace(database_url=database_url), private_redis) as cluster:
        yield cluster


async def receive_until(ws, done, timeout: float) -> list[dict]:
    """Messages until `done(messages)` holds; fails after `timeout` s with what came."""
    messages: list[dict] = []
    deadline = time.monotonic() + timeout
    while not done(messages):
        left = deadline - time.monotonic()
        try:
            messages.append(json.loads(await asyncio.wait_for(ws.receive(), max(left, 0.01))))
        except TimeoutError:
            raise AssertionError(f"not within {timeout} s; got {messages}") from None
    return messages


def events_of(messages: list[dict], session_id: str) -> list[int]:
    return [m["data"]["sequence"] for m in messages if m["type"] == "event" and m["data"]["session_id"] == session_id]


def kinds(messages: list[dict]) -> list[tuple[str, str]]:
    return [(m["type"], m.get("session_id") or m["session"]["session_id"]) for m in messages if m["type"] != "event"]


async def test_ws_gets_what_was_written_while_redis_was_unreachable(cluster):
    # A session last active an hour ago, whose events this process never sent: only what is
    # written to it while cut off is news (not its old event, nor a session notice).
    await Session.create(id="dormant", kind=SessionKind.EXTERNAL, status=SessionStatus.RUNNING, title="dormant")
    await EventLog(EventBus(), on_postgres=cluster.writer.shared is not None).append("dormant", "post_tool", {"tool_name": "Bash"})
    an_hour_ago = utcnow() - dt.timedelta(hours=1)
    await Session.filter(id="dormant").update(created_at=an_hour_ago, updated_at=an_hour_ago)
    await Event.filter(session_id="dormant").update(created_at=an_hour_ago)
    await Session.create(id="shown", kind=SessionKind.EXTERNAL, status=SessionStatus.RUNNING, title="in init only")
    client = cluster.app.test_client()
    async with client.websocket("/ws?events=all") as ws:
        assert json.loads(await ws.receive())["type"] == "init"
        await client.post("/sessions", json={"session_id": "known", "session_name": "known"})
        await client.post("/sessions", json={"session_id": "doomed", "session_name": "doomed"})
        await client.post("/sessions/known/events", json={
            "event_type": "post_tool", "session_id": "known", "session_name": "known", "tool_name": "Read",
            "timestamp": "2026-01-01T00:00:00Z"})
        before = await receive_until(ws, lambda got: events_of(got, "known") == [1], 5)
        assert kinds(before) == [("session_created", "known"), ("session_created", "doomed")]

        await cluster.cut()
        written = {"known": await cluster.hooks("known", 3)}
        await cluster.create("new", "born while cut off")
        written["new"] = await cluster.hooks("new", 2)
        await Session.filter(id="known").update(title="renamed", updated_at=utcnow())
        cluster.writer.notify_session("session_updated", "known")
        await Session.filter(id="doomed").delete()
        cluster.writer.notify_session("session_deleted", "doomed")
        await Session.filter(id="shown").delete()  # a session this process knew only from the init page it sent
        cluster.writer.notify_session("session_deleted", "shown")
        written["dormant"] = await cluster.hooks("dormant", 1)
        assert written == {"known": [2, 3, 4], "new": [1, 2], "dormant": [2]}

        cluster.proxy.forward()
        caught_up = await receive_until(ws, lambda got: all(len(events_of(got, s)) >= len(written[s]) for s in written)
                                        and len(kinds(got)) >= 4, CAUGHT_UP_WITHIN)
        assert {s: events_of(caught_up, s) for s in written} == written
        assert sorted(kinds(caught_up)) == [("session_created", "new"), ("session_deleted", "doomed"),
                                            ("session_deleted", "shown"), ("session_updated", "known")]
        renamed = next(m for m in caught_up if m["type"] == "session_updated")
        assert renamed["session"]["session_name"] == "renamed"
        created = next(i for i, m in enumerate(caught_up) if m["type"] == "session_created")
        assert created < next(i for i, m in enumerate(caught_up) if m["type"] == "event" and m["data"]["session_id"] == "new")

        # The live copies sent again (as an outbox is after a reconnect) bring nothing twice;
        # what is written next comes live, once.
        for session_id, sequences in written.items():
            for event in await EventLog.read(session_id):
                if event.sequence in sequences:
                    cluster.writer.bus.publish(event)
        await cluster.hooks("known", 1)
        rest = await receive_until(ws, lambda got: 5 in events_of(got, "known"), 5)
        assert [m for m in rest if m["type"] == "event"] == [rest[-1]] and events_of(rest, "known") == [5]


async def test_what_is_caught_up_goes_only_to_those_who_may_see_it(settings, private_redis):
    from tests.auth.conftest import ADMIN, login, register

    full = settings.replace(auth_mode="full", auth_admin_email=ADMIN[0], auth_admin_password=ADMIN[1],
                            rate_limit_enabled=False, jwt_secret="test-jwt-secret-0123456789abcdef")
    async with running(full, private_redis) as cluster:
        client = cluster.app.test_client(use_cookies=False)
        alice, admin = await register(client, "alice@example.com"), await login(client, *ADMIN)
        bob = await register(client, "bob@example.com")
        owners = {user.email.split("@")[0]: user.id for user in await User.filter(email__in=["alice@example.com", "bob@example.com"])}
        async with client.websocket("/ws", headers=alice.headers) as alices, \
                client.websocket("/ws", headers=admin.headers) as admins:
            for ws in (alices, admins):
                assert json.loads(await ws.receive())["type"] == "init"
            for name, account in (("alice-old", alice), ("bob-old", bob)):
                response = await client.post("/sessions", json={"session_id": name, "session_name": name}, headers=account.headers)
                assert response.status_code == 200
            assert kinds(await receive_until(admins, lambda got: len(got) == 2, 5)) == [
                ("session_created", "alice-old"), ("session_created", "bob-old")]
            assert kinds(await receive_until(alices, lambda got: len(got) == 1, 5)) == [("session_created", "alice-old")]

            await cluster.cut()
            for name in ("alice", "bob"):
                await cluster.create(f"{name}-new", f"{name}'s", owners[name])
                await cluster.hooks(f"{name}-new", 1)
                await Session.filter(id=f"{name}-old").delete()
                cluster.writer.notify_session("session_deleted", f"{name}-old", owners[name])
            cluster.proxy.forward()

            everything = await receive_until(admins, lambda got: len(got) == 6, CAUGHT_UP_WITHIN)
            assert sorted(kinds(everything)) == [("session_created", "alice-new"), ("session_created", "bob-new"),
                                                 ("session_deleted", "alice-old"), ("session_deleted", "bob-old")]
            assert events_of(everything, "alice-new") == [1] and events_of(everything, "bob-new") == [1]
            # The hub offered every message to both connections before the admin's last one;
            # the pong comes after all that Alice was sent.
            await alices.send(json.dumps({"type": "ping"}))
            hers = await receive_until(alices, lambda got: got and got[-1]["type"] == "pong", 5)
            assert sorted(kinds(hers[:-1])) == [("session_created", "alice-new"), ("session_deleted", "alice-old")]
            assert events_of(hers, "alice-new") == [1] and len(hers) == 4
