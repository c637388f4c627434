"""REST request path: requests/s of plain REST routes with wrk, side by side with a bare
Quart app (the reference) and, optionally, an anchor (the original Agent Runtime server).

Servers, each in its own process, all pinned to the last CPU (wrk and this process on the
others, as the other benchmarks: bench/common.py pin(); BENCH_PIN=0 disables):
  * bare Quart: bench/bare_quart.py (`GET /health` only) under Hypercorn with our
    hypercorn.toml (uvloop worker class, access log on, keep-alive 75 s);
  * ours: `python -m app serve` (bench/common.py Server: fresh SQLite file, LOG_LEVEL=INFO,
    access log on, as `make run`; extra environment passes through);
  * the anchor (--anchor URL of a running one, or --anchor-cmd to start one on {port}).
Seeded over HTTP: external session `bench-ar` with 100 hook events; an Everruns session
with 100 messages (50 turns against bench/fake_provider.py); a second Everruns session
whose model's provider is a loopback port that accepts and never answers, so its first
turn hangs and each further POST .../messages only stores the message and queues a turn.
(The server gives up on a provider after LLM_TIMEOUT_SECONDS, 60 s, and the next queued
turn then hangs the same way, so there is always a turn running ahead.)

Each route: `wrk -t2 -c16 -d<duration>s --latency` (POSTs from a Lua script, the same
body each time); --rounds rounds (default 2) cycle through all routes; the table shows
the median req/s, each round's figure, wrk's p50/p99 of the last round, non-2xx and socket
errors (a route with any is marked "!!"), the ratio to bare Quart, and to the anchor,
and the CPU time each server spent per request (all its threads and child processes,
from /proc): steadier than req/s on a shared machine, where neighbours take the cores.

Deep sessions (--deep, default on): before our server starts, two external sessions
with 1,000 and 100,000 events (and as many messages) are written straight into its SQLite
file in the format the API writes (as bench/ws_connects.py does for sessions); measured:
the events page from the middle (`?after=<middle>&limit=100`, wrk), the /v1 messages
page from the middle (`?offset=<middle>&limit=100`, wrk), `GET /v1/sessions/<id>` (which
shows the session's turn count, half its messages; wrk) and an SSE resume from the middle
(`GET /v1/sessions/<id>/events` with Last-Event-ID, time to the 100th event, median of
20 tries with httpx). A deep log should cost the same as a short one.

--py-spy PATH: after the timed rounds, one more pass over our routes with py-spy sampling
the server, into bench/results/rest-<route>.folded (collapsed stacks).

Run: .venv/bin/python bench/rest_path.py [--duration 5] [--rounds 2] [--no-deep] [--py-spy PATH]
         [--anchor-cmd "cd /tmp/anchor && venv/bin/uvicorn anchor:app --port {port}"]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import re
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402

from bench.common import (ROOT, FakeProvider, LiveServer, Server, cpu_seconds_tree, cpu_split, make_agent,  # noqa: E402
                          new_session, pin, placement, save_json, start_profiler, stop_profiler, table)
from tests.live_server import accepts_tcp, free_port  # noqa: E402

HOOK_TYPES = ("pre_tool", "post_tool", "message")
AR = "bench-ar"
DEEP = {"deep-1k": 1_000, "deep-100k": 100_000}
SSE_TRIES = 20
SSE_PAUSE_S = 0.3  # between tries: an abandoned replay goes on in the server for a while (see sse_resume_ms)


def hook_event(session_id: str, i: int) -> dict:
    """A small hook event, cycling pre_tool / post_tool / message."""
    kind = HOOK_TYPES[i % 3]
    body = {"event_type": kind, "session_id": session_id, "session_name": "bench",
            "timestamp": f"2025-01-01T00:{i // 60 % 60:02d}:{i % 60:02d}Z"}
    if kind == "message":
        body.update(role="assistant", content=[{"type": "text", "text": f"Done with step {i}."}])
    else:
        body.update(tool_name="Bash", tool_input={"command": f"ls -la src/{i}"})
        if kind == "post_tool":
            body["tool_output"] = "main.py\nutil.py"
    return body


# --- processes ---------------------------------------------------------------------

def on_server_cpu() -> None:
    """preexec_fn: a started server (and anything its shell starts) on the server's CPU."""
    if split := cpu_split():
        os.sched_setaffinity(0, split[0])


