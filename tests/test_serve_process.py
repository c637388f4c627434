"""`python -m app serve` as an operator runs it: an address it cannot listen on is one
line and an exit, and SIGTERM stops it promptly at any moment, start-up included."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.live_server import NOT_INHERITED, ROOT, free_port, report_session, sse_listener, until

# WORKERS > 1 needs temporal mode's settings; nothing listens there: the refusal comes first.
WORKERS = {"WORKERS": "2", "RUNNER_MODE": "temporal", "DATABASE_URL": "postgres://127.0.0.1:9/none",
           "REDIS_URL": "redis://127.0.0.1:9/0"}
KEY_LENGTH = 44  # a key file as written: Fernet.generate_key(), nothing else

# Generous for a busy 2-core machine: starting Python and importing the app takes 1-3 s
# there. A server that hangs never exits at all.
EXIT_SECONDS = 15


def server_env(data_dir: Path, port: int, **extra: str) -> dict[str, str]:
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(NOT_INHERITED)}
    return {**inherited, "DATA_DIR": str(data_dir), "BIND": f"127.0.0.1:{port}", "LOG_LEVEL": "WARNING", **extra}


def listening(port: int, reuse_port: bool = False) -> socket.socket:
    """Another program on the port. With SO_REUSEPORT: another server of ours with WORKERS > 1
    as Hypercorn binds it, which any socket of the same account setting it too may join."""
    sock = socket.socket()
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen()
    return sock


@pytest.mark.parametrize("env, reuse_port", [({}, False), (WORKERS, False), (WORKERS, True)],
                         ids=["one-process", "workers", "workers-reuseport"])
def test_a_port_in_use_is_one_line_and_an_exit(tmp_path, env, reuse_port):
    port = free_port()
    with listening(port, reuse_port):
        started = time.monotonic()
        try:
            done = subprocess.run([sys.executable, "-m", "app", "serve"], cwd=ROOT, env=server_env(tmp_path, port, **env),
                                  capture_output=True, text=True, timeout=EXIT_SECONDS)
        except subprocess.TimeoutExpired as running:
            pytest.fail(f"still running {EXIT_SECONDS} s after failing to listen:\n{running.stderr}")
    assert done.returncode != 0
    assert done.stderr.splitlines() == [f"error: cannot listen on 127.0.0.1:{port}: address already in use"], done.stderr
    assert time.monotonic() - started < EXIT_SECONDS
    assert not (tmp_path / "runtime.sqlite3").exists()  # refused before opening anything


def _refused(tmp_path, command: str = "serve", **env: str) -> str:
    """Run a command that must stop at once; the one line it prints (asserted)."""
    done = subprocess.run([sys.executable, "-m", "app", command], cwd=ROOT, env=server_env(tmp_path, free_port(), **env),
                          capture_output=True, text=True, timeout=EXIT_SECONDS)
    assert done.returncode == 1 and len(done.stderr.splitlines()) == 1, done.stderr
    assert done.stderr.startswith("error: ") and "Traceback" not in done.stderr
    return done.stderr.strip()


# Reported: each stopped with 20-110 lines of traceback (the README promises one `error:`
# line for anything the operator has to fix), and a bad DATABASE_URL still made key files.
@pytest.mark.parametrize(("env", "says"), [
    ({"BIND": "127.0.0.1:99999"}, "error: cannot listen on 127.0.0.1:99999: bind(): port must be 0-65535."),
    ({"DATABASE_URL": "junk://x"}, "error: cannot use the database at junk://x: Unknown DB scheme: junk"),
    ({"DATABASE_URL": "sqlite:///nonexistent/dir/x.db"}, "error: cannot use the database at sqlite:///nonexistent/dir/x.db: "),
    ({"DATABASE_URL": "postgres://postgres:pw@127.0.0.1:9/x"}, "error: cannot use the database at postgres://127.0.0.1:9/x: "),
    ({"DATA_DIR": "/etc/passwd"}, "error: cannot read /etc/passwd/secret.key: Not a directory"),
    ({"DATA_DIR": "/proc/nope"}, "error: DATA_DIR /proc/nope cannot be created: "),
])
@pytest.mark.parametrize("command", ["serve", "migrate"])
def test_what_the_operator_must_fix_is_one_line(tmp_path, env, says, command):
    if command == "migrate" and "BIND" in env:
        pytest.skip("migrate listens on nothing: BIND is not its setting")
    refused = _refused(tmp_path / "data", command, **env)
    assert refused.startswith(says)
    assert ":pw@" not in refused  # the URL is shown without its credentials


def test_a_database_behind_this_version_is_refused_without_auto_migrate(tmp_path):
    """Reported: with AUTO_MIGRATE=false and a migration not applied, the server started,
    /healthz said ok, and every message POST was a 500 (a column missing)."""
    data = tmp_path / "data"
    fresh = _refused(data, AUTO_MIGRATE="false")
    migrations = sorted(p.stem for p in (ROOT / "migrations").glob("0*.py"))  # a new file has none applied
    assert fresh.startswith(f"error: the database at sqlite://{data}/runtime.sqlite3 lacks {len(migrations)} migration(s)")
    assert fresh.endswith("and AUTO_MIGRATE=false: run `python -m app migrate` first")
    assert subprocess.run([sys.executable, "-m", "app", "migrate"], cwd=ROOT, env=server_env(data, free_port()),
                          capture_output=True, timeout=EXIT_SECONDS * 2).returncode == 0
    import sqlite3

    with sqlite3.connect(data / "runtime.sqlite3") as db:  # as an upgrade whose `migrate` was forgotten
        db.execute("DELETE FROM tortoise_migrations WHERE name = ?", (migrations[-1],))
    assert f"lacks 1 migration(s) of this version ({migrations[-1]})" in _refused(data, AUTO_MIGRATE="false")


# --- SIGTERM at any moment -----------------------------------------------------------------

class Spawned:
    """`python -m app serve` on a fresh data folder (its first start: keys made, database
    created and migrated), its log in a file to watch for moments of its start-up."""

    def __init__(self, data_dir: Path):
        self.port = free_port()
        self.data_dir = data_dir
        self.log_path = data_dir.parent / f"{data_dir.name}.log"
        self._log = open(self.log_path, "wb")
        env = server_env(data_dir, self.port, LOG_LEVEL="DEBUG")  # DEBUG: a line per step to watch for
        self.proc = subprocess.Popen([sys.executable, "-m", "app", "serve"], cwd=ROOT, env=env,
                                     stdout=self._log, stderr=subprocess.STDOUT)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for(self, moment, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not moment(self):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"never reached that moment (status {self.proc.returncode}):\n{self.log()}")
            time.sleep(0.005)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._log.close()


def logged(text: str):
    return lambda server: text in server.log()


def answers(server: Spawned) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{server.port}/health", timeout=0.5).status_code == 200
    except httpx.HTTPError:
        return False


def after(seconds: float):
    started = time.monotonic()
    return lambda server: time.monotonic() - started >= seconds


def streaming(server: Spawned) -> bool:
    """Serving, with an SSE stream open (kept open by a thread until the server ends it)."""
    if not answers(server):
        return False
    base = f"http://127.0.0.1:{server.port}"
    agent = httpx.post(f"{base}/v1/agents", json={"name": "a", "system_prompt": "p"}).json()
    session = httpx.post(f"{base}/v1/agents/{agent['id']}/sessions", json={}).json()
    opened = threading.Event()

    def listen() -> None:
        try:
            with httpx.stream("GET", f"{base}/v1/sessions/{session['id']}/sse", timeout=None) as stream:
                opened.set()
                for _ in stream.iter_bytes():
                    pass
        except httpx.HTTPError:
            pass

    threading.Thread(target=listen, daemon=True).start()
    return opened.wait(10)


MOMENTS = {
    "spawned": after(0),  # Python still starting: the default action of SIGTERM
    "importing": after(0.5),
    "keys-made": logged("created a new key at"),  # in create_app(), before the event loop runs
    "migrating": logged("Building migration graph"),  # the app's start-up, on the event loop
    "serving": answers,
    "streaming": streaming,
}


@pytest.mark.parametrize("moment", MOMENTS)
def test_sigterm_stops_the_server_promptly_at_any_moment(tmp_path, moment):
    server = Spawned(tmp_path / "data")
    try:
        server.wait_for(MOMENTS[moment])
        server.proc.send_signal(signal.SIGTERM)
        try:
            status = server.proc.wait(EXIT_SECONDS)
        except subprocess.TimeoutExpired:
            pytest.fail(f"still running {EXIT_SECONDS} s after SIGTERM ({moment}):\n{server.log()}")
    finally:
        server.close()
    # Stopped by its handler (0) or, before one was installed, by the signal itself.
    assert status in (0, -signal.SIGTERM), server.log()
    if moment != "streaming":
        # (An SSE stream still open when Hypercorn's graceful_timeout ends is cancelled,
        # and Python 3.11's asyncio logs that cancellation with a traceback.)
        assert "Traceback" not in server.log()
    for name in ("secret.key", "jwt.key"):  # cut short or not, never a broken key file
        key = tmp_path / "data" / name
        assert not key.exists() or len(key.read_text()) == KEY_LENGTH, name


def test_sigterm_ends_an_open_sse_stream_instead_of_waiting_for_it(live_server):
    """An SSE stream never ends by itself: the server ends it when shutdown begins (the
    response completes cleanly), so it stops at once instead of waiting out Hypercorn's
    graceful_timeout (5 s, hypercorn.toml) and then cancelling the stream."""
    base = live_server.url
    httpx.post(f"{base}/sessions", json={"session_id": "s1", "session_name": "x"}).raise_for_status()
    opened, stream_ended = sse_listener(f"{base}/v1/sessions/s1/sse")
    assert opened.wait(10)
    started = time.monotonic()
    live_server.proc.send_signal(signal.SIGTERM)
    live_server.proc.wait(EXIT_SECONDS)
    elapsed = time.monotonic() - started
    assert stream_ended.wait(5)
    assert elapsed < 3, f"took {elapsed:.1f} s to stop: it waited for the stream"
    assert "Traceback" not in live_server.log()


def _big_log(server, session_id: str, count: int = 40) -> int:
    """A session of `count` 200 KB messages (8 MB: far more than the kernel buffers of one
    connection); the sequence of its last event."""
    events = ({"event_type": "message", "role": "assistant", "content": [{"type": "text", "text": f"{i} " + "x" * 200_000}]}
              for i in range(count))
    with report_session(server.url, session_id, events) as http:
        return http.get(f"/v1/sessions/{session_id}/events?format=json&limit=1").json()["total"]


def _stalled_sse_client(port: int, path: str) -> socket.socket:
    """A client that asks for an SSE stream and never reads it, with a tiny receive window
    (set before connecting), so the server's writes really back up."""
    stalled = socket.socket()
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.connect(("127.0.0.1", port))
    stalled.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n".encode())
    return stalled


