"""Run the benchmarks with their defaults and print one combined table with the aims.

    .venv/bin/python bench/run_all.py        (or: make bench)

Each benchmark runs in its own process (bench/turn_latency.py, bench/fanout.py, then
bench/ws_connects.py), starting its own server (and fake provider), and writes its JSON
to bench/results/. This script then prints the machine, every latency row (ms) with the
aim it is held to, and the fan-out delivery, completeness and memory figures. Aims
(docs/performance.md): turn overhead p50 <= 5 ms and p99 <= 20 ms; 1000 subscribers
delivery p99 <= 100 ms; /health p99 < 100 ms while 50 dashboards connect to /ws with
10,000 sessions stored.
The exit status is 0 whether or not an aim is met (a benchmark, not a test); non-zero
only when a benchmark failed to run.

    .venv/bin/python bench/run_all.py --temporal        (or BENCH_TEMPORAL=1 make bench)
    .venv/bin/python bench/run_all.py --temporal-only

also run bench/temporal.py (RUNNER_MODE=temporal: a Temporal dev server, PostgreSQL and
Redis, started and removed by the benchmark; a few minutes) and print its table with its
aims: turn overhead p50 <= 40 ms and p99 <= 120 ms; 1000 subscribers over 2 API workers
delivery p99 <= 150 ms, none lost; event ingest WORKERS=2 >= 1.6x WORKERS=1.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import RESULTS, ROOT, table  # noqa: E402

OVERHEAD = "runtime overhead (total - provider)"
DELIVERY = "chunk -> subscriber"
WS_HEALTH = "ws connects: /health during the connects"
AIMS = {  # (benchmark row, percentile) -> limit in ms
    ("turn: " + OVERHEAD, "p50"): 5.0,
    ("turn: " + OVERHEAD, "p99"): 20.0,
    ("fan-out N=1000: " + DELIVERY, "p99"): 100.0,
    (WS_HEALTH, "p99"): 100.0,
}


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    mem = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
               if line.startswith("MemTotal"))
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "app"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    return (f"machine: {os.cpu_count()} CPU ({cpu}), {mem / 1024 / 1024:.1f} GiB RAM, Python {platform.python_version()}, "
            f"SQLite {sqlite3.sqlite_version}, {platform.system()} {platform.release()}\n"
            f"code: {commit or '?'}{' + uncommitted changes in app/' if dirty else ''}; "
            f"load average (1/5/15 min) at the end: {' '.join(Path('/proc/loadavg').read_text().split()[:3])}")


def run(script: str) -> dict:
    out = RESULTS / f"{script}.json"
    print(f"running bench/{script}.py ...", flush=True)
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / f"{script}.py"), "--json", str(out)], cwd=ROOT,
                          timeout=600, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"bench/{script}.py failed:\n{proc.stdout}\n{proc.stderr}")
    return json.loads(out.read_text())


TEMPORAL_AIMS = {  # (benchmark row, percentile) -> limit in ms
    ("temporal turn: " + OVERHEAD, "p50"): 40.0,
    ("temporal turn: " + OVERHEAD, "p99"): 120.0,
    ("temporal fan-out N=1000: " + DELIVERY, "p99"): 150.0,
}
INGEST_RATIO_AIM = 1.6
TEMPORAL_TIMEOUT = 900  # s; bench/temporal.py bounds each of its steps well below this


def run_temporal(extra: list[str]) -> dict:
    """bench/temporal.py in its own process, its detailed tables streamed as it goes; on
    timeout SIGTERM first, so it stops the deployment it started and drops its database,
    and only then SIGKILL."""
    out = RESULTS / "temporal.json"
    print("running bench/temporal.py ...", flush=True)
    proc = subprocess.Popen([sys.executable, str(ROOT / "bench" / "temporal.py"), "--json", str(out), *extra], cwd=ROOT)
    try:
        proc.wait(TEMPORAL_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        sys.exit(f"bench/temporal.py timed out after {TEMPORAL_TIMEOUT} s")
    if proc.returncode != 0:
        sys.exit(f"bench/temporal.py failed (status {proc.returncode})")
    return json.loads(out.read_text())


def report_temporal(result: dict) -> None:
    rows: list[tuple[str, dict]] = []
    if "turn" in result:
        rows += [(f"temporal turn: {name}", s) for name, s in result["turn"]["rows"].items()]
    for r in result.get("fanout", {}).get("runs", []):
        rows += [(f"temporal fan-out N={r['subscribers']}: {name}", s) for name, s in r["latency_ms"].items()]
    verdicts, lines = [], []
    for name, s in rows:
        aims = [(p, limit) for (row, p), limit in TEMPORAL_AIMS.items() if row == name]
        verdicts += [(name, p, s[p], limit) for p, limit in aims]
        lines.append([name, s["n"], s["p50"], s["p90"], s["p99"], s["max"],
                      ", ".join(f"{p} <= {limit:g}" for p, limit in aims),
                      ", ".join("met" if s[p] <= limit else "MISSED" for p, limit in aims)])
    print(f"temporal mode: {result.get('infra', '')}")
    for part in ("turn", "fanout", "ingest"):
        if part in result:
            print(f"  {part}: {result[part]['config']}")
    print()
    if lines:
        print(table(["temporal measure (ms)", "n", "p50", "p90", "p99", "max", "aim", "result"], lines))
        print()
    details = []
    for r in result.get("fanout", {}).get("runs", []):
        m = r["rss_mib"]
        split = r.get("api_processes", {}).get("connected", {})
        details.append([f"temporal fan-out N={r['subscribers']}", f"{r['subscribers_complete']}/{r['subscribers']}",
                        f"{r['events_received_min']}..{r['events_received_max']}/{r['events_expected']}",
                        r["subscribers_dropped"], " / ".join(str(p["connections"]) for p in split.values()),
                        r["turn_s"], r["server_cpu_s"],
                        f"{m['idle']:.0f} / {m['connected']:.0f} / {m['after_turn']:.0f} / {m['after_disconnect']:.0f}"])
    if details:
        print(table(["delivery", "complete subscribers", "events per sub", "dropped", "SSE conns per API process",
                     "turn s", "API+worker CPU s", "API RSS MiB idle / connected / after turn / after disconnect"],
                    details))
        print()
    if "ingest" in result:
        ingest = result["ingest"]
        rps = ingest["median_rps"]
        keys = list(rps)
        print(table(["ingest (POST /sessions/{id}/events)", *(f"WORKERS={k} req/s" for k in keys), "ratio", "per round",
                     "aim", "result"],
                    [["temporal ingest, median of rounds", *(rps[k] for k in keys), ingest["ratio"],
                      ", ".join(f"{r:.2f}" for r in ingest["ratio_per_round"]), f">= {INGEST_RATIO_AIM:g}x",
                      "met" if ingest["ratio"] >= INGEST_RATIO_AIM else "MISSED"]]))
        print()
    for name, p, value, limit in verdicts:
        print(f"aim {name} {p} <= {limit:g} ms: {value:.1f} ms -> {'met' if value <= limit else 'MISSED'}")
    for r in result.get("fanout", {}).get("runs", []):
        if r["subscribers"] == 1000:
            whole = r["subscribers_complete"] == r["subscribers"] and r["subscribers_dropped"] == 0
            print(f"aim temporal fan-out N=1000 none lost: {r['subscribers_complete']}/{r['subscribers']} complete, "
                  f"{r['subscribers_dropped']} dropped -> {'met' if whole else 'MISSED'}")
    if "ingest" in result:
        ratio = result["ingest"]["ratio"]
        print(f"aim temporal ingest WORKERS=2 / WORKERS=1 >= {INGEST_RATIO_AIM:g}: {ratio:.2f} -> "
              f"{'met' if ratio >= INGEST_RATIO_AIM else 'MISSED'}")


def main() -> None:
    parser = argparse.ArgumentParser(description="Run the benchmarks and print one table with the aims.")
    parser.add_argument("--temporal", action="store_true",
                        help="also the RUNNER_MODE=temporal benchmarks (bench/temporal.py); or BENCH_TEMPORAL=1")
    parser.add_argument("--temporal-only", action="store_true", help="only the RUNNER_MODE=temporal benchmarks")
    args, extra = parser.parse_known_args()  # anything else goes to bench/temporal.py
    temporal = args.temporal or args.temporal_only or os.environ.get("BENCH_TEMPORAL", "") not in ("", "0")
    if extra and not temporal:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if not args.temporal_only:
        report_inprocess()
    if temporal:
        result = run_temporal(extra)
        print()
        print(machine())
        report_temporal(result)


def report_inprocess() -> None:
    turn, fan, ws = run("turn_latency"), run("fanout"), run("ws_connects")
    rows: list[tuple[str, dict]] = [(f"turn: {name}", s) for name, s in turn["rows"].items()]
    rows += [(f"fan-out N={r['subscribers']}: {name}", s) for r in fan["runs"] for name, s in r["latency_ms"].items()]
    rows += [("ws connects: /health idle", ws["health_idle_ms"]), (WS_HEALTH, ws["health_during_ms"])]
    verdicts = []
    lines = []
    for name, s in rows:
        aims = [(p, limit) for (row, p), limit in AIMS.items() if row == name]
        aim = ", ".join(f"{p} <= {limit:g}" for p, limit in aims)
        met = ", ".join("met" if s[p] <= limit else "MISSED" for p, limit in aims)
        verdicts += [(name, p, s[p], limit) for p, limit in aims]
        lines.append([name, s["n"], s["p50"], s["p90"], s["p99"], s["max"], aim, met])
    print()
    print(machine())
    print(f"turn latency: {turn['config']}; fan-out: {fan['config']}; ws connects: {ws['config']}\n")
    print(table(["measure (ms)", "n", "p50", "p90", "p99", "max", "aim", "result"], lines))
    print()
    details = []
    for r in fan["runs"]:
        m = r["rss_mib"]
        details.append([f"fan-out N={r['subscribers']}", f"{r['subscribers_complete']}/{r['subscribers']}",
                        f"{r['events_received_min']}..{r['events_received_max']}/{r['events_expected']}",
                        r["subscribers_dropped"], r["turn_s"], r["server_cpu_s"],
                        f"{m['idle']:.0f} / {m['connected']:.0f} / {m['after_turn']:.0f} / {m['after_disconnect']:.0f}"])
    print(table(["delivery", "complete subscribers", "events per sub", "dropped", "turn s", "server CPU s",
                 "server RSS MiB idle / connected / after turn / after disconnect"], details))
    print()
    print(table(["ws connects", "init bytes", "connect p50 ms (median round)", "all connected s (slowest round)"],
                [[f"{ws['config']['connects']} dashboards, {ws['config']['sessions']} sessions", ws["runs"][0]["init_bytes"],
                  sorted(r["connect_ms"]["p50"] for r in ws["runs"])[len(ws["runs"]) // 2],
                  max(r["all_connected_s"] for r in ws["runs"])]]))
    print()
    for name, p, value, limit in verdicts:
        print(f"aim {name} {p} <= {limit:g} ms: {value:.1f} ms -> {'met' if value <= limit else 'MISSED'}")


if __name__ == "__main__":
    main()