def start_proc(cmd: str, port: int, log: Path, env: dict | None = None) -> subprocess.Popen:
    """A shell command in its own process group (so stop_proc ends all of it), pinned."""
    proc = subprocess.Popen(cmd, shell=True, cwd=ROOT, env={**os.environ, **(env or {})}, stdout=open(log, "ab"),
                            stderr=subprocess.STDOUT, preexec_fn=on_server_cpu, start_new_session=True)
    deadline = time.monotonic() + 30
    while not accepts_tcp("127.0.0.1", port):
        if proc.poll() is not None or time.monotonic() > deadline:
            stop_proc(proc)
            raise RuntimeError(f"{cmd!r} did not start:\n{log.read_text()}")
        time.sleep(0.1)
    return proc


def stop_proc(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def black_hole() -> socket.socket:
    """A loopback port that accepts connections (the kernel does, into the backlog) and
    never answers: a provider there makes a turn hang."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    return sock


# --- seeding -----------------------------------------------------------------------

def insert_deep_sessions(db: Path) -> None:
    """External sessions with many events, rows as POST /sessions and POST .../events
    write them (Tortoise's formats: timestamps "YYYY-MM-DD HH:MM:SS.ffffff+00:00", data
    as compact JSON with session_id first)."""
    start = dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc)
    stamp = lambda i: (start + dt.timedelta(milliseconds=i)).strftime("%Y-%m-%d %H:%M:%S.%f+00:00")  # noqa: E731
    with sqlite3.connect(db) as conn:
        for sid, count in DEEP.items():
            conn.execute('INSERT INTO sessions (id, title, tags, status, usage, created_at, updated_at, kind, metadata) '
                         "VALUES (?, 'bench', '[]', 'running', '{}', ?, ?, 'external', '{}')", (sid, stamp(0), stamp(count)))
            rows = []
            for i in range(1, count + 1):
                body = hook_event(sid, i)
                data = {"session_id": sid, **{k: v for k, v in body.items() if k not in ("event_type", "session_id")}}
                rows.append((sid, i, body["event_type"], json.dumps(data, separators=(",", ":")), stamp(i)))
            conn.executemany("INSERT INTO events (session_id, sequence, type, data, created_at) VALUES (?, ?, ?, ?, ?)", rows)
            # As many messages, as record_message stores them (ids as text, content as compact JSON).
            conn.executemany("INSERT INTO messages (id, session_id, sequence, role, content, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                             ((str(uuid.uuid4()), sid, i, "user" if i % 2 else "assistant",
                               json.dumps({"text": f"message {i}"}, separators=(",", ":")), stamp(i)) for i in range(1, count + 1)))


async def seed_ar(http: httpx.AsyncClient) -> None:
    """bench-ar with 100 hook events (ours and the anchor take the same requests)."""
    (await http.post("/sessions", json={"session_id": AR, "session_name": "bench"})).raise_for_status()
    for i in range(100):
        (await http.post(f"/sessions/{AR}/events", json=hook_event(AR, i))).raise_for_status()
    events = (await http.get(f"/sessions/{AR}/events")).raise_for_status().json()["events"]
    if len(events) != 100:
        raise RuntimeError(f"GET /sessions/{AR}/events returned {len(events)} events, not 100")


async def turn_done(http: httpx.AsyncClient, session_id: str, messages: int) -> bool:
    """The turn's reply is stored and the session is idle again."""
    if (await http.get(f"/v1/sessions/{session_id}")).json()["status"] == "running":
        return False
    return (await http.get(f"/v1/sessions/{session_id}/messages?limit=1")).json()["total"] == messages


async def seed_everruns(http: httpx.AsyncClient, fake_url: str, hole_port: int) -> tuple[str, str]:
    """(a session with 100 messages, a session whose turns hang)."""
    agent = await make_agent(http, fake_url)
    chat = await new_session(http, agent)
    for i in range(50):
        (await http.post(f"/v1/sessions/{chat}/messages", json={"content": f"question {i}"})).raise_for_status()
        deadline = time.monotonic() + 15
        while not await turn_done(http, chat, 2 * (i + 1)):
            if time.monotonic() > deadline:
                raise TimeoutError(f"turn {i} did not finish")
            await asyncio.sleep(0.01)
    page = (await http.get(f"/v1/sessions/{chat}/messages?limit=100")).json()
    if len(page["data"]) != 100:
        raise RuntimeError(f"messages page has {len(page['data'])} items, not 100")
    provider = (await http.post("/v1/llm-providers", json={
        "name": "black-hole", "provider_type": "openai", "base_url": f"http://127.0.0.1:{hole_port}/v1",
        "api_key": "sk-x"})).raise_for_status().json()
    model = (await http.post(f"/v1/llm-providers/{provider['id']}/models", json={"model_id": "hang"})).raise_for_status().json()
    hang = (await http.post(f"/v1/agents/{agent}/sessions", json={"model_id": model["id"]})).raise_for_status().json()["id"]
    (await http.post(f"/v1/sessions/{hang}/messages", json={"content": "first"})).raise_for_status()
    await asyncio.sleep(0.5)
    if (await http.get(f"/v1/sessions/{hang}")).json()["status"] != "running":
        raise RuntimeError("the hanging session's first turn is not running")
    return chat, hang


# --- wrk ---------------------------------------------------------------------------

UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def wrk(url: str, duration: float, body: dict | None, tmp: Path) -> dict:
    """One wrk run (inherits this process's CPUs: off the server's core)."""
    cmd = ["wrk", "-t2", "-c16", f"-d{duration:g}s", "--latency"]
    if body is not None:
        script = tmp / f"post-{abs(hash(url))}.lua"
        # [==[ ]==]: a Lua long string, so the JSON needs no escaping
        script.write_text(f'wrk.method = "POST"\nwrk.body = [==[{json.dumps(body)}]==]\n'
                          'wrk.headers["Content-Type"] = "application/json"\n')
        cmd += ["-s", str(script)]
    out = subprocess.run(cmd + [url], capture_output=True, text=True, timeout=duration + 30).stdout
    latency = {p: float(v) * UNITS[u] for p, v, u in re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)$", out, re.M)}
    socket_errors = sum(map(int, re.findall(r"(?:connect|read|write|timeout) (\d+)", out)))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if rps is None:
        raise RuntimeError(f"wrk output not understood:\n{out}")
    return {"rps": float(rps.group(1)), "p50_ms": latency.get("50"), "p99_ms": latency.get("99"),
            "non2xx": int(non2xx.group(1)) if non2xx else 0, "socket_errors": socket_errors,
            "requests": int(re.search(r"(\d+) requests in", out).group(1))}


def wrk_with_cpu(url: str, duration: float, body: dict | None, tmp: Path, pid: int | None) -> dict:
    """wrk(), plus the CPU time the server (all its threads and child processes) spent per request:
    steadier than req/s on a shared machine, whose neighbours take turns on the cores."""
    before = cpu_seconds_tree(pid) if pid else None
    result = wrk(url, duration, body, tmp)
    if before is not None and result["requests"]:
        result["cpu_us_per_request"] = (cpu_seconds_tree(pid) - before) / result["requests"] * 1e6
    return result


# --- SSE resume ----------------------------------------------------------------------

async def sse_resume_ms(base: str, session_id: str, after: int) -> float:
    """Median time from sending the request to holding the 100th replayed event."""
    times = []
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        for _ in range(SSE_TRIES):
            seen, t0 = 0, time.monotonic()
            async with http.stream("GET", f"/v1/sessions/{session_id}/events", headers={
                    "Accept": "text/event-stream", "Last-Event-ID": str(after)}) as response:
                response.raise_for_status()
                async for line in response.aiter_lines():
                    seen += line.startswith("id:")
                    if seen == 100:
                        break
            times.append((time.monotonic() - t0) * 1000)
            # The server goes on replaying the stream just left for a moment (for the
            # 100k session, up to 50k events); back to back, the next try would pay for
            # it: 48 / 93 ms (1k / 100k) instead of 29 / 29 ms on the first test machine.
            await asyncio.sleep(SSE_PAUSE_S)
    return statistics.median(times)


# --- the run -------------------------------------------------------------------------

async def run(args) -> dict:
    tmp_dir = tempfile.TemporaryDirectory(prefix="bench-rest-")
    tmp = Path(tmp_dir.name)
    procs: list[subprocess.Popen] = []
    server, fake, hole = Server(), FakeProvider().start(), black_hole()
    try:
        if args.deep:  # schema first (the server runs the migrations), then the rows, then the real start
            server.start()
            LiveServer.stop(server)  # not Server.stop: that would remove the data directory
            insert_deep_sessions(Path(server.tmp.name) / "runtime.sqlite3")
        server.start()
        pin(server.proc.pid, fake.proc.pid)  # also moves this process (and so wrk) off the server's CPU
        bare_port = free_port()
        procs.append(start_proc(f"exec {sys.executable} -m hypercorn -c hypercorn.toml -k uvloop -b 127.0.0.1:{bare_port} "
                                "bench.bare_quart:app", bare_port, tmp / "bare.log"))
        anchor = args.anchor
        if args.anchor_cmd:
            port = free_port()
            procs.append(start_proc(args.anchor_cmd.format(port=port), port, tmp / "anchor.log",
                                    {"ANCHOR_DB": str(tmp / "anchor.sqlite3")}))
            anchor = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            await seed_ar(http)
            chat, hang = await seed_everruns(http, fake.base_url, hole.getsockname()[1])
            for sid, n in DEEP.items() if args.deep else ():  # the rows written directly are served whole
                page = (await http.get(f"/sessions/{sid}/events?after={n // 2}&limit=100")).raise_for_status().json()
                if [e["sequence"] for e in page["events"]] != list(range(n // 2 + 1, n // 2 + 101)):
                    raise RuntimeError(f"{sid}: the events page from the middle is not events {n // 2 + 1}..{n // 2 + 100}")
                page = (await http.get(f"/v1/sessions/{sid}/messages?offset={n // 2}&limit=100")).raise_for_status().json()
                if [m["sequence"] for m in page["data"]] != list(range(n // 2 + 1, n // 2 + 101)) or page["total"] != n:
                    raise RuntimeError(f"{sid}: the messages page from the middle is not messages {n // 2 + 1}..{n // 2 + 100} of {n}")
        if anchor:
            async with httpx.AsyncClient(base_url=anchor, timeout=30) as http:
                await seed_ar(http)

        ours, bare = server.url, f"http://127.0.0.1:{bare_port}"
        post_ar = hook_event(AR, 1)
        routes = [  # (label, base URL, path, POST body or None)
            ("bare Quart GET /health", bare, "/health", None),
            ("GET /health", ours, "/health", None),
            ("GET /sessions/{id}", ours, f"/sessions/{AR}", None),
            ("GET /v1/sessions/{id}", ours, f"/v1/sessions/{chat}", None),
            ("GET /sessions/{id}/events (100)", ours, f"/sessions/{AR}/events?limit=100", None),
            ("GET /v1/sessions/{id}/messages (100)", ours, f"/v1/sessions/{chat}/messages?limit=100", None),
            ("POST /sessions/{id}/events", ours, f"/sessions/{AR}/events", post_ar),
            ("POST /v1/sessions/{id}/messages (turn hangs)", ours, f"/v1/sessions/{hang}/messages", {"content": "more"}),
        ]
        if anchor:
            routes += [("anchor GET /sessions/{id}", anchor, f"/sessions/{AR}", None),
                       ("anchor GET /sessions/{id}/events (100)", anchor, f"/sessions/{AR}/events", None),
                       ("anchor POST /sessions/{id}/events", anchor, f"/sessions/{AR}/events", post_ar)]
        if args.deep:
            routes += [(f"{sid} GET events ?after={n // 2}&limit=100", ours, f"/sessions/{sid}/events?after={n // 2}&limit=100", None)
                       for sid, n in DEEP.items()]
            routes += [(f"{sid} GET /v1 messages ?offset={n // 2}&limit=100", ours, f"/v1/sessions/{sid}/messages?offset={n // 2}&limit=100", None)
                       for sid, n in DEEP.items()]
            routes += [(f"{sid} GET /v1/sessions/{{id}} (turns: {n // 2})", ours, f"/v1/sessions/{sid}", None)
                       for sid, n in DEEP.items()]
        runs: dict[str, list[dict]] = {label: [] for label, *_ in routes}
        pids = {ours: server.proc.pid, bare: procs[0].pid, anchor: procs[1].pid if args.anchor_cmd else None}
        for r in range(args.rounds):
            for label, base, path, body in routes:
                runs[label].append(wrk_with_cpu(base + path, args.duration, body, tmp, pids[base]))
                print(f"round {r + 1}: {label}: {runs[label][-1]['rps']:.0f} req/s", file=sys.stderr, flush=True)
        if args.py_spy:  # an extra, untimed pass: sampling slows the server, so it is not in the table
            for label, base, path, body in routes:
                if base == ours:
                    slug = re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")
                    profiler = start_profiler(args.py_spy, server.proc.pid, f"rest-{slug}")
                    await asyncio.sleep(1)  # py-spy attaches
                    wrk_with_cpu(base + path, args.duration, body, tmp, pids[base])
                    stop_profiler(profiler)
        sse = {sid: await sse_resume_ms(ours, sid, n // 2) for sid, n in DEEP.items()} if args.deep else {}
    finally:
        for proc in procs:
            stop_proc(proc)
        server.stop()
        fake.stop()
        hole.close()
        tmp_dir.cleanup()
    return {"config": {"duration_s": args.duration, "rounds": args.rounds, "wrk": "-t2 -c16 --latency",
                       "anchor": args.anchor_cmd or args.anchor, "cpus": placement("wrk")},
            "routes": {label: {"rps_median": statistics.median(x["rps"] for x in rs), "runs": rs} for label, rs in runs.items()},
            "sse_resume_100_ms": sse}


def render(result: dict) -> str:
    routes = result["routes"]
    rps = lambda label: routes[label]["rps_median"] if label in routes else None  # noqa: E731
    hello = rps("bare Quart GET /health")
    anchor_of = {"GET /sessions/{id}": "anchor GET /sessions/{id}",
                 "GET /sessions/{id}/events (100)": "anchor GET /sessions/{id}/events (100)",
                 "POST /sessions/{id}/events": "anchor POST /sessions/{id}/events"}
    rows = []
    for label, r in routes.items():
        last = r["runs"][-1]
        errors = sum(x["non2xx"] + x["socket_errors"] for x in r["runs"])
        vs_anchor = rps(anchor_of[label]) if label in anchor_of else None
        cpu = [x["cpu_us_per_request"] for x in r["runs"] if "cpu_us_per_request" in x]
        rows.append([("!! " if errors else "") + label, r["rps_median"], " ".join(f"{x['rps']:.0f}" for x in r["runs"]),
                     f"{statistics.median(cpu):.0f}" if cpu else "",
                     last["p50_ms"], last["p99_ms"], sum(x["non2xx"] for x in r["runs"]),
                     sum(x["socket_errors"] for x in r["runs"]), r["rps_median"] / hello,
                     f"{r['rps_median'] / vs_anchor:.2f}" if vs_anchor else ""])
    c = result["config"]
    lines = [f"wrk {c['wrk']} -d{c['duration_s']:g}s, {c['rounds']} round(s); {c['cpus']}",
             "p50/p99: wrk's, last round; !! = a route with non-2xx responses or socket errors",
             "CPU us/req: the server's CPU time (all threads and child processes) per request, median of the rounds", "",
             table(["route", "req/s (median)", "each round", "CPU us/req", "p50 ms", "p99 ms", "non-2xx", "socket err",
                    "x bare", "x anchor"], rows)]

    def aim(text: str, value: float, limit: float) -> str:
        return f"{text}: {value:.2f} (aim >= {limit}) {'met' if value >= limit else 'MISSED'}"
    aims = [aim("ours GET /health / bare hello", rps("GET /health") / hello, 0.9),
            aim("GET /sessions/{id} / bare hello", rps("GET /sessions/{id}") / hello, 0.8),
            aim("GET /v1/sessions/{id} / bare hello", rps("GET /v1/sessions/{id}") / hello, 0.8)]
    if (anchor_page := rps("anchor GET /sessions/{id}/events (100)")) and (anchor_post := rps("anchor POST /sessions/{id}/events")):
        aims += [aim("events page / anchor events page", rps("GET /sessions/{id}/events (100)") / anchor_page, 3),
                 aim("/v1 messages page / anchor events page", rps("GET /v1/sessions/{id}/messages (100)") / anchor_page, 3),
                 aim("POST events / anchor POST events", rps("POST /sessions/{id}/events") / anchor_post, 2),
                 aim("/v1 message create / anchor POST events", rps("POST /v1/sessions/{id}/messages (turn hangs)") / anchor_post, 2)]
    if sse := result["sse_resume_100_ms"]:
        deep = [rps(label) for label in routes if label.startswith("deep-") and " events " in label]
        aims.append(aim("deep events page from the middle, 100k / 1k events", deep[1] / deep[0], 0.9))
        deep = [rps(label) for label in routes if label.startswith("deep-") and " messages " in label]
        aims.append(aim("deep /v1 messages page from the middle, 100k / 1k messages", deep[1] / deep[0], 0.9))
        deep = [rps(label) for label in routes if label.startswith("deep-") and "/v1/sessions/" in label]
        aims.append(aim("deep GET /v1/sessions/{id} (its turn count), 100k / 1k messages", deep[1] / deep[0], 0.9))
        lines += ["", "SSE resume from the middle (Last-Event-ID), time to 100 events, median of "
                  f"{SSE_TRIES}: " + ", ".join(f"{sid} {ms:.1f} ms" for sid, ms in sse.items()) +
                  f" (100k / 1k time: {sse['deep-100k'] / sse['deep-1k']:.2f})"]
    return "\n".join(lines + ["", "aims:", *("  " + a for a in aims)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=5, help="seconds per wrk run (default 5)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--deep", action=argparse.BooleanOptionalAction, default=True,
                        help="also the 1k / 100k events sessions (default on)")
    parser.add_argument("--anchor", help="URL of a running anchor server (seeded by this script)")
    parser.add_argument("--anchor-cmd", help="shell command starting an anchor on {port}; started, pinned, seeded, stopped")
    parser.add_argument("--py-spy", help="path of a py-spy binary: after the timed rounds, profile our server on each "
                        "route into bench/results/rest-<route>.folded")
    parser.add_argument("--json", help="write results here (default bench/results/rest_path-<timestamp>.json)")
    args = parser.parse_args()
    result = asyncio.run(run(args))
    print(render(result))
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    print(f"\nresults: {save_json(f'rest_path-{stamp}', result, args.json)}")


if __name__ == "__main__":
    main()
