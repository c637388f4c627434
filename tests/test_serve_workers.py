"""`python -m app serve` with WORKERS=2 (Hypercorn worker processes on one port), and the
Temporal dev server the RUNNER_MODE=temporal tests run against (tests/temporal_server.py)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from tests.live_server import NOT_INHERITED, ROOT, LiveServer, free_port, sse_listener

LINUX_PROC = Path("/proc/self/fd").is_dir()
needs_proc = pytest.mark.skipif(not LINUX_PROC, reason="reads worker processes and sockets from Linux's /proc")


# --- the Temporal dev server ---------------------------------------------------------

@activity.defn
async def shout(text: str) -> str:
    return text.upper() + "!"


@workflow.defn
class ShoutWorkflow:
    @workflow.run
    async def run(self, text: str) -> str:
        return await workflow.execute_activity(shout, text, start_to_close_timeout=timedelta(seconds=10))


async def test_temporal_dev_server_runs_a_workflow(temporal_server, task_queue):
    host, port = temporal_server.address.split(":")
    assert host == "127.0.0.1" and int(port) > 0
    client = await Client.connect(temporal_server.address, namespace="default")
    # Unsandboxed: this module imports pytest and the test helpers, which the sandbox would
    # re-import; the real workflows keep their module sandbox-clean instead.
    async with Worker(client, task_queue=task_queue, workflows=[ShoutWorkflow], activities=[shout],
                      workflow_runner=UnsandboxedWorkflowRunner()):
        result = await client.execute_workflow(ShoutWorkflow.run, "hello", id=f"wf-{task_queue}",
                                               task_queue=task_queue,
                                               execution_timeout=timedelta(seconds=30))
    assert result == "HELLO!"


# --- WORKERS=2 -------------------------------------------------------------------------

def _children(pid: int) -> dict[int, str]:
    """pid -> command line of the processes whose parent is `pid`."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            # The command name is in parentheses and may hold spaces: fields after the last ")".
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid == pid:
                found[int(entry)] = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, IndexError, ValueError):
            continue
    return found


def _tcp_sockets(port: int, state: str) -> set[int]:
    """Inodes of IPv4 TCP sockets with local port `port` in `state` (0A listen, 01 established)."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].split(":")[1], 16) == port and fields[3] == state:
            inodes.add(int(fields[9]))
    return inodes


def _socket_inodes(pid: int) -> set[int]:
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    return inodes


def _alive(pid: int) -> bool:
    """Running (not gone, not a zombie nobody reaped)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.fixture
def start_server(tmp_path):
    """`python -m app serve` with `env`; spawning workers on a busy 2-core machine is slow,
    so a longer start-up allowance than live_server_factory's."""
    servers: list[LiveServer] = []

    def start(env: dict[str, str]) -> LiveServer:
        server = LiveServer({"LOG_LEVEL": "INFO", **env}, tmp_path)
        servers.append(server)
        return server.start(timeout=60)

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def temporal_env(postgres_url, redis_url, temporal_server, task_queue) -> dict[str, str]:
    """What RUNNER_MODE=temporal needs: PostgreSQL, Redis and the Temporal server."""
    return {
        "RUNNER_MODE": "temporal",
        "DATABASE_URL": postgres_url,
        "REDIS_URL": redis_url,
        "TEMPORAL_ADDRESS": temporal_server.address,
        "TEMPORAL_NAMESPACE": "default",
        "TEMPORAL_TASK_QUEUE": task_queue,
    }


