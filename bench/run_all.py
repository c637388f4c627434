"""Run both benchmarks with their defaults and print one combined table with the aims.

    .venv/bin/python bench/run_all.py        (or: make bench)

Each benchmark runs in its own process (bench/turn_latency.py, then bench/fanout.py),
starting its own server and fake provider, and writes its JSON to bench/results/. This
script then prints the machine, every latency row (ms) with the aim it is held to, and the
fan-out delivery, completeness and memory figures. Aims (docs/performance.md):
turn overhead p50 <= 5 ms and p99 <= 20 ms; 1000 subscribers delivery p99 <= 100 ms.
The exit status is 0 whether or not an aim is met (a benchmark, not a test); non-zero
only when a benchmark failed to run.
"""

from __future__ import annotations

import json
import os
import platform
import sqlite3
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import RESULTS, ROOT, table  # noqa: E402

OVERHEAD = "runtime overhead (total - provider)"
DELIVERY = "chunk -> subscriber"
AIMS = {  # (benchmark row, percentile) -> limit in ms
    ("turn: " + OVERHEAD, "p50"): 5.0,
    ("turn: " + OVERHEAD, "p99"): 20.0,
    ("fan-out N=1000: " + DELIVERY, "p99"): 100.0,
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


def main() -> None:
    turn, fan = run("turn_latency"), run("fanout")
    rows: list[tuple[str, dict]] = [(f"turn: {name}", s) for name, s in turn["rows"].items()]
    rows += [(f"fan-out N={r['subscribers']}: {name}", s) for r in fan["runs"] for name, s in r["latency_ms"].items()]
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
    print(f"turn latency: {turn['config']}; fan-out: {fan['config']}\n")
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
    for name, p, value, limit in verdicts:
        print(f"aim {name} {p} <= {limit:g} ms: {value:.1f} ms -> {'met' if value <= limit else 'MISSED'}")


if __name__ == "__main__":
    main()