def _read_to_end(sock: socket.socket, timeout: float) -> bytes:
    """What the client can still read, up to the end of its connection (EOF or a reset);
    socket.timeout if the connection is still open after `timeout`."""
    sock.settimeout(timeout)
    data = b""
    try:
        while chunk := sock.recv(1 << 20):
            data += chunk
    except ConnectionResetError:
        pass
    return data


def test_a_client_that_stopped_reading_is_cut_off_while_the_server_runs(live_server_factory):
    """Reported: a client that stopped reading its SSE stream was never dropped. Its replay
    waited in drain() for ever, holding what it had read of the log: five such clients of
    a session of 900 KB events took the server from 130 MB to 1 GB, for as long as they
    stayed. Now a connection that takes none of what is waiting for it for
    SEND_TIMEOUT_SECONDS is cut off (one WARNING line), its stream ended and its memory
    freed; a client that reads, however slowly, is not."""
    server = live_server_factory({"SEND_TIMEOUT_SECONDS": "2"})
    last, size = _big_log(server, "big"), 40 * 200_000
    stalled = _stalled_sse_client(server.port, "/v1/sessions/big/sse")
    try:
        client_port = stalled.getsockname()[1]
        until(lambda: client_port in server.held_connections(), 5, "the stalled client connected")
        # Meanwhile a client that pauses between reads (2 s in all, but never 2 s without
        # taking anything) gets it all.
        received, at_last = b"", False
        with httpx.stream("GET", f"{server.url}/v1/sessions/big/sse", timeout=10) as stream:
            for n, chunk in enumerate(stream.iter_bytes()):
                if n < 5:
                    time.sleep(0.4)
                received += chunk
                at_last = at_last or f"\nid: {last}\n".encode() in received[-len(chunk) - 20:]
                if at_last and received.endswith(b"\n\n"):  # the end of the last event
                    break
        assert len(received) > size and received.count(b"\nevent: message\n") == 40
        until(lambda: client_port not in server.held_connections(), 2 + 5, "the stalled client cut off")
        assert "took nothing for 2 s" in server.log()
        # What the kernel still held for the client, then the end of the connection.
        assert len(_read_to_end(stalled, 5)) < size
    finally:
        stalled.close()
    assert httpx.get(f"{server.url}/health").status_code == 200


