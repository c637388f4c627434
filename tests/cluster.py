"""Real processes of a temporal-mode deployment, for the multi-process tests: API
servers (`python -m app serve`) and workers (`python -m app worker`) sharing one
PostgreSQL database, Redis and a Temporal dev server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.live_server import NOT_INHERITED, ROOT, LiveServer, terminate


def cluster_env(database_url: str, redis_url: str, temporal_address: str, task_queue: str, data_dir: Path) -> dict[str, str]:
    """What every process of one deployment shares (DATA_DIR: the secrets key files)."""
    return {"RUNNER_MODE": "temporal", "DATABASE_URL": database_url, "REDIS_URL": redis_url,
            "TEMPORAL_ADDRESS": temporal_address, "TEMPORAL_TASK_QUEUE": task_queue, "DATA_DIR": str(data_dir),
            "SECRETS_KEY": "cluster-test-secrets-key", "JWT_SECRET": "cluster-test-jwt-secret-of-enough-length"}


class WorkerProcess:
    """`python -m app worker` in a subprocess; ready once it logs that it polls."""

    def __init__(self, env: dict[str, str], log_path: Path):
        inherited = {k: v for k, v in os.environ.items() if not k.startswith(NOT_INHERITED)}
        self.env = {**inherited, "LOG_LEVEL": "INFO", **env}
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None
        self._offset = 0

    def start(self, timeout: float = 20.0) -> WorkerProcess:
        return self.launch().wait_ready(timeout)

    def launch(self) -> WorkerProcess:
        """Start the process without waiting for it to poll."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "app", "worker"], cwd=ROOT, env=self.env,
                                         stdout=log, stderr=subprocess.STDOUT)
        return self

    def wait_ready(self, timeout: float = 20.0) -> WorkerProcess:
        assert self.proc is not None, "launch() first"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited early:\n{self.log()}")
            if "polling task queue" in self.log()[self._offset:]:
                return self
            time.sleep(0.1)
        raise RuntimeError(f"worker did not start:\n{self.log()}")

    @property
    def pid(self) -> int:
        return self.proc.pid

    def kill(self) -> None:
        """kill -9: no chance to finish or report anything."""
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self, timeout: float = 20.0) -> None:
        terminate(self.proc, timeout)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class Cluster:
    """API servers and workers of one deployment; everything stopped by stop()."""

    def __init__(self, env: dict[str, str], folder: Path):
        self.env, self.folder = env, folder
        self.apis: list[LiveServer] = []
        self.workers: list[WorkerProcess] = []

    def start(self, apis: int, workers: int, **worker_env: str) -> tuple[list[LiveServer], list[WorkerProcess]]:
        """Launch API servers and workers all at once, then wait until each is ready: each
        takes seconds to import and connect, and they need not take turns doing it."""
        new_apis = [self._api() for _ in range(apis)]
        new_workers = [self._worker(**worker_env) for _ in range(workers)]
        for process in [*new_apis, *new_workers]:
            process.wait_ready(timeout=30)
        return new_apis, new_workers

    def _api(self) -> LiveServer:
        server = LiveServer(self.env, self.folder)
        server.log_path = self.folder / f"api-{len(self.apis)}.log"
        self.apis.append(server.launch())
        return server

    def _worker(self, **extra: str) -> WorkerProcess:
        worker = WorkerProcess({**self.env, **extra}, self.folder / f"worker-{len(self.workers)}.log")
        self.workers.append(worker.launch())
        return worker

    def restart_api(self, server: LiveServer) -> None:
        server.stop()
        server.start()

    def restart_worker(self, worker: WorkerProcess) -> None:
        worker.stop()
        worker.start()

    def stop(self) -> None:
        for process in [*self.workers, *self.apis]:
            process.stop()

    def logs(self) -> str:
        return "\n".join(f"--- {p.log_path.name}\n{p.log()[-4000:]}" for p in [*self.apis, *self.workers])