@needs_proc
def test_two_workers_share_the_port_and_stop_on_sigterm(start_server, temporal_env, tmp_path):
    server = start_server({**temporal_env, "WORKERS": "2"})
    parent = server.proc.pid
    assert httpx.get(f"{server.url}/health", timeout=5).json()["status"] == "ok"

    workers = {pid for pid, cmd in _children(parent).items() if "spawn_main" in cmd}
    assert len(workers) == 2, _children(parent)
    # Migrated once, by the parent: the workers run with AUTO_MIGRATE=false.
    for pid in workers:
        assert b"AUTO_MIGRATE=false" in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    # The key files are the parent's, so both workers read the same keys.
    assert (tmp_path / "secret.key").is_file() and (tmp_path / "jwt.key").is_file()

    # Both workers hold the one listening socket...
    (listener,) = _tcp_sockets(server.port, "0A")
    for pid in workers:
        assert listener in _socket_inodes(pid), f"worker {pid} does not hold the listening socket"

    # ...and both accept on it: keep connections open until each worker owns at least one.
    clients: list[httpx.Client] = []
    owners: set[int] = set()
    try:
        while len(clients) < 200 and owners != workers:
            for _ in range(10):
                client = httpx.Client(base_url=server.url, timeout=5)
                assert client.get("/health").status_code == 200
                clients.append(client)
            established = _tcp_sockets(server.port, "01")
            owners = {pid for pid in workers if _socket_inodes(pid) & established}
        assert owners == workers, f"after {len(clients)} connections only {owners} of {workers} accepted any"
    finally:
        for client in clients:
            client.close()

    # SIGTERM to the parent stops every worker, each through its own graceful shutdown.
    started = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(10) == 0, server.log()
    while any(_alive(pid) for pid in workers) and time.monotonic() - started < 10:
        time.sleep(0.05)
    elapsed = time.monotonic() - started
    assert not any(_alive(pid) for pid in workers), f"workers still running after {elapsed:.1f} s"
    assert elapsed < 8, f"stopping took {elapsed:.1f} s"
    assert not _accepts(server.port)
    workers_log = server.log().split("Running on", 1)[1]  # the parent's own lines come first
    assert workers_log.count("Tortoise-ORM shutdown") == 2, server.log()  # each ran its after-serving