def test_a_plain_response_to_a_client_that_stopped_reading_is_cut_off(live_server_factory):
    """A body already in memory (an 8 MB JSON page here) is sent without Quart's
    RESPONSE_TIMEOUT timer (issue 13: a task and a timer per request); SEND_TIMEOUT_SECONDS
    is what ends a send to a client that takes nothing. (The Agent Runtime list is
    streamed: tests/api/test_agent_runtime_list_live.py.)"""
    server = live_server_factory({"SEND_TIMEOUT_SECONDS": "2"})
    _big_log(server, "big")
    stalled = socket.socket()
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.connect(("127.0.0.1", server.port))
    stalled.sendall(b"GET /v1/sessions/big/events?format=json&limit=40 HTTP/1.1\r\nHost: x\r\n\r\n")
    try:
        client_port = stalled.getsockname()[1]
        until(lambda: client_port in server.held_connections(), 5, "the stalled client connected")
        until(lambda: client_port not in server.held_connections(), 2 + 5, "the stalled client cut off")
        assert "took nothing for 2 s" in server.log()
    finally:
        stalled.close()
    assert httpx.get(f"{server.url}/health").status_code == 200


def test_a_body_that_arrives_in_parts_is_read_whole(live_server):
    """A small body is read at once, without Quart's BODY_TIMEOUT timer, when it has all
    arrived; one still arriving is waited for."""
    body = b'{"session_id": "parts", "session_name": "in parts"}'
    with socket.create_connection(("127.0.0.1", live_server.port)) as sock:
        sock.sendall(b"POST /sessions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n" % len(body) + body[:20])
        time.sleep(0.5)  # the handler is waiting for the rest by now
        sock.sendall(body[20:])
        answer = _read_response(sock)
    assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
    assert httpx.get(f"{live_server.url}/sessions/parts").json()["session"]["session_name"] == "in parts"


