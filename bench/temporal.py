"""Benchmarks of RUNNER_MODE=temporal: turn latency, fan-out over two API workers, and
Agent Runtime event ingest with WORKERS=1 vs WORKERS=2.

Each run starts its own deployment (bench/temporal_cluster.py): a fresh PostgreSQL
database (dropped at the end), a Temporal dev server, Redis (a private redis-server unless
--redis-url), API servers (`python -m app serve`) and `python -m app worker` processes,
all on loopback; everything is stopped at the end, also on failure or SIGTERM. Nothing
is pinned to a CPU: a deployment is 5+ processes on 2 cores.

1. turn: bench/turn_latency.py's measurement (raw keep-alive POST, t1 = the kernel's
   receive timestamp of the first `message.delta` frame at an SSE client, the raw fake
   provider, `runtime overhead` = total - the fake's own time) against one API process and
   `--workers` Temporal workers. The phases of a turn come from three clocks, all on this
   machine: the server's event stamps (created_at), the fake's, and the Temporal history
   of each session's workflow (event times of the signal, the workflow task that schedules
   the model_step activity, and that activity's start). As in-process, the next POST goes
   right after `session.completed`, when the workflow may still be finishing the previous
   turn (its finish_turn activity, a last workflow task); the overhead is also split by
   whether it was (from the history), and `--pause S` waits S seconds between turns
   instead. Also reported over the timed turns: CPU time per turn of each process group
   (API, Temporal worker, Temporal dev server, Redis, this database's PostgreSQL backends,
   this client and the fake, the rest of the machine), and the dev server's matching
   counters for the task queue (tasks handed to a waiting poll at once, or via backlog).
2. fanout: bench/fanout.py's measurement (N SSE subscribers, kernel timestamps, every
   subscriber must get every event of the turn, in order) with the API server at
   WORKERS=`--fanout-api-workers` (default 2; one port, the kernel hands each connection to
   whichever worker accepts it first) and the turn run by a Temporal worker. Reported per
   API process: established connections on the API port (from /proc/net/tcp and each
   process's fds) and RSS.
3. ingest: `POST /sessions/{id}/events` (a `post_tool` hook event of about 300 bytes) from
   a closed-loop load generator in this process (`--concurrency` raw keep-alive HTTP/1.1
   connections, each sending its next request when the previous answer arrived, over
   `--sessions` external sessions made with POST /sessions first), for `--ingest-warmup`
   + `--ingest-seconds` s per measurement, against WORKERS=1 and WORKERS=2 on the same
   database, alternated `--ingest-rounds` times (1, 2, 1, 2, ...). No Temporal worker runs
   (ingest never reaches one). Reported: req/s (answers completed within the measured
   window), latency, how busy the machine's CPUs were and by whom (CPU ms per request of
   the API processes, PostgreSQL backends, Temporal, Redis, the load generator and the rest
   of the machine: on a shared machine "rest" shows other people's load), and a check that
   the database holds exactly one event per 200 answer.

`--py-spy PATH` profiles the API and worker processes during the timed turns, the
fan-out turn and the first ingest round (bench/results/*.folded); not for the numbers.

Run: .venv/bin/python bench/temporal.py [--only turn,fanout,ingest] [--turns 200] ...
     .venv/bin/python bench/run_all.py --temporal   (this, then the combined table with the aims)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402

from bench import fanout, turn_latency  # noqa: E402
from bench.common import (FakeProvider, cpu_seconds, save_json, start_profiler, stop_profiler, summary_ms,  # noqa: E402
                          table)  # noqa: E402
from bench.temporal_cluster import (PG_ADMIN_URL, Deployment, Infra, connections_by_pid, exit_on_sigterm,  # noqa: E402
                                    machine_cpu, stop_all)

OVERHEAD = "runtime overhead (total - provider)"


# --- 1. turn latency ----------------------------------------------------------------

async def turn_bench(infra: Infra, turns: int, per_session: int, warmup: int, workers: int,
                     py_spy: str | None, pause: float = 0.0) -> dict:
    fake = FakeProvider().start()
    deployment = Deployment(infra, api_workers=1, workers=workers, name="turn")
    try:
        deployment.start()
        profile = lambda: [start_profiler(py_spy, pid, f"temporal-turn{suffix}")  # noqa: E731
                           for pid, suffix in deployment.profile_targets()]
        groups = {}

        async def snapshot() -> dict:  # CPU seconds per group of processes, and the machine's
            if not groups:
                groups.update({"API": deployment.api_pids(), "Temporal worker": deployment.worker_pids(),
                               **infra.service_pids(), "PostgreSQL": await pg_backends(infra.db_name),
                               "bench client + fake": [os.getpid(), fake.proc.pid]})
            return {"cpu": {k: cpu_of(v) for k, v in groups.items()}, "machine": machine_cpu(), "t": time.monotonic(),
                    "matching": infra.matching_metrics(deployment.task_queue)}

        measured = await turn_latency.measure(deployment.url, deployment.port, fake, turns, per_session, warmup,
                                              profile, snapshot, pause)
        marks = await workflow_marks(infra.temporal.address, measured["times"])
    except BaseException:
        print(deployment.logs(), file=sys.stderr)
        raise
    finally:
        deployment.stop()
        fake.stop()
    rows = {k: v for k, v in turn_latency.rows(measured).items() if not k.startswith("  ")}
    times, requests, stamps = measured["times"], measured["requests"], measured["stamps"]
    t0s, t1s = [t0 for _, t0, _ in times], [t1 for _, _, t1 in times]
    t_req, t_chunk = [r["t_req"] for r in requests], [r["chunks"][0][1] for r in requests]
    overhead = [(b - a) - (d - c) for a, b, c, d in zip(t0s, t1s, t_req, t_chunk)]
    first = [i % per_session == 0 for i in range(len(times))]  # the session's first turn starts its workflow
    rows[f"  overhead, first turn of a session ({sum(first)}: workflow start)"] = \
        summary_ms([o for o, f in zip(overhead, first) if f])
    rows[f"  overhead, later turns ({len(first) - sum(first)}: signal to a running workflow)"] = \
        summary_ms([o for o, f in zip(overhead, first) if not f])
    chain = [
        ("POST -> user message.created", t0s),
        ("-> signal in Temporal history", [s["user"] for s in stamps]),
        ("-> workflow task scheduling model_step started", [m["signal"] for m in marks]),
        ("-> that workflow task completed", [m["wt_started"] for m in marks]),
        ("-> model_step activity started", [m["wt_completed"] for m in marks]),
        ("-> session.started (activity)", [m["activity_started"] for m in marks]),
        ("-> step.started", [s["session.started"] for s in stamps]),
        ("-> provider got request", [s["step.started"] for s in stamps]),
        ("provider (fake internal)", t_req),
        ("first chunk -> message.delta stored", t_chunk),
        ("message.delta -> SSE client (Redis, API)", [s["message.delta"] for s in stamps]),
        (None, t1s),
    ]
    per_turn = [{"first_of_session": f, "local_activities": m["local_activities"], "overhead_ms": round(1000 * o, 3),
                 "previous_turn_busy_ms": round(1000 * m["previous_busy"], 3)} for f, o, m in zip(first, overhead, marks)]
    busy = [m["previous_busy"] > 0.0005 for m in marks]
    rows[f"  overhead, workflow still busy with the previous turn at the signal ({sum(busy)})"] = \
        summary_ms([o for o, b in zip(overhead, busy) if b])
    rows[f"  overhead, workflow idle at the signal ({len(busy) - sum(busy)})"] = \
        summary_ms([o for o, b in zip(overhead, busy) if not b])
    for i in range(len(chain) - 1):
        name, start = chain[i]
        end = chain[i + 1][1]
        rows[f"  {i + 1:>2} {name}"] = summary_ms([b - a for a, b in zip(start, end)])
        for turn, a, b in zip(per_turn, start, end):
            turn[f"{i + 1} {name}"] = round(1000 * (b - a), 3)
    before, after = measured["snapshots"]
    cpu = {k: after["cpu"][k] - before["cpu"][k] for k in before["cpu"]}
    cpu["rest of machine"] = (after["machine"][0] - before["machine"][0]) / os.sysconf("SC_CLK_TCK") - sum(cpu.values())
    elapsed = after["t"] - before["t"]
    matching = {k: v - before["matching"].get(k, 0.0) for k, v in after["matching"].items()}
    extra = {"local activity (earlier_messages) in the workflow task":
             [m["local_activities"] for m in marks], "workflow tasks per turn": [m["workflow_tasks"] for m in marks]}
    return {"config": {"turns": turns, "per_session": per_session, "warmup": warmup, "pause_s": pause, "api_workers": 1,
                       "temporal_workers": workers, "cpus": "not pinned"},
            "rows": rows,
            "cpu_ms_per_turn": {k: 1000 * v / len(times) for k, v in cpu.items()},
            "machine_busy_pct": 100 * sum(cpu.values()) / elapsed / (os.cpu_count() or 1),
            "per_turn_ms": per_turn,
            "matching": matching_summary(matching),
            "turn_shape": {k: {"min": min(v), "max": max(v), "mean": statistics.fmean(v)} for k, v in extra.items()}}


async def workflow_marks(temporal_address: str, times: list[tuple[str, float, float]]) -> list[dict]:
    """Per timed turn, from its session workflow's history (Temporal server's wall clock,
    as this process's monotonic clock): when the signal (or signal-with-start) was
    recorded; when the workflow task that scheduled the turn's model_step activity
    started and completed on a worker; and when that activity started. The k-th signal of
    a session is its k-th turn (turns run one after another).

    `previous_busy`: how long after the signal the workflow was still finishing the
    previous turn (its finish_turn activity completing, or a workflow task in flight:
    a signal that arrives during one is written after it), 0 if it was idle."""
    from temporalio.api.enums.v1 import EventType as T
    from temporalio.client import Client

    offset = time.time() - time.monotonic()
    seconds = lambda e: e.event_time.seconds + e.event_time.nanos / 1e9 - offset  # noqa: E731
    client = await Client.connect(temporal_address)
    marks: list[dict] = []
    for session_id in dict.fromkeys(sid for sid, _, _ in times):
        history = await client.get_workflow_handle(f"session:{session_id}").fetch_history()
        events = list(history.events)
        started_at = {e.activity_task_started_event_attributes.scheduled_event_id: seconds(e)
                      for e in events if e.event_type == T.EVENT_TYPE_ACTIVITY_TASK_STARTED}
        signals = [i for i, e in enumerate(events) if e.event_type == T.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED]
        for k, i in enumerate(signals):
            end = signals[k + 1] if k + 1 < len(signals) else len(events)
            window = range(i + 1, end)
            step = next(j for j in window if events[j].event_type == T.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
                        and events[j].activity_task_scheduled_event_attributes.activity_type.name == "model_step")
            done = next(j for j in range(step, i, -1) if events[j].event_type == T.EVENT_TYPE_WORKFLOW_TASK_COMPLETED)
            began = next(j for j in range(done, i, -1) if events[j].event_type == T.EVENT_TYPE_WORKFLOW_TASK_STARTED)
            signal = seconds(events[i])
            tail = [seconds(e) for e in events[:i]]  # recorded before the signal (buffered), yet later
            tail += [seconds(events[j]) for j in range(i + 1, began)
                     if events[j].event_type == T.EVENT_TYPE_ACTIVITY_TASK_COMPLETED]  # the previous finish_turn
            marks.append({
                "signal": signal, "wt_started": seconds(events[began]), "wt_completed": seconds(events[done]),
                "activity_started": started_at[events[step].event_id],
                "previous_busy": max(0.0, max(tail, default=signal) - signal),
                "local_activities": sum(events[j].event_type == T.EVENT_TYPE_MARKER_RECORDED for j in range(done, step)),
                "workflow_tasks": sum(events[j].event_type == T.EVENT_TYPE_WORKFLOW_TASK_STARTED for j in window)})
    if len(marks) != len(times):
        raise RuntimeError(f"{len(times)} turns but {len(marks)} signals in the workflow histories")
    return marks


def matching_summary(deltas: dict[str, float]) -> dict[str, dict]:
    """Per task type and partition (sticky or not): tasks handed to the worker's polls,
    how many at once to a waiting poll (sync match) and the mean latencies."""
    out: dict[str, dict] = {}
    for key, value in deltas.items():
        name, task_type, partition = key.split(" ")
        where = f"{task_type} {'sticky' if partition == '__sticky__' else 'normal'}"
        entry = out.setdefault(where, {})
        entry[name] = entry.get(name, 0.0) + value
    for entry in out.values():
        for kind in ("syncmatch", "asyncmatch"):
            count = entry.pop(f"{kind}_latency_count", 0.0)
            total = entry.pop(f"{kind}_latency_sum", 0.0)
            if count:
                entry[f"{kind} n"] = count
                entry[f"{kind} mean ms"] = round(1000 * total / count, 2)
    return out


def render_turn(result: dict) -> str:
    rows = [[name, s["n"], s["p50"], s["p90"], s["p99"], s["max"]] for name, s in result["rows"].items()]
    out = table(["temporal turn latency (ms)", "n", "p50", "p90", "p99", "max"], rows)
    shape = ", ".join(f"{k}: {v['min']}..{v['max']} (mean {v['mean']:.2f})" for k, v in result["turn_shape"].items())
    cpu = " / ".join(f"{v:.1f}" for v in result["cpu_ms_per_turn"].values())
    matching = "; ".join(f"{where}: " + ", ".join(f"{k} {v:g}" for k, v in entry.items())
                         for where, entry in result.get("matching", {}).items())
    return (f"{out}\nper turn: {shape}\nTemporal matching over the timed turns: {matching}\nCPU ms per timed turn ({' / '.join(result['cpu_ms_per_turn'])}): {cpu}; "
            f"machine CPU busy {result['machine_busy_pct']:.0f}%")


# --- 2. fan-out ---------------------------------------------------------------------

async def fanout_bench(infra: Infra, subscribers: list[int], chunks: int, delay: float, api_workers: int,
                       workers: int, py_spy: str | None) -> dict:
    def start(n: int) -> Deployment:
        deployment = Deployment(infra, api_workers=api_workers, workers=workers, name=f"fanout{n}")
        try:
            return deployment.start()
        except BaseException:
            print(deployment.logs(), file=sys.stderr)
            raise

    result = await fanout.run(subscribers, chunks, delay, py_spy, start)
    result["config"].update(api_workers=api_workers, temporal_workers=workers)
    return result


def render_fanout(result: dict) -> str:
    out = [fanout.render(result), ""]
    rows = []
    for r in result["runs"]:
        for stage, procs in r.get("api_processes", {}).items():
            rows.append([f"N={r['subscribers']} {stage}",
                         " / ".join(f"{p['connections']}" for p in procs.values()),
                         " / ".join(f"{p['rss_mib']:.0f}" for p in procs.values()),
                         " / ".join(procs)])
    out.append(table(["API processes", "SSE connections", "RSS MiB", "pids"], rows))
    return "\n".join(out)


# --- 3. ingest ----------------------------------------------------------------------

EVENT_TEMPLATE = {"event_type": "post_tool", "session_name": "bench ingest", "timestamp": "2025-11-16T10:30:16Z",
                  "tool_name": "Read", "tool_input": {"file_path": "/src/app/main.py"},
                  "tool_output": "x" * 160}


class LoadGenerator:
    """Closed loop over raw keep-alive HTTP/1.1 connections: each connection sends its
    next request as soon as the previous answer is complete. Answers are counted by the
    time they completed: only those inside [start, end) count towards req/s."""

    def __init__(self, port: int, session_ids: list[str]):
        self.port = port
        self.requests = []
        for sid in session_ids:
            body = json.dumps({**EVENT_TEMPLATE, "session_id": sid}, separators=(",", ":")).encode()
            self.requests.append(f"POST /sessions/{sid}/events HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                                 f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
        self.next = 0
        self.window = (float("inf"), float("inf"))
        self.stopping = False
        self.latencies: list[float] = []  # in the window
        self.ok_total = 0  # 200s, whenever
        self.errors: dict[int, int] = {}
        self.in_flight = 0

    def request(self) -> bytes:
        self.next = (self.next + 1) % len(self.requests)
        return self.requests[self.next]

    def answered(self, status: int, t0: float, t1: float) -> None:
        if status == 200:
            self.ok_total += 1
        else:
            self.errors[status] = self.errors.get(status, 0) + 1
        if self.window[0] <= t1 < self.window[1]:
            self.latencies.append(t1 - t0)


class LoadConnection(asyncio.Protocol):
    def __init__(self, gen: LoadGenerator, done: asyncio.Future):
        self.gen, self.done = gen, done
        self.buf = b""

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.gen.in_flight += 1
        self.send()

    def send(self) -> None:
        if self.gen.stopping:
            self.transport.close()
            return
        self.t0 = time.monotonic()
        self.transport.write(self.gen.request())

    def data_received(self, data: bytes) -> None:
        self.buf += data
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return
        head = self.buf[:end].lower()
        at = head.find(b"content-length:")
        length = int(head[at + 15:].split(b"\r\n", 1)[0]) if at >= 0 else 0
        if len(self.buf) < end + 4 + length:
            return
        status = int(self.buf[9:12])
        self.buf = self.buf[end + 4 + length:]
        self.gen.answered(status, self.t0, time.monotonic())
        self.send()

    def connection_lost(self, exc) -> None:
        self.gen.in_flight -= 1
        if not self.done.done():
            self.done.set_result(exc)


async def load(port: int, session_ids: list[str], concurrency: int, warmup: float, seconds: float,
               api_pids: list[int], infra: Infra, py_spy: str | None = None, profile_name: str = "") -> dict:
    loop = asyncio.get_running_loop()
    gen = LoadGenerator(port, session_ids)
    dones = [loop.create_future() for _ in range(concurrency)]
    for done in dones:  # one at a time: let the kernel hand each to whichever API worker accepts it
        await loop.create_connection(lambda d=done: LoadConnection(gen, d), "127.0.0.1", port)
    await asyncio.sleep(0.2)
    split = connections_by_pid(api_pids, port)
    await asyncio.sleep(warmup)
    groups = {"API": api_pids, "PostgreSQL": await pg_backends(infra.db_name), **infra.service_pids(),
              "load generator": [os.getpid()]}
    profilers = [p for i, pid in enumerate(api_pids)
                 if (p := start_profiler(py_spy, pid, f"{profile_name}-api{i}")) is not None]
    cpu0, (busy0, total0) = {k: cpu_of(v) for k, v in groups.items()}, machine_cpu()
    start = time.monotonic()
    gen.window = (start, start + seconds)
    await asyncio.sleep(seconds)
    elapsed = time.monotonic() - start
    cpu = {k: cpu_of(v) - cpu0[k] for k, v in groups.items()}
    busy1, total1 = machine_cpu()
    for profiler in profilers:
        stop_profiler(profiler)
    gen.stopping = True
    await asyncio.wait_for(asyncio.gather(*dones), 30)
    busy_s = (busy1 - busy0) / os.sysconf("SC_CLK_TCK")
    cpu["rest of machine"] = busy_s - sum(cpu.values())
    return {"requests": len(gen.latencies), "seconds": elapsed, "rps": len(gen.latencies) / elapsed,
            "latency_ms": summary_ms(gen.latencies), "ok_total": gen.ok_total, "errors": gen.errors,
            "connections_per_api_process": {str(k): v for k, v in split.items()},
            "machine_busy_pct": 100 * (busy1 - busy0) / max(1, total1 - total0), "cores": os.cpu_count(),
            "cpu_s": cpu, "cpu_ms_per_request": {k: 1000 * v / max(1, len(gen.latencies)) for k, v in cpu.items()}}


def cpu_of(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            total += cpu_seconds(pid)
        except (OSError, IndexError):
            pass  # gone meanwhile
    return total


async def pg_backends(db_name: str) -> list[int]:
    """The PostgreSQL backend processes connected to the benchmark's database."""
    import asyncpg

    conn = await asyncpg.connect(PG_ADMIN_URL.replace("postgres://", "postgresql://", 1))
    try:
        return [r["pid"] for r in await conn.fetch("SELECT pid FROM pg_stat_activity WHERE datname = $1", db_name)]
    finally:
        await conn.close()


