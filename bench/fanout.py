"""Fan-out: one session's streamed answer delivered to N SSE subscribers at once.

For each N (default 100 and 1000) a fresh server (`python -m app serve`, new SQLite file,
LOG_LEVEL=INFO) is started; the fake OpenAI provider (bench/fake_provider.py) runs in its
own process and this process is only the client. Steps:

 1. Warm-up turn on the session with no subscriber (SDK client, model lookup, caches).
    Server RSS is read from /proc/<pid>/status (VmRSS): "idle".
 2. N raw SSE connections (non-blocking sockets, one GET each, `?since=<last sequence>`
    so only new events come) are opened in batches of 100 (the server's listen backlog);
    each counts as connected when its `retry:` line has arrived. RSS: "connected".
 3. The fake is scripted with `--chunks` unique chunks ("c000 ", "c001 ", ...) sent
    `--delay` s apart and one message is posted. Every read on every connection is kept
    raw with two times: the kernel's receive timestamp (SO_TIMESTAMPNS: when the bytes
    reached the client socket, i.e. when the server's send() ran on loopback) and when
    this process got to read them. Parsing happens afterwards. RSS "after turn" once all
    subscribers have `session.completed`; all disconnect; 2 s later RSS "after
    disconnect". Server and client CPU time over the turn are reported too.

Delivery latency of one `message.delta` to one subscriber (kernel receive times):
  * `fan-out spread` = arrival - earliest arrival of the same event (sequence) at any
    subscriber: the extra delay a subscriber sees because N others are served as well.
  * `chunk -> subscriber` = arrival - when the fake encoded the newest chunk the delta
    carries (the fake stamps chunks with the same CLOCK_MONOTONIC). End to end: provider
    HTTP, SDK parsing, the delta's DB write, bus, N SSE writes. It includes by design up
    to about one chunk interval of DELTA_FLUSH_MS coalescing (the runtime merges chunks
    into at most one delta per 50 ms; the newest chunk of a merged delta waited at most
    until the flush timer fired), but not the waiting of its older chunks. THE number
    compared with the aim.
  * `chunk -> first subscriber`: the same for the earliest subscriber only (no fan-out).
  * `client read delay` = when this process read the bytes - kernel receive time: what
    the measuring client itself would have added (not counted above).
Delivery must be complete: every subscriber must get every event of the turn (compared
with the durable log, GET .../events as JSON), in order, none twice.

Run: .venv/bin/python bench/fanout.py [--subscribers 100,1000] [--chunks 100] [--delay 0.01]
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402

from bench.common import (FakeProvider, KernelClock, Server, pin, placement, SSEParser, cpu_seconds, make_agent, new_session,  # noqa: E402
                          save_json, sse_request, start_profiler, stop_profiler, summary_ms, table, wait_until)

BATCH = 100


class Subscriber:
    """One SSE connection; on_readable keeps (kernel time, read time, bytes), nothing more."""

    def __init__(self, loop: asyncio.AbstractEventLoop, request: bytes, state: dict, clock: KernelClock):
        self.loop, self.request, self.state, self.clock = loop, request, state, clock
        self.reads: list[tuple[tuple[float, float], bytes]] = []
        self.ready = self.done = self.lost = False
        self.tail = b""

    async def connect(self, port: int) -> None:
        self.sock = self.clock.socket()
        await self.loop.sock_connect(self.sock, ("127.0.0.1", port))
        await self.loop.sock_sendall(self.sock, self.request)
        self.loop.add_reader(self.sock.fileno(), self.on_readable)

    def on_readable(self) -> None:
        try:
            data, t_kernel, t_read = self.clock.receive(self.sock)
        except BlockingIOError:
            return
        if not data:
            self.lost = True
            self.close()
            return
        self.reads.append(((t_kernel, t_read), data))
        if not self.ready and b"retry:" in data:
            self.ready = True
            self.state["ready"] += 1
        if not self.done and b"session.completed" in self.tail + data:
            self.done = True
            self.state["done"] += 1
        self.tail = data[-40:]

    def close(self) -> None:
        if self.sock.fileno() >= 0:
            self.loop.remove_reader(self.sock.fileno())
            self.sock.close()


async def run_one(n: int, fake: FakeProvider, chunks: int, delay: float, py_spy: str | None = None,
                  start_server=None) -> dict:
    """`start_server()`: another kind of server than the default Server (bench/temporal.py
    passes a started temporal-mode deployment; it is not pinned, and is stopped here)."""
    if start_server is None:
        server = Server().start()
        pin(server.proc.pid, fake.proc.pid)
    else:
        server = start_server()
    processes = getattr(server, "processes", None)  # per API process: connections, RSS
    snapshots = {}
    loop = asyncio.get_running_loop()
    subs: list[Subscriber] = []
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            async def log_after(after: int) -> list[dict]:  # the durable log, all pages
                events: list[dict] = []
                while True:
                    r = await http.get(f"/v1/sessions/{session_id}/events", params={"after": after, "limit": 500},
                                       headers={"Accept": "application/json"})
                    page = r.raise_for_status().json()
                    events += page["data"]
                    if len(page["data"]) < 500:
                        return events
                    after = page["next_after"]

            session_id = await new_session(http, await make_agent(http, fake.base_url))
            (await http.post(f"/v1/sessions/{session_id}/messages", json={"content": "warm up"})).raise_for_status()
            for _ in range(500):  # until the warm-up turn's session.completed is in the log
                events = await log_after(0)
                if events and events[-1]["type"] == "session.completed":
                    break
                await asyncio.sleep(0.02)
            else:
                raise RuntimeError(f"warm-up turn did not complete: {[e['type'] for e in events]}")
            since = events[-1]["sequence"]
            fake.log()
            await asyncio.sleep(1)
            rss_idle = server.rss_mib()
            if processes:
                snapshots["idle"] = processes()

            state = {"ready": 0, "done": 0}
            request, clock = sse_request(server.port, session_id, since), KernelClock()
            t_connect = time.monotonic()
            for start in range(0, n, BATCH):
                batch = [Subscriber(loop, request, state, clock) for _ in range(min(BATCH, n - start))]
                await asyncio.gather(*(s.connect(server.port) for s in batch))
                subs += batch
                await wait_until(lambda: state["ready"] == len(subs), 60, f"{len(subs)} subscribers to connect")
            connect_s = time.monotonic() - t_connect
            await asyncio.sleep(1)
            rss_connected = server.rss_mib()
            if processes:
                snapshots["connected"] = processes()

            fake.script([f"c{i:03d} " for i in range(chunks)], delay)
            profilers = [p for pid, suffix in server.profile_targets()
                         if (p := start_profiler(py_spy, pid, f"fanout-N{n}{suffix}")) is not None]
            await asyncio.sleep(1 if profilers else 0)  # py-spy attaches
            cpu0, client0, t_post = server.cpu_s(), cpu_seconds(), time.monotonic()
            (await http.post(f"/v1/sessions/{session_id}/messages", json={"content": "fan out"})).raise_for_status()
            await wait_until(lambda: state["done"] == n, 120, "every subscriber to get session.completed")
            turn_s, cpu_s = time.monotonic() - t_post, server.cpu_s() - cpu0
            client_s = cpu_seconds() - client0
            rss_after_turn = server.rss_mib()
            for profiler in profilers:
                stop_profiler(profiler)
            expected = [(e["sequence"], e["type"]) for e in await log_after(since)]
            dropped = sum(s.lost for s in subs)  # closed by the server before the end
            for s in subs:
                s.close()
            await asyncio.sleep(2)
            rss_after = server.rss_mib()
            chunk_times = {text.strip(): t for r in fake.log() for text, t in r["chunks"]}
    finally:
        for s in subs:
            s.close()
        server.stop()

    arrivals: dict[int, list[float]] = {}  # delta sequence -> kernel arrival times
    newest_chunk: dict[int, float] = {}
    read_delay, received, complete = [], [], 0
    for s in subs:
        parser = SSEParser()
        frames = [f for t, data in s.reads for f in parser.feed(data, t)]
        got = [(seq, kind) for _, seq, kind, _ in frames]
        complete += got == expected
        received.append(len(got))
        for (t_kernel, t_read), seq, kind, data in frames:
            if kind == "message.delta":
                arrivals.setdefault(seq, []).append(t_kernel)
                read_delay.append(t_read - t_kernel)
                newest_chunk[seq] = chunk_times[data["delta"].split()[-1]]
    return {
        **({"api_processes": snapshots} if snapshots else {}),
        "subscribers": n, "chunks": chunks, "delay_s": delay, "connect_s": connect_s, "turn_s": turn_s,
        "server_cpu_s": cpu_s, "client_cpu_s": client_s, "events_expected": len(expected),
        "deltas_expected": sum(kind == "message.delta" for _, kind in expected),
        "events_received_min": min(received), "events_received_max": max(received),
        "subscribers_complete": complete, "subscribers_dropped": dropped,
        "rss_mib": {"idle": rss_idle, "connected": rss_connected, "after_turn": rss_after_turn,
                    "after_disconnect": rss_after},
        "latency_ms": {
            "fan-out spread": summary_ms([t - min(ts) for ts in arrivals.values() for t in ts]),
            "chunk -> subscriber": summary_ms([t - newest_chunk[seq] for seq, ts in arrivals.items() for t in ts]),
            "chunk -> first subscriber": summary_ms([min(ts) - newest_chunk[seq] for seq, ts in arrivals.items()]),
            "client read delay": summary_ms(read_delay),
        },
    }


async def run(subscribers: list[int], chunks: int = 100, delay: float = 0.01, py_spy: str | None = None,
              start_server=None) -> dict:
    """`start_server(n)`: see run_one (None: a fresh Server per N, pinned)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = max(subscribers) * 2 + 1000  # client sockets; the server child inherits the limit too
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))
    fake = FakeProvider().start()
    try:
        runs = [await run_one(n, fake, chunks, delay, py_spy, start_server and (lambda: start_server(n)))
                for n in subscribers]
    finally:
        fake.stop()
    cpus = placement() if start_server is None else "not pinned"
    return {"config": {"subscribers": subscribers, "chunks": chunks, "delay_s": delay, "cpus": cpus}, "runs": runs}