def _read_response(sock: socket.socket) -> bytes:
    """One HTTP/1.1 response with a Content-Length, read whole."""
    sock.settimeout(10)
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, rest = data.partition(b"\r\n\r\n")
    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")))
    while len(rest) < length:
        rest += sock.recv(65536)
    return data


def test_sigterm_cuts_off_a_client_that_stopped_reading_after_graceful_timeout(live_server_factory):
    """Reported: an SSE client that does not read (its replay filled the socket buffers)
    kept a SIGTERM'd server up until the client went away, 80 s and more: Hypercorn
    awaits uvloop's wait_closed(), which waits for every connection, before its
    graceful_timeout starts, and a connection stuck in drain() never closes by itself."""
    server = live_server_factory({"GRACEFUL_TIMEOUT_SECONDS": "2"})
    _big_log(server, "big")
    stalled = _stalled_sse_client(server.port, "/v1/sessions/big/events")
    try:
        time.sleep(1.5)  # the replay is now waiting for this client to read
        started = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        server.proc.wait(EXIT_SECONDS)
        elapsed = time.monotonic() - started
    finally:
        stalled.close()
    assert elapsed < 2 + 3, f"took {elapsed:.1f} s to stop"
    assert "cut off 1 connection(s) whose client was not reading" in server.log()


def _stop_seconds(server) -> float:
    """SIGTERM, then how long the process took to exit."""
    started = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    server.proc.wait(EXIT_SECONDS)
    return time.monotonic() - started


# A graceful timeout far longer than a clean stop takes: a server that waits it out fails.
SLOW_GRACE = {"GRACEFUL_TIMEOUT_SECONDS": "8"}