async def count_events(database_url: str, session_ids: list[str]) -> int:
    import asyncpg

    conn = await asyncpg.connect(database_url.replace("postgres://", "postgresql://", 1))
    try:
        return await conn.fetchval("SELECT count(*) FROM events WHERE session_id = ANY($1::text[]) AND type = 'post_tool'",
                                   session_ids)
    finally:
        await conn.close()


async def ingest_bench(infra: Infra, rounds: int, seconds: float, warmup: float, concurrency: int,
                       sessions: int, py_spy: str | None = None, api_workers: tuple[int, ...] = (1, 2)) -> dict:
    run_id = os.urandom(4).hex()
    session_ids = [f"ingest-{run_id}-{i}" for i in range(sessions)]
    measurements: list[dict] = []
    ok_so_far = 0
    for round_no in range(rounds):
        for w in api_workers:
            deployment = Deployment(infra, api_workers=w, workers=0, name=f"ingest-w{w}")
            try:
                deployment.start()
                if not measurements:  # the sessions, once, in the shared database
                    async with httpx.AsyncClient(base_url=deployment.url, timeout=30) as http:
                        for sid in session_ids:
                            (await http.post("/sessions", json={"session_id": sid, "session_name": "bench ingest",
                                                                "project_dir": "/src/app"})).raise_for_status()
                m = await load(deployment.port, session_ids, concurrency, warmup, seconds, deployment.api_pids(), infra,
                               py_spy if round_no == 0 else None, f"temporal-ingest-w{w}")
            except BaseException:
                print(deployment.logs(), file=sys.stderr)
                raise
            finally:
                deployment.stop()
            ok_so_far += m["ok_total"]
            stored = await count_events(infra.database_url, session_ids)
            m.update(round=round_no + 1, api_workers=w, stored_events_total=stored, ok_answers_total=ok_so_far)
            measurements.append(m)
            print(f"  ingest round {round_no + 1} WORKERS={w}: {m['rps']:.0f} req/s, p50 {m['latency_ms']['p50']:.1f} ms, "
                  f"connections per API process {m['connections_per_api_process']}, "
                  f"CPU busy {m['machine_busy_pct']:.0f}%", flush=True)
    by_w = {w: [m["rps"] for m in measurements if m["api_workers"] == w] for w in api_workers}
    median = {w: statistics.median(v) for w, v in by_w.items()}
    per_round = [next(m["rps"] for m in measurements if m["round"] == r and m["api_workers"] == api_workers[-1])
                 / next(m["rps"] for m in measurements if m["round"] == r and m["api_workers"] == api_workers[0])
                 for r in range(1, rounds + 1)]
    last = measurements[-1]
    return {"config": {"rounds": rounds, "seconds": seconds, "warmup_s": warmup, "concurrency": concurrency,
                       "sessions": sessions, "temporal_workers": 0, "cpus": "not pinned",
                       "event_bytes": len(json.dumps({**EVENT_TEMPLATE, "session_id": session_ids[0]}))},
            "measurements": measurements, "median_rps": {str(w): v for w, v in median.items()},
            "ratio": median[api_workers[-1]] / median[api_workers[0]], "ratio_per_round": per_round,
            "stored_matches_answers": last["stored_events_total"] == last["ok_answers_total"]}