def render(result: dict) -> str:
    rows = [[f"N={r['subscribers']} {name}", s["n"], s["p50"], s["p90"], s["p99"], s["max"]]
            for r in result["runs"] for name, s in r["latency_ms"].items()]
    out = [table(["fan-out delivery (ms)", "n", "p50", "p90", "p99", "max"], rows), ""]
    rows = []
    for r in result["runs"]:
        m = r["rss_mib"]
        rows.append([f"N={r['subscribers']}", f"{r['subscribers_complete']}/{r['subscribers']}",
                     f"{r['events_received_min']}..{r['events_received_max']}/{r['events_expected']}",
                     r["deltas_expected"], r["connect_s"], r["turn_s"], r["server_cpu_s"], r["client_cpu_s"],
                     m["idle"], m["connected"], m["after_turn"], m["after_disconnect"]])
    out.append(table(["fan-out", "complete subs", "events/sub", "deltas", "connect s", "turn s", "server cpu s",
                      "client cpu s", "RSS idle MiB", "RSS conn", "RSS turn", "RSS after"], rows))
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--subscribers", default="100,1000", help="comma-separated N values")
    parser.add_argument("--chunks", type=int, default=100)
    parser.add_argument("--delay", type=float, default=0.01, help="seconds between the fake's chunks")
    parser.add_argument("--py-spy", help="path of a py-spy binary: profile the server during each turn "
                        "(bench/results/fanout-N<n>.folded); adds sampling overhead, so not for the numbers")
    parser.add_argument("--json", help="write results here (default bench/results/fanout.json)")
    args = parser.parse_args()
    result = asyncio.run(run([int(x) for x in args.subscribers.split(",")], args.chunks, args.delay, args.py_spy))
    print(render(result))
    print(f"\nresults: {save_json('fanout', result, args.json)}")


if __name__ == "__main__":
    main()
