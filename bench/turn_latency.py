"""Turn latency: POST a user message -> first `message.delta` frame at an SSE client.

Setup: the server (`python -m app serve`, fresh SQLite file, LOG_LEVEL=INFO as deployed,
access log on) and the fake OpenAI provider (bench/fake_provider.py) each run in their
own process; this process is only the client. The fake answers at once ("echo: <text>",
two chunks, no delay), so nearly all of the measured time belongs to the runtime.

Per turn: t0 = just before the POST /v1/sessions/{id}/messages bytes are written (raw
keep-alive HTTP/1.1 connection, no client library in the way); t1 = when the bytes that
completed the turn's first `message.delta` frame reached the client's socket on an SSE
connection to the same session (the kernel's receive timestamp, SO_TIMESTAMPNS, so the
client's own delay in reading is not counted). The next turn starts after `session.completed`.

Sessions: a new session every `--per-session` turns (default 10), each with its own SSE
connection opened (and confirmed by its `retry:` line) before the first timed turn. One
session for all 200 turns would grow the history the runtime loads and sends each turn
(up to 400 messages), which measures history size rather than per-turn overhead; a new
session per turn would be the cleanest but least like a chat. Ten turns per session keep
the history small (at most 19 earlier messages) while still exercising a reused session
and a long-lived SSE stream. `--warmup` turns (default 10, their own session) run first
and are not counted (first use of the SDK client, SQLite page cache, imports).

Provider share, two ways:
  * `provider (fake internal)`: the fake (a raw asyncio server, bench/fake_provider.py)
    notes when the read completing the request arrived (t_req) and when it wrote the
    first content chunk (t_chunk); the runtime can do nothing about
    t_chunk - t_req. Because CLOCK_MONOTONIC is shared by all processes on Linux, the turn
    also splits into `runtime before provider` (t_req - t0: HTTP, DB writes, turn start-up,
    building and sending the SDK request) and `runtime after provider` (t1 - t_chunk: SDK
    stream parsing, the delta's DB write, bus, SSE write, client read).
    `runtime overhead` = total - provider internal, per turn.
  * `provider SDK TTFB (direct)`: the same openai SDK called directly from this process
    against the fake (streamed, time to the first content chunk), the cost a client would
    pay for the provider alone, HTTP round trip included.

Phases 1-7 split each turn at the server's `created_at` stamps of its user
`message.created`, `session.started`, `step.started` and first `message.delta` events
(read back from the log afterwards) and at the fake's t_req and t_chunk.

Run: .venv/bin/python bench/turn_latency.py [--turns 200] [--per-session 10] [--warmup 10]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402
import openai  # noqa: E402

from bench.common import (FakeProvider, KernelClock, RawPoster, Server, pin, placement, SSEParser, make_agent, new_session,  # noqa: E402
                          save_json, sse_request, start_profiler, stop_profiler, summary_ms, table)

TURN_TIMEOUT = 15.0


class LiveSSE:
    """One SSE stream; frames go to a queue stamped with the kernel's receive time of the
    bytes that completed them (SO_TIMESTAMPNS), so this process's own delays in getting
    to the read are not counted."""

    def __init__(self, port: int, session_id: str):
        self.loop = asyncio.get_running_loop()
        self.port, self.request = port, sse_request(port, session_id, 0)
        self.parser = SSEParser()
        self.frames: asyncio.Queue = asyncio.Queue()
        self.ready = self.loop.create_future()
        self.clock = KernelClock()

    async def connect(self) -> LiveSSE:
        self.sock = self.clock.socket()
        await self.loop.sock_connect(self.sock, ("127.0.0.1", self.port))
        await self.loop.sock_sendall(self.sock, self.request)
        self.loop.add_reader(self.sock.fileno(), self.on_readable)
        await asyncio.wait_for(self.ready, 10)
        return self

    def on_readable(self) -> None:
        try:
            data, t, _ = self.clock.receive(self.sock)
        except BlockingIOError:
            return
        if not data:
            self.close()
            return
        for frame in self.parser.feed(data, t):
            self.frames.put_nowait(frame)
        if not self.ready.done() and b"retry:" in data:
            self.ready.set_result(t)

    def close(self) -> None:
        if self.sock.fileno() >= 0:
            self.loop.remove_reader(self.sock.fileno())
            self.sock.close()


async def open_sse(port: int, session_id: str) -> LiveSSE:
    return await LiveSSE(port, session_id).connect()


async def one_turn(poster: RawPoster, sse: LiveSSE, session_id: str, text: str) -> tuple[str, float, float]:
    while not sse.frames.empty():  # nothing stale may count as this turn's delta
        sse.frames.get_nowait()
    t0 = time.monotonic()
    poster.send(f"/v1/sessions/{session_id}/messages", {"content": text})
    status, body = await poster.response()
    if status != 201:
        raise RuntimeError(f"POST message: {status} {body!r}")
    t1 = None
    while True:
        t, _, kind, data = await sse.frames.get()
        if kind == "message.delta" and t1 is None:
            if not data.get("delta", "").startswith("echo"):
                raise RuntimeError(f"unexpected delta {data!r}")
            t1 = t
        elif kind in ("session.failed", "session.cancelled"):
            raise RuntimeError(f"turn ended with {kind}: {data}")
        elif kind == "session.completed":
            if t1 is None:
                raise RuntimeError("turn completed without a message.delta")
            return session_id, t0, t1


async def run_turns(http: httpx.AsyncClient, poster: RawPoster, port: int, agent_id: str,
                    turns: int, per_session: int, pause: float = 0.0) -> list[tuple[str, float, float]]:
    """`pause`: seconds to wait after a turn's session.completed before the next POST."""
    times: list[tuple[str, float, float]] = []
    sse = None
    for i in range(turns):
        if i % per_session == 0:
            if sse is not None:
                sse.close()
            session_id = await new_session(http, agent_id)
            sse = await open_sse(port, session_id)
        if pause and i:
            await asyncio.sleep(pause)
        times.append(await asyncio.wait_for(one_turn(poster, sse, session_id, f"hi {i}"), TURN_TIMEOUT))
    sse.close()
    return times