def render_ingest(result: dict) -> str:
    rows = []
    for m in result["measurements"]:
        rows.append([f"round {m['round']} WORKERS={m['api_workers']}", m["requests"], m["rps"], m["latency_ms"]["p50"],
                     m["latency_ms"]["p99"], sum(m["errors"].values()),
                     " / ".join(str(v) for v in m["connections_per_api_process"].values()),
                     f"{m['machine_busy_pct']:.0f}",
                     " / ".join(f"{v:.2f}" for v in m["cpu_ms_per_request"].values())])
    groups = " / ".join(result["measurements"][0]["cpu_ms_per_request"])
    out = table(["ingest POST /sessions/{id}/events", "answers", "req/s", "p50 ms", "p99 ms", "errors",
                 "conns per API proc", "CPU busy %", f"CPU ms per request: {groups}"], rows)
    med = result["median_rps"]
    keys = list(med)
    return (f"{out}\nmedian req/s: " + ", ".join(f"WORKERS={k}: {v:.0f}" for k, v in med.items())
            + f"; ratio WORKERS={keys[-1]} / WORKERS={keys[0]}: {result['ratio']:.2f} "
            + f"(per round: {', '.join(f'{r:.2f}' for r in result['ratio_per_round'])}); "
            + f"events stored = 200 answers: {result['stored_matches_answers']}")


