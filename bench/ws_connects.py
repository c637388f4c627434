"""Dashboard connects: N simultaneous `/ws` connects to a server holding many sessions,
while another process polls `GET /health`.

Setup: a fresh server (`python -m app serve`, new SQLite file, LOG_LEVEL=INFO, pinned as
the other benchmarks: bench/common.py pin()) is started once to create the schema and
stopped; `--sessions` external sessions (default 10,000; realistic names, project
directories and agent names, about 370 bytes each in the Agent Runtime shape) are then
written straight into its SQLite file in one transaction, in the format Tortoise writes,
and the server is started again on that file. (10,000 `POST /sessions` would take
minutes and measure something else.)

Each round (default 3): `--connects` WebSocket clients (default 50; the `websockets`
library with its defaults, which offer permessage-deflate as browsers do) start their
handshakes at the same moment; a client counts as connected when its first message, the
`init`, has arrived whole. Its bytes are kept, not parsed, so the client's own JSON work
does not delay the others. `connect` = from the common start to that client's init;
`all connected` = the slowest one. Meanwhile a separate process (this script with
`--poll-health`, pinned with the client, off the server's core) sends `GET /health` on a
keep-alive connection every 5 ms and records each response time; the samples that start
between the common start and the last init are "during connects". `/health` does no I/O,
so its latency is the time the server's event loop was busy with something else. The
same poller runs for 2 s before the first round ("idle").

Target: `/health` p99 under 100 ms during the 50 connects.

Run: .venv/bin/python bench/ws_connects.py [--sessions 10000] [--connects 50] [--rounds 3]
To compare with older code, copy this file into a worktree of it (`git worktree add
/tmp/before <commit>`) and run it there: it starts the server of the tree it is in.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import select
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from websockets.asyncio.client import connect  # noqa: E402

from bench.common import ROOT, LiveServer, pct, pin, placement, save_json, summary_ms, table  # noqa: E402

POLL_EVERY_S = 0.005
IDLE_S = 2.0


# --- the /health poller (its own process) ---------------------------------------------

def poll_health(port: int) -> None:
    """Until stdin closes: GET /health every POLL_EVERY_S on one keep-alive connection;
    then print [[start (monotonic s), response time (s)], ...] as JSON."""
    request = f"GET /health HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
    samples, sock = [], None
    print("ready", flush=True)
    while not select.select([sys.stdin], [], [], 0)[0]:
        t0 = time.monotonic()
        while True:
            if sock is None:
                sock = socket.create_connection(("127.0.0.1", port))
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.sendall(request)
            if get_response(sock):
                break
            sock.close()  # Hypercorn closes a keep-alive connection after 1000 requests: again on a new one
            sock = None
        samples.append([t0, time.monotonic() - t0])
        time.sleep(max(0.0, POLL_EVERY_S - (time.monotonic() - t0)))
    print(json.dumps(samples), flush=True)


def get_response(sock: socket.socket) -> bool:
    """Read one response with a Content-Length body; False when the server closed first."""
    buffer = b""
    while (end := buffer.find(b"\r\n\r\n")) < 0:
        if not (data := sock.recv(65536)):
            return False
        buffer += data
    head = buffer[:end].decode("latin-1").lower()
    length = int(head.split("content-length:", 1)[1].split("\r\n", 1)[0])
    while len(buffer) < end + 4 + length:
        if not (data := sock.recv(65536)):
            return False
        buffer += data
    return True


class HealthPoller:
    def start(self, port: int) -> HealthPoller:
        self.proc = subprocess.Popen([sys.executable, __file__, "--poll-health", str(port)], cwd=ROOT,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout.readline().strip() == "ready"
        return self

    def stop(self) -> list[tuple[float, float]]:
        try:  # closes stdin: the poller sees it readable (EOF) and reports
            out, _ = self.proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise
        return [tuple(s) for s in json.loads(out)]


# --- the server and its sessions ---------------------------------------------------

def insert_sessions(db: Path, count: int) -> None:
    """External sessions as POST /sessions makes them, a second apart, in Tortoise's
    SQLite format ("YYYY-MM-DD HH:MM:SS.ffffff+00:00")."""
    start = dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc)
    rows = []
    for i in range(count):
        when = str(start + dt.timedelta(seconds=i, microseconds=1 + i % 999_999))
        rows.append((f"claude-code-{i:06d}-3f9a1c2e", f"Refactor the billing module, run {i}", "[]", "running",
                     "{}", when, when, "claude-code", "external", f"/home/dev/projects/service-{i % 50:02d}", "{}"))
    with sqlite3.connect(db) as conn:
        conn.executemany('INSERT INTO sessions (id, title, tags, status, usage, created_at, updated_at, agent_name, '
                         'kind, project_dir, metadata) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)', rows)


def start_server(data_dir: Path, sessions: int) -> LiveServer:
    LiveServer({}, data_dir).start().stop()  # creates the schema
    insert_sessions(data_dir / "runtime.sqlite3", sessions)
    return LiveServer({}, data_dir).start()


# --- one round of connects -----------------------------------------------------------

async def dashboard(url: str, start: float, results: list, clients: list) -> None:
    ws = await connect(url, max_size=None)
    clients.append(ws)
    init = await ws.recv(decode=False)
    results.append((time.monotonic() - start, len(init), ws.response.headers.get("Sec-WebSocket-Extensions", "")))
    if b'"init"' not in init[:40]:
        raise RuntimeError(f"first message is not init: {init[:80]!r}")


async def connect_round(url: str, n: int) -> dict:
    results, clients = [], []
    t_start = time.monotonic()
    try:
        await asyncio.gather(*(dashboard(url, t_start, results, clients) for _ in range(n)))
        t_end = time.monotonic()
    finally:
        await asyncio.gather(*(ws.close() for ws in clients), return_exceptions=True)
    times = [r[0] for r in results]
    return {"start": t_start, "end": t_end, "connect_ms": summary_ms(times), "all_connected_s": max(times),
            "init_bytes": results[0][1], "extensions": results[0][2]}


async def run(sessions: int, connects: int, rounds: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-ws-") as tmp:
        server = start_server(Path(tmp), sessions)
        poller = None
        try:
            poller = HealthPoller().start(server.port)
            pin(server.proc.pid, poller.proc.pid)
            url = server.url.replace("http://", "ws://") + "/ws"
            await asyncio.sleep(IDLE_S)
            t_idle_end = time.monotonic()
            runs = []
            for _ in range(rounds):
                runs.append(await connect_round(url, connects))
                await asyncio.sleep(1)
            samples = poller.stop()
            poller = None
        finally:
            if poller is not None:
                poller.stop()
            server.stop()
    idle = [latency for t, latency in samples if t < t_idle_end]
    for r in runs:
        r["health_ms"] = summary_ms([latency for t, latency in samples if r["start"] <= t <= r["end"]])
    during = [latency for r in runs for t, latency in samples if r["start"] <= t <= r["end"]]
    cpus = placement("WebSocket clients and /health poller")
    return {"config": {"sessions": sessions, "connects": connects, "rounds": rounds, "cpus": cpus},
            "health_idle_ms": summary_ms(idle), "health_during_ms": summary_ms(during), "runs": runs}


def render(result: dict) -> str:
    rows = []
    for i, r in enumerate(result["runs"], 1):
        h = r["health_ms"]
        rows.append([f"round {i}", r["init_bytes"], r["connect_ms"]["p50"], r["all_connected_s"], h["n"], h["p50"],
                     h["p99"], h["max"]])
    idle, during = result["health_idle_ms"], result["health_during_ms"]
    rows.append(["all rounds", "", pct([r["connect_ms"]["p50"] for r in result["runs"]], 50),
                 max(r["all_connected_s"] for r in result["runs"]), during["n"], during["p50"], during["p99"], during["max"]])
    c = result["config"]
    lines = [f"{c['connects']} simultaneous /ws connects, {c['sessions']} sessions; {c['cpus']}",
             f"permessage-deflate: {result['runs'][0]['extensions'] or 'not negotiated'}",
             f"/health idle: p50 {idle['p50']:.2f} ms, p99 {idle['p99']:.2f} ms (n={idle['n']})", "",
             table(["ws connects", "init bytes", "connect p50 ms", "all connected s", "/health n", "/health p50 ms",
                    "/health p99 ms", "/health max ms"], rows), "",
             f"aim /health p99 < 100 ms during the connects: {during['p99']:.1f} ms -> "
             f"{'met' if during['p99'] < 100 else 'MISSED'}"]
    return "\n".join(lines)


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--poll-health":
        poll_health(int(sys.argv[2]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sessions", type=int, default=10_000)
    parser.add_argument("--connects", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", help="write results here (default bench/results/ws_connects.json)")
    args = parser.parse_args()
    result = asyncio.run(run(args.sessions, args.connects, args.rounds))
    print(render(result))
    print(f"\nresults: {save_json('ws_connects', result, args.json)}")


if __name__ == "__main__":
    main()