async def event_stamps(http: httpx.AsyncClient, times: list[tuple[str, float, float]]) -> list[dict[str, float]]:
    """Per timed turn: when the server stamped (created_at, wall clock, converted to this
    process's monotonic clock) its user message.created, session.started, step.started and
    first message.delta events. created_at is taken as the INSERT is built: after the
    sequence UPDATE+SELECT, before the INSERT and COMMIT."""
    offset = time.time() - time.monotonic()
    stamps: list[dict[str, float]] = []
    for session_id in dict.fromkeys(sid for sid, _, _ in times):  # sessions in order
        r = await http.get(f"/v1/sessions/{session_id}/events", params={"limit": 500},
                           headers={"Accept": "application/json"})
        for e in r.raise_for_status().json()["data"]:
            t = datetime.fromisoformat(e["created_at"]).timestamp() - offset
            if e["type"] == "message.created" and e["data"].get("role") == "user":
                stamps.append({"user": t})
            elif e["type"] in ("session.started", "step.started", "message.delta"):
                stamps[-1].setdefault(e["type"], t)
    return stamps


async def provider_baseline(base_url: str, count: int) -> list[float]:
    client = openai.AsyncOpenAI(base_url=base_url, api_key="sk-x", max_retries=0)
    ttfb = []
    try:
        for i in range(count + 5):  # 5 warm-up calls
            messages = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": f"hi {i}"}]
            t0 = time.monotonic()
            stream = await client.chat.completions.create(model="m", messages=messages, stream=True,
                                                          stream_options={"include_usage": True})
            first = None
            async for chunk in stream:
                if first is None and chunk.choices and chunk.choices[0].delta.content:
                    first = time.monotonic()
            if i >= 5:
                ttfb.append(first - t0)
    finally:
        await client.close()
    return ttfb


async def run(turns: int = 200, per_session: int = 10, warmup: int = 10, log_level: str = "INFO",
              py_spy: str | None = None) -> dict:
    fake = FakeProvider().start()
    server = Server(log_level=log_level)
    try:
        server.start()
        pin(server.proc.pid, fake.proc.pid)
        measured = await measure(server.url, server.port, fake, turns, per_session, warmup,
                                 lambda: [start_profiler(py_spy, server.proc.pid, "turn_latency")])
    finally:
        server.stop()
        fake.stop()
    return {
        "config": {"turns": turns, "per_session": per_session, "warmup": warmup, "log_level": log_level,
                   "cpus": placement()},
        "rows": rows(measured),
    }