# --- main ---------------------------------------------------------------------------

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", default="turn,fanout,ingest", help="comma-separated: turn, fanout, ingest")
    parser.add_argument("--turns", type=int, default=200)
    parser.add_argument("--per-session", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--pause", type=float, default=0.0,
                        help="seconds between a turn's session.completed and the next POST (default 0, as in-process)")
    parser.add_argument("--workers", type=int, default=1, help="Temporal worker processes (turn and fan-out)")
    parser.add_argument("--subscribers", default="1000", help="comma-separated N values for the fan-out")
    parser.add_argument("--chunks", type=int, default=100)
    parser.add_argument("--delay", type=float, default=0.01)
    parser.add_argument("--fanout-api-workers", type=int, default=2, help="WORKERS of the fan-out's API server")
    parser.add_argument("--ingest-rounds", type=int, default=3)
    parser.add_argument("--ingest-seconds", type=float, default=6.0)
    parser.add_argument("--ingest-warmup", type=float, default=2.0)
    parser.add_argument("--concurrency", type=int, default=32, help="ingest connections")
    parser.add_argument("--sessions", type=int, default=200, help="ingest sessions")
    parser.add_argument("--redis-url", help="use this Redis instead of a private redis-server")
    parser.add_argument("--py-spy", help="path of a py-spy binary: profile the API and worker processes during the "
                        "timed turns / the fan-out turn (bench/results/temporal-*.folded, fanout-*.folded)")
    parser.add_argument("--keep-logs", action="store_true", help="keep the deployment's folder (logs) in /tmp")
    parser.add_argument("--json", help="write results here (default bench/results/temporal.json)")
    args = parser.parse_args()
    only = set(args.only.split(","))
    exit_on_sigterm()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 4096:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(4096, hard), hard))
    result: dict = {}
    t_start = time.monotonic()
    infra = Infra(redis_url=args.redis_url, keep_logs=args.keep_logs)
    try:
        infra.start()
        result["infra"] = infra.describe()
        print(f"temporal bench: {result['infra']}", flush=True)
        if "turn" in only:
            print("running temporal turn latency ...", flush=True)
            result["turn"] = asyncio.run(turn_bench(infra, args.turns, args.per_session, args.warmup, args.workers,
                                                    args.py_spy, args.pause))
            print(render_turn(result["turn"]) + "\n", flush=True)
        if "fanout" in only:
            print("running temporal fan-out ...", flush=True)
            result["fanout"] = asyncio.run(fanout_bench(infra, [int(x) for x in args.subscribers.split(",")],
                                                        args.chunks, args.delay, args.fanout_api_workers,
                                                        args.workers, args.py_spy))
            print(render_fanout(result["fanout"]) + "\n", flush=True)
        if "ingest" in only:
            print("running ingest, WORKERS=1 vs 2 ...", flush=True)
            result["ingest"] = asyncio.run(ingest_bench(infra, args.ingest_rounds, args.ingest_seconds,
                                                        args.ingest_warmup, args.concurrency, args.sessions,
                                                        args.py_spy))
            print(render_ingest(result["ingest"]) + "\n", flush=True)
    finally:
        stop_all()
    result["wall_s"] = time.monotonic() - t_start
    print(f"results: {save_json('temporal', result, args.json)} ({result['wall_s']:.0f} s)")


if __name__ == "__main__":
    main()