def test_a_worker_that_cannot_start_stops_the_server(temporal_env, tmp_path):
    """A worker failing at start-up ends the whole server with a non-zero status instead of
    leaving it half up. Here its database calls time out at once: the supervisor's own
    check of the database (app/db.py check_ready, no time limit, as for migrations) passes,
    and every worker's first call fails."""
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(NOT_INHERITED)}
    env = {**inherited, **temporal_env, "WORKERS": "2", "DATABASE_TIMEOUT_SECONDS": "0.000001",
           "BIND": f"127.0.0.1:{free_port()}", "DATA_DIR": str(tmp_path), "LOG_LEVEL": "WARNING"}
    try:
        done = subprocess.run([sys.executable, "-m", "app", "serve"], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired as error:
        pytest.fail(f"the server did not stop after its workers failed:\n{error.stderr}")
    assert done.returncode != 0, done.stderr
    assert "exited with status" in done.stderr, done.stderr


@needs_proc
def test_sigterm_to_workers_drains_them(start_server, temporal_env):
    """SIGTERM to one worker: it stops gracefully and is replaced. SIGTERM to every process
    at once (systemd stops a whole control group): all stop gracefully, status 0."""
    server = start_server({**temporal_env, "WORKERS": "2"})
    parent = server.proc.pid
    workers = {pid for pid, cmd in _children(parent).items() if "spawn_main" in cmd}
    assert len(workers) == 2

    first = min(workers)
    os.kill(first, signal.SIGTERM)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        now = {pid for pid, cmd in _children(parent).items() if "spawn_main" in cmd and _alive(pid)}
        replacement = next(iter(now - workers), None)
        if first not in now and replacement and f"[{replacement}] [INFO] Running on" in server.log():
            break
        time.sleep(0.1)
    else:
        pytest.fail(f"no replacement for worker {first}: {now}\n{server.log()}")
    assert server.proc.poll() is None
    assert httpx.get(f"{server.url}/health", timeout=5).status_code == 200

    started = time.monotonic()
    for pid in (parent, *now):
        os.kill(pid, signal.SIGTERM)
    assert server.proc.wait(10) == 0, server.log()
    assert not any(_alive(pid) for pid in now)
    assert time.monotonic() - started < 8
    assert server.log().split("Running on", 1)[1].count("Tortoise-ORM shutdown") == 3, server.log()


def test_sigterm_ends_streams_in_every_worker(start_server, temporal_env):
    """Reported: with WORKERS=2 an open SSE stream was cut off (curl exit 18) and a /ws
    client got 1011 only when graceful_timeout ran out, with a CancelledError traceback in
    the log. Each worker ends its streams as its shutdown begins, as one process does."""
    import asyncio

    from websockets.asyncio.client import connect

    server = start_server({**temporal_env, "WORKERS": "2", "GRACEFUL_TIMEOUT_SECONDS": "8"})
    httpx.post(f"{server.url}/sessions", json={"session_id": "w1", "session_name": "x"}).raise_for_status()
    opened, stream_ended = sse_listener(f"{server.url}/v1/sessions/w1/sse")
    assert opened.wait(10)

    async def feed_then_sigterm() -> tuple[int | None, float]:
        async with connect(f"ws://127.0.0.1:{server.port}/ws") as ws:
            await ws.recv()  # init
            started = time.monotonic()
            server.proc.send_signal(signal.SIGTERM)
            try:
                while True:
                    await asyncio.wait_for(ws.recv(), 15)
            except Exception:
                pass
            return ws.close_code, time.monotonic() - started

    close_code, closed_after = asyncio.run(feed_then_sigterm())
    assert close_code == 1001 and closed_after < 2, (close_code, closed_after)
    assert server.proc.wait(10) == 0, server.log()
    assert stream_ended.wait(5), "the SSE stream was cut off instead of ended"
    assert "Traceback" not in server.log()


@needs_proc
def test_a_worker_killed_while_serving_is_replaced_and_the_other_keeps_its_clients(start_server, temporal_env):
    """Reported: kill -9 of one of WORKERS=2 (as the OOM killer would) made the supervisor
    print "exited with status -9; stopping" and stop the healthy worker too, streams and
    all, and nothing restarted the server. Now the dead worker is replaced and the other's
    SSE client reads on, live events included."""
    server = start_server({**temporal_env, "WORKERS": "2"})
    parent = server.proc.pid
    workers = {pid for pid, cmd in _children(parent).items() if "spawn_main" in cmd}
    assert len(workers) == 2
    deadline = time.monotonic() + 30  # both serve (one that dies before is a failed start-up)
    while not all(f"[{pid}] [INFO] Running on" in server.log() for pid in workers):
        assert time.monotonic() < deadline, server.log()
        time.sleep(0.1)
    httpx.post(f"{server.url}/sessions", json={"session_id": "k1", "session_name": "x"}).raise_for_status()
    received: list[bytes] = []
    opened = threading.Event()

    def listen() -> None:
        with httpx.stream("GET", f"{server.url}/v1/sessions/k1/sse", timeout=None) as stream:
            for chunk in stream.iter_bytes():
                received.append(chunk)
                opened.set()

    threading.Thread(target=listen, daemon=True).start()
    assert opened.wait(10)
    (stream_socket,) = _tcp_sockets(server.port, "01")  # the stream's, server side
    (holder,) = [pid for pid in workers if stream_socket in _socket_inodes(pid)]
    (victim,) = workers - {holder}

    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        now = {pid for pid, cmd in _children(parent).items() if "spawn_main" in cmd and _alive(pid)}
        replacement = next(iter(now - workers), None)
        if victim not in now and replacement and f"[{replacement}] [INFO] Running on" in server.log():
            break
        time.sleep(0.1)
    else:
        pytest.fail(f"no replacement for worker {victim}:\n{server.log()}")
    assert server.proc.poll() is None and _alive(holder)
    assert f"worker {victim} exited with status -9 while serving; starting another" in server.log()

    before = len(b"".join(received))
    event = {"event_type": "pre_tool", "session_id": "k1", "session_name": "x", "timestamp": "2025-01-01T00:00:00Z"}
    httpx.post(f"{server.url}/sessions/k1/events", json=event, timeout=5).raise_for_status()
    deadline = time.monotonic() + 10
    while b"event:" not in b"".join(received)[before:] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert b"event:" in b"".join(received)[before:], "the surviving worker's stream got nothing after the kill"