async def measure(url: str, port: int, fake: FakeProvider, turns: int, per_session: int, warmup: int,
                  start_profilers=None, snapshot=None, pause: float = 0.0) -> dict:
    """Agent, provider baseline, warm-up turns, then the timed turns against a running server:
    {"times": [(session_id, t0, t1)], "requests": the fake's log, "stamps": event_stamps(),
    "baseline": provider_baseline()}. `start_profilers()` -> profilers (or Nones) to run
    during the timed turns only; `await snapshot()` is taken just before and just after
    the timed turns (e.g. CPU times), kept as "snapshots". `pause`: see run_turns (timed
    turns only)."""
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        agent_id = await make_agent(http, fake.base_url)
        baseline = await provider_baseline(fake.base_url, turns)
        fake.log()
        poster = await RawPoster().connect(port)
        await run_turns(http, poster, port, agent_id, warmup, warmup)
        fake.log()
        profilers = [p for p in (start_profilers() if start_profilers else []) if p is not None]
        await asyncio.sleep(1 if profilers else 0)  # py-spy attaches
        before = await snapshot() if snapshot else None
        times = await run_turns(http, poster, port, agent_id, turns, per_session, pause)
        after = await snapshot() if snapshot else None
        for profiler in profilers:
            stop_profiler(profiler)
        requests = fake.log()
        poster.close()
        stamps = await event_stamps(http, times)
    if len(requests) != turns:
        raise RuntimeError(f"expected {turns} provider requests, the fake saw {len(requests)}")
    return {"times": times, "requests": requests, "stamps": stamps, "baseline": baseline, "snapshots": [before, after]}


def rows(measured: dict) -> dict[str, dict[str, float]]:
    """The table's rows (summaries in ms) from measure()'s raw times."""
    times, requests, stamps, baseline = measured["times"], measured["requests"], measured["stamps"], measured["baseline"]
    t0s, t1s = [t0 for _, t0, _ in times], [t1 for _, _, t1 in times]
    t_req, t_chunk = [r["t_req"] for r in requests], [r["chunks"][0][1] for r in requests]
    total = [b - a for a, b in zip(t0s, t1s)]
    provider = [b - a for a, b in zip(t_req, t_chunk)]
    overhead = [t - p for t, p in zip(total, provider)]
    marks = [t0s, [s["user"] for s in stamps], [s["session.started"] for s in stamps],
             [s["step.started"] for s in stamps], t_req, t_chunk, [s["message.delta"] for s in stamps], t1s]
    names = ["  1 POST -> user message.created", "  2 -> session.started", "  3 -> step.started",
             "  4 -> provider got request", "  5 provider (fake internal)", "  6 first chunk -> message.delta",
             "  7 message.delta -> SSE client"]
    phases = {name: summary_ms([b - a for a, b in zip(marks[i], marks[i + 1])]) for i, name in enumerate(names)}
    return {
        "total (POST -> first delta)": summary_ms(total),
        "runtime before provider": summary_ms([b - a for a, b in zip(t0s, t_req)]),
        "provider (fake internal)": summary_ms(provider),
        "runtime after provider": summary_ms([b - a for a, b in zip(t_chunk, t1s)]),
        "runtime overhead (total - provider)": summary_ms(overhead),
        "provider SDK TTFB (direct)": summary_ms(baseline),
        **phases,
    }


def render(result: dict) -> str:
    rows = [[name, s["n"], s["p50"], s["p90"], s["p99"], s["max"]] for name, s in result["rows"].items()]
    return table(["turn latency (ms)", "n", "p50", "p90", "p99", "max"], rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--turns", type=int, default=200)
    parser.add_argument("--per-session", type=int, default=10, help="turns per session (new session + SSE after)")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--log-level", default="INFO", help="the server's LOG_LEVEL")
    parser.add_argument("--py-spy", help="path of a py-spy binary: profile the server during the timed turns "
                        "(bench/results/turn_latency.folded); adds overhead, so not for the numbers")
    parser.add_argument("--json", help="write results here (default bench/results/turn_latency.json)")
    args = parser.parse_args()
    result = asyncio.run(run(args.turns, args.per_session, args.warmup, args.log_level, args.py_spy))
    print(render(result))
    print(f"\nresults: {save_json('turn_latency', result, args.json)}")


if __name__ == "__main__":
    main()
