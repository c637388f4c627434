"""Shared pieces of the benchmarks: the server and fake-provider subprocesses, a raw
HTTP/1.1 client (POST with keep-alive, SSE over chunked transfer encoding), statistics
and table printing. Only loopback addresses are used."""

from __future__ import annotations

import asyncio
import json
import os
import resource
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.live_server import ROOT, LiveServer  # noqa: E402  (the same server the tests start)

RESULTS = ROOT / "bench" / "results"


CPUS = sorted(os.sched_getaffinity(0))  # read before this process pins itself


def cpu_split() -> tuple[set[int], set[int]] | None:
    """(the server's CPU, everyone else's): the last CPU for the server, or None when not
    pinning (BENCH_PIN=0, or fewer than 2 CPUs)."""
    if os.environ.get("BENCH_PIN", "1") == "0" or len(CPUS) < 2:
        return None
    return {CPUS[-1]}, set(CPUS[:-1])


def placement(others: str = "client and fake provider") -> str:
    split = cpu_split()
    if split is None:
        return "not pinned"
    server, rest = split
    return f"server on CPU {min(server)}, {others} on CPU {','.join(map(str, sorted(rest)))}"


def pin(server_pid: int, *client_pids: int) -> None:
    """Keep the load generator off the server's core: every thread of the server on the
    last CPU, this process and the fake provider on the others. Unpinned, the scheduler
    now and then puts the measuring client on the server's core, and the server's
    latency then includes the client's work (runs varied by about 2 ms p50)."""
    split = cpu_split()
    if split is None:
        return
    server, others = split
    for tid in os.listdir(f"/proc/{server_pid}/task"):
        os.sched_setaffinity(int(tid), server)
    for pid in (0, *client_pids):
        os.sched_setaffinity(pid, others)