def test_sigterm_tells_ws_clients_the_server_is_going_away(live_server_factory):
    """/ws clients get close code 1001 as soon as shutdown begins, and the process stops
    without waiting out graceful_timeout for their connections (Hypercorn's WebSocket
    ping task, app/hypercorn_fixes.py)."""
    import asyncio

    from websockets.asyncio.client import connect

    server = live_server_factory(SLOW_GRACE)

    async def feed_then_sigterm() -> tuple[int | None, float, float]:
        async with connect(f"ws://127.0.0.1:{server.port}/ws") as ws:
            await ws.recv()  # init
            started = time.monotonic()
            stopping = asyncio.get_running_loop().run_in_executor(None, _stop_seconds, server)
            try:
                while True:
                    await asyncio.wait_for(ws.recv(), 10)
            except Exception:
                pass
            closed_after = time.monotonic() - started
            return ws.close_code, closed_after, await stopping

    close_code, closed_after, stopped_after = asyncio.run(feed_then_sigterm())
    assert close_code == 1001
    assert closed_after < 2, f"the close came {closed_after:.1f} s after SIGTERM"
    assert stopped_after < 5, f"took {stopped_after:.1f} s to stop: it waited out graceful_timeout"
    assert "Traceback" not in server.log()


def test_a_ws_client_that_left_does_not_hold_up_the_stop(live_server_factory):
    """Reported: after one /ws client connected and closed normally, Ctrl-C took ~7 s and
    logged a CancelledError traceback. Hypercorn's ping task for the closed connection slept
    on (websocket_ping_interval, 20 s), and the connection waited for it."""
    import asyncio

    from websockets.asyncio.client import connect

    server = live_server_factory(SLOW_GRACE)

    async def visit() -> int | None:
        async with connect(f"ws://127.0.0.1:{server.port}/ws") as ws:
            await ws.recv()  # init
        return ws.close_code

    assert asyncio.run(visit()) == 1000
    stopped_after = _stop_seconds(server)
    assert stopped_after < 5, f"took {stopped_after:.1f} s to stop: it waited out graceful_timeout"
    assert "Traceback" not in server.log()


def test_sigterm_answers_a_waiting_invoke_and_stream_with_cancelled(live_server_factory, fake_llm):
    """Reported: an AgentSpec invoke waiting for its turn at SIGTERM waited out the whole
    graceful timeout, then got a bare 500 with an empty body (§9.7: 409 `cancelled`), and
    a /stream stopped without its terminal frame. Turns are cancelled as shutdown begins,
    while their callers can still be answered."""
    from concurrent.futures import ThreadPoolExecutor

    from tests.fakes import Hang
    from tests.helpers import FAKE_KEY

    env = {**SLOW_GRACE, "OPENAI_API_KEY": FAKE_KEY, "OPENAI_BASE_URL": fake_llm.openai_base_url,
           "OPENAI_MODEL": "fake-model"}
    server = live_server_factory(env)
    http = httpx.Client(base_url=server.url, timeout=30)
    agent = http.post("/v1/agents", json={"name": "slow", "system_prompt": "p"}).json()
    fake_llm.script(Hang(["Let me think"], seconds=60), Hang(["Still thinking"], seconds=60))

    def stream() -> list[str]:
        with http.stream("POST", f"/v1/agents/{agent['id']}/stream", json={"input": "go on"}) as response:
            return [line for line in response.iter_lines() if line.startswith(("event:", "data:"))]

    with ThreadPoolExecutor(2) as pool:
        invoked = pool.submit(http.post, f"/v1/agents/{agent['id']}/invoke", json={"input": "think"})
        streamed = pool.submit(stream)
        deadline = time.monotonic() + 15
        while len(fake_llm.requests) < 2:
            assert time.monotonic() < deadline, "the turns never reached the provider"
            time.sleep(0.05)
        stopped_after = _stop_seconds(server)
        response, frames = invoked.result(10), streamed.result(10)
    assert response.status_code == 409, response.text
    assert response.json()["error"]["code"] == "cancelled" and "server shutting down" in response.json()["error"]["message"]
    assert frames[-2] == "event: error" and '"code":"cancelled"' in frames[-1], frames[-4:]
    assert stopped_after < 5, f"took {stopped_after:.1f} s to stop: it waited out graceful_timeout"
    assert "Traceback" not in server.log()
