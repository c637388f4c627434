"""`python -m app serve` in a subprocess on a free loopback port: for tests that talk to
a real server, and for the benchmarks."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
# A developer's own provider keys or database must not leak into a test server.
NOT_INHERITED = ("OPENAI_", "ANTHROPIC_", "AUTH_", "OAUTH_", "DATABASE_URL", "JWT_SECRET", "SECRETS_KEY")

def accepts_tcp(host: str, port: int, timeout: float = 0.5) -> bool:
    """Whether something listens there (to skip tests, or to wait for a server)."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def terminate(proc: subprocess.Popen | None, timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL if it has not exited within `timeout` seconds."""
    if proc and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def until(condition: Callable[[], bool], timeout: float, what: str = "condition") -> float:
    """Poll `condition` until it holds; how many seconds that took (AssertionError after `timeout`)."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(0.05)
    return time.monotonic() - started


@contextlib.contextmanager
def report_session(url: str, session_id: str, events: Iterable[dict]) -> Iterator[httpx.Client]:
    """An Agent Runtime session reported to the server at `url` with `events` (each its
    event_type and hook fields; session_id, session_name and timestamp are added); then
    the client, to read it back with."""
    with httpx.Client(base_url=url, timeout=30) as http:
        http.post("/sessions", json={"session_id": session_id, "session_name": "reported"}).raise_for_status()
        for event in events:
            http.post(f"/sessions/{session_id}/events", json={
                "session_id": session_id, "session_name": "reported", "timestamp": "2026-01-01T00:00:00Z",
                **event}).raise_for_status()
        yield http


def sse_listener(url: str) -> tuple[threading.Event, threading.Event]:
    """Read the SSE stream at `url` on a thread: (opened, ended). `ended` is set only when
    the response completed cleanly (a stream cut off raises on the thread instead)."""
    opened, ended = threading.Event(), threading.Event()

    def listen() -> None:
        with httpx.stream("GET", url, timeout=None) as stream:
            for _ in stream.iter_bytes():
                opened.set()
        ended.set()

    threading.Thread(target=listen, daemon=True).start()
    return opened, ended


class LiveServer:
    """`python -m app serve` in a subprocess, bound to a free loopback port."""

    def __init__(self, env: dict[str, str], data_dir: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = data_dir / "server.log"
        inherited = {k: v for k, v in os.environ.items() if not k.startswith(NOT_INHERITED)}
        # A short graceful timeout: a test's server stops without waiting out the 5 s a
        # browser's (or any client's) lingering connection would otherwise cost.
        self.env = {**inherited, "BIND": f"127.0.0.1:{self.port}", "DATA_DIR": str(data_dir),
                    "LOG_LEVEL": "INFO", "GRACEFUL_TIMEOUT_SECONDS": "0.5", **env}
        self.proc: subprocess.Popen | None = None
        self._log_file = None

    def start(self, timeout: float = 20.0) -> LiveServer:
        return self.launch().wait_ready(timeout)

    def launch(self) -> LiveServer:
        """Start the process without waiting for it (see tests/cluster.py: several start at once)."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log_file = open(self.log_path, "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "app", "serve"], cwd=ROOT, env=self.env,
                                     stdout=self._log_file, stderr=subprocess.STDOUT)
        return self

    def wait_ready(self, timeout: float = 20.0) -> LiveServer:
        assert self.proc is not None, "launch() first"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log_path.read_text()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=0.5).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError(f"server did not start:\n{self.log_path.read_text()}")

    def stop(self) -> None:
        terminate(self.proc)
        if self._log_file is not None:
            self._log_file.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def held_connections(self) -> set[int]:
        """The client ports of the TCP connections to this server that its process holds
        open (Linux /proc). One the server has closed is gone from here at once, even while
        the kernel still holds data it was sent, so a test need not read to find out."""
        assert self.proc is not None, "launch() first"
        sockets = set()
        for fd in Path(f"/proc/{self.proc.pid}/fd").iterdir():
            with contextlib.suppress(OSError):  # closed meanwhile
                if (target := os.readlink(fd)).startswith("socket:["):
                    sockets.add(target[len("socket:["):-1])
        held = set()
        for table in ("tcp", "tcp6"):
            for line in Path(f"/proc/{self.proc.pid}/net/{table}").read_text().splitlines()[1:]:
                local, remote, inode = (fields := line.split())[1], fields[2], fields[9]
                if int(local.rsplit(":", 1)[1], 16) == self.port and inode in sockets:
                    if client_port := int(remote.rsplit(":", 1)[1], 16):  # 0: the listening socket
                        held.add(client_port)
        return held