class Server(LiveServer):
    """`python -m app serve` on a fresh SQLite file in a temporary DATA_DIR."""

    def __init__(self, log_level: str = "INFO", env: dict[str, str] | None = None):
        self.tmp = tempfile.TemporaryDirectory(prefix="bench-")
        super().__init__({"LOG_LEVEL": log_level, **(env or {})}, Path(self.tmp.name))

    def start(self, timeout: float = 20.0) -> Server:
        """Started, and done with start-up work: the server answers before it has imported
        the provider SDKs (on a thread, about 3 s here), and measuring during that import
        would measure the import."""
        super().start(timeout)
        deadline = time.monotonic() + 30
        while "provider SDKs imported" not in self.log() and time.monotonic() < deadline:
            time.sleep(0.1)
        return self

    def rss_mib(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def cpu_s(self) -> float:
        """CPU time the server has used so far."""
        return cpu_seconds(self.proc.pid)

    def profile_targets(self) -> list[tuple[int, str]]:
        """(pid, file name suffix) of each process worth profiling."""
        return [(self.proc.pid, "")]

    def stop(self) -> None:
        super().stop()
        self.tmp.cleanup()


class FakeProvider:
    """bench/fake_provider.py in a subprocess, driven over its stdin/stdout."""

    def start(self) -> FakeProvider:
        self.proc = subprocess.Popen([sys.executable, str(ROOT / "bench" / "fake_provider.py")], cwd=ROOT,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if not line.startswith("PORT "):
            raise RuntimeError(f"fake provider did not start: {line!r}")
        self.base_url = f"http://127.0.0.1:{int(line.split()[1])}/v1"
        return self

    def _call(self, **command) -> dict:
        self.proc.stdin.write(json.dumps(command) + "\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def script(self, chunks: list[str], delay: float = 0.0) -> None:
        self._call(cmd="script", chunks=chunks, delay=delay)

    def log(self) -> list[dict]:
        """Requests since the last call: {"t_req": t, "chunks": [[text, t], ...]} (monotonic seconds)."""
        return self._call(cmd="log")["requests"]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


async def make_agent(http: httpx.AsyncClient, fake_base_url: str) -> str:
    """Default provider (the fake) + default model + an agent; returns the agent id."""
    provider = (await http.post("/v1/llm-providers", json={
        "name": "fake", "provider_type": "openai", "base_url": fake_base_url,
        "api_key": "sk-x", "is_default": True})).raise_for_status().json()
    (await http.post(f"/v1/llm-providers/{provider['id']}/models",
                     json={"model_id": "m", "is_default": True})).raise_for_status()
    agent = (await http.post("/v1/agents", json={"name": "bench", "system_prompt": "You are terse."}))
    return agent.raise_for_status().json()["id"]


async def new_session(http: httpx.AsyncClient, agent_id: str) -> str:
    return (await http.post(f"/v1/agents/{agent_id}/sessions", json={})).raise_for_status().json()["id"]


class RawPoster:
    """One keep-alive HTTP/1.1 connection for timed JSON POSTs (less client overhead than httpx)."""

    async def connect(self, port: int) -> RawPoster:
        self.port = port
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", port)
        return self

    def send(self, path: str, body: dict) -> None:
        data = json.dumps(body).encode()
        head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(data)}\r\n\r\n").encode()
        self.writer.write(head + data)

    async def response(self) -> tuple[int, bytes]:
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        length = next(int(l.split(":", 1)[1]) for l in lines if l.lower().startswith("content-length:"))
        return int(lines[0].split()[1]), await self.reader.readexactly(length)

    def close(self) -> None:
        self.writer.close()


def sse_request(port: int, session_id: str, since: int) -> bytes:
    return (f"GET /v1/sessions/{session_id}/events?since={since} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            "Accept: text/event-stream\r\n\r\n").encode()


class SSEParser:
    """Incremental parser: HTTP response head, chunked body, SSE frames.

    `feed(data, t)` returns the complete frames as (t, sequence, type, data) where t is
    the arrival time of the read that completed the frame; `retry:` and comments are
    skipped (frames without an `id:`)."""

    def __init__(self):
        self.raw = b""
        self.body = b""
        self.head: bytes | None = None
        self.chunked = False

    def feed(self, data: bytes, t: float) -> list[tuple[float, int, str, dict]]:
        self.raw += data
        if self.head is None:
            end = self.raw.find(b"\r\n\r\n")
            if end < 0:
                return []
            self.head, self.raw = self.raw[:end], self.raw[end + 4:]
            if not self.head.startswith(b"HTTP/1.1 200"):
                raise RuntimeError(f"SSE request failed: {self.head!r}")
            self.chunked = b"transfer-encoding: chunked" in self.head.lower()
        if self.chunked:
            while (eol := self.raw.find(b"\r\n")) >= 0:
                size = int(self.raw[:eol].split(b";")[0], 16)
                if len(self.raw) < eol + 2 + size + 2:
                    break
                self.body += self.raw[eol + 2:eol + 2 + size]
                self.raw = self.raw[eol + 2 + size + 2:]
        else:
            self.body, self.raw = self.body + self.raw, b""
        frames = []
        while (end := self.body.find(b"\n\n")) >= 0:
            block, self.body = self.body[:end], self.body[end + 2:]
            fields = dict(line.split(": ", 1) for line in block.decode().split("\n") if ": " in line)
            if "id" in fields:
                frames.append((t, int(fields["id"]), fields.get("event", "message"), json.loads(fields.get("data", "{}"))))
        return frames


class KernelClock:
    """Receive with the kernel's timestamp of when the bytes reached the socket
    (SO_TIMESTAMPNS, CLOCK_REALTIME), converted to time.monotonic(): what the server
    did, without the measuring client's own delay in getting to the read."""

    SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # Linux value; Python does not export it
    CMSG_SIZE = socket.CMSG_SPACE(16)

    def __init__(self):
        self.offset = time.time() - time.monotonic()

    def socket(self) -> socket.socket:
        sock = socket.socket()
        sock.setblocking(False)
        sock.setsockopt(socket.SOL_SOCKET, self.SO_TIMESTAMPNS, 1)
        return sock

    def receive(self, sock: socket.socket) -> tuple[bytes, float, float]:
        """(data, kernel time, read time); raises BlockingIOError when nothing is there."""
        data, ancillary, _, _ = sock.recvmsg(65536, self.CMSG_SIZE)
        t_read = t_kernel = time.monotonic()
        for level, kind, raw in ancillary:
            if level == socket.SOL_SOCKET and kind == self.SO_TIMESTAMPNS:
                sec, nsec = struct.unpack("qq", raw[:16])
                t_kernel = sec + nsec / 1e9 - self.offset
        return data, t_kernel, t_read


async def wait_until(check, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


def cpu_seconds(pid: int | None = None) -> float:
    """CPU time (user + system) of a process, or of this one."""
    if pid is None:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_seconds_tree(pid: int) -> float:
    """CPU time of a process and of the processes it started (Hypercorn's workers run in
    a child of the `hypercorn` command), those still running."""
    total = cpu_seconds(pid)
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            try:
                total += cpu_seconds_tree(int(child))
            except FileNotFoundError:  # ended meanwhile
                pass
    return total


def start_profiler(py_spy: str | None, pid: int, name: str) -> subprocess.Popen | None:
    """Optional: sample a process with py-spy into bench/results/<name>.folded (collapsed stacks)."""
    if not py_spy:
        return None
    RESULTS.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen([py_spy, "record", "--pid", str(pid), "--rate", "250", "--format", "raw", "--nonblocking",
                             "--output", str(RESULTS / f"{name}.folded")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop_profiler(profiler: subprocess.Popen | None) -> None:
    if profiler is not None:
        profiler.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
        profiler.wait(30)


def pct(values: list[float], p: float) -> float:
    """Percentile with linear interpolation (p in 0..100)."""
    if not values:
        return float("nan")
    s = sorted(values)
    k = (len(s) - 1) * p / 100
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def summary_ms(values_s: list[float]) -> dict[str, float]:
    ms = [v * 1000 for v in values_s]
    return {"n": len(ms), "p50": pct(ms, 50), "p90": pct(ms, 90), "p99": pct(ms, 99), "max": max(ms, default=float("nan"))}


def table(headers: list[str], rows: list[list]) -> str:
    def cell(v) -> str:
        return f"{v:.2f}" if isinstance(v, float) else str(v)
    cells = [[cell(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    fmt = lambda r: "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))  # noqa: E731
    return "\n".join([fmt(headers), "  ".join("-" * w for w in widths), *(fmt(r) for r in cells)])


def save_json(name: str, data: dict, path: str | None) -> Path:
    out = Path(path) if path else RESULTS / f"{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data, indent=2))
    return out
