"""Command line: `python -m app migrate` and `python -m app serve`."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from typing import Any

from app.config import ConfigError, Settings
from app.resources import require_database_driver, resource


def _migrate(settings: Settings) -> None:
    from app.db import check_ready
    from app.secrets import check_keys, make_data_dir

    # A broken key file stops `make run` here, at its first step, rather than after the
    # migration; none is created (migrate may run where the keys are not kept).
    check_keys(settings)
    if not settings.database_url:
        make_data_dir(settings.data_dir)  # private, before SQLite puts its file there
    asyncio.run(check_ready(settings.replace(auto_migrate=True)))
    print(f"migrations applied to {settings.effective_database_url.split('@')[-1]}")


ASGI_APP_PATH = "app.asgi:app"  # what each worker process of WORKERS > 1 loads
STRAGGLER_GRACE_SECONDS = 5.0  # a worker still running this long after graceful_timeout is killed
# A worker that dies after it began serving (kill -9, the OOM killer, a crash) is replaced;
# more than this many replacements within the window stop the server instead of looping.
MAX_RESTARTS, RESTART_WINDOW_SECONDS = 5, 60.0


def _serve(settings: Settings) -> int | None:
    if settings.workers > 1:
        return _serve_workers(settings)
    from hypercorn.asyncio.run import worker_serve
    from hypercorn.utils import wrap_app

    from app.hypercorn_fixes import (
        abort_connections_after,
        end_websocket_pings_at_close,
        limit_send_waits,
        track_connections,
    )

    end_websocket_pings_at_close()
    track_connections()
    limit_send_waits(settings.send_timeout_seconds)
    config = hypercorn_config(settings)
    sockets = _listen(config)

    from app.db import check_ready, close_db  # after binding: a port in use is told before these load
    from app.log_setup import configure_logging
    from app.main import create_app
    from app.secrets import check_keys

    configure_logging(settings.log_level)  # the migrations' own lines included
    check_keys(settings)  # a broken key file is refused before the database is touched
    asyncio.run(check_ready(settings))  # migrated (AUTO_MIGRATE) or refused here, in one line
    quart_app = create_app(settings.replace(auto_migrate=False))
    app = wrap_app(quart_app, config.wsgi_max_body_size, "asgi")
    tune_garbage_collector()

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        # A signal during start-up sets `stop` too: Hypercorn looks at it once the app has
        # started, and then stops at once.
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)

        async def shutdown_trigger() -> None:
            await stop.wait()
            await quart_app.extensions["runtime"].begin_stop()  # turns and streams never end by themselves
            # A client that stopped reading keeps its connection open however it ends
            # (app/hypercorn_fixes.py): cut it off once graceful_timeout has passed.
            stragglers = asyncio.get_running_loop().create_task(abort_connections_after(config.graceful_timeout))
            stragglers.add_done_callback(_report_aborted)

        try:
            await worker_serve(app, config, sockets=sockets, shutdown_trigger=shutdown_trigger)
        except BaseException:
            # Failing before or while serving skips the app's after-serving hook, which
            # closes the database; the thread of an open SQLite connection would then
            # keep this process alive after the error.
            await close_db()
            raise

    _run_loop(main(), settings.event_loop)
    return None


def _report_aborted(task: asyncio.Task) -> None:
    if not task.cancelled() and task.exception() is None and task.result():
        logging.getLogger("app").warning("stopping: cut off %d connection(s) whose client was not reading, "
                                         "after graceful_timeout", task.result())


def hypercorn_config(settings: Settings):
    """hypercorn.toml, with BIND, ACCESS_LOG and GRACEFUL_TIMEOUT_SECONDS from the
    settings and our access logger."""
    from hypercorn.config import Config

    from app.log_setup import AccessLogger

    config = Config.from_toml(resource("hypercorn.toml"))
    config.bind = [settings.bind]
    config.logger_class = AccessLogger
    config.loglevel = settings.log_level  # Hypercorn's own lines ("Running on …") too; not the access lines
    if not settings.access_log:
        config.accesslog = None
    if settings.graceful_timeout_seconds is not None:
        config.graceful_timeout = settings.graceful_timeout_seconds
    return config


def _listen(config):
    """Bind config.bind before anything else is opened, so a port in use (or any address
    that cannot be bound) is one line and a non-zero exit, not a traceback after start-up.

    Bound as for one worker even when more share it: Hypercorn turns SO_REUSEPORT on for
    WORKERS > 1, which would let this server silently share a port with another one
    started the same way rather than be refused. The workers inherit this one socket and
    do not need it."""
    workers, config.workers = config.workers, 1
    try:
        return config.create_sockets()
    except (OSError, OverflowError) as error:  # OverflowError: a port past 65535
        reason = getattr(error, "strerror", None) or str(error)
        raise ConfigError(f"cannot listen on {', '.join(config.bind)}: {reason[:1].lower()}{reason[1:]}") from None
    finally:
        config.workers = workers


def _serve_workers(settings: Settings) -> int:
    """WORKERS=N > 1: N Hypercorn worker processes accepting on one socket.

    This process applies the migrations (once: the workers get AUTO_MIGRATE=false, so N of
    them do not race to apply the same one), binds the socket and supervises; each spawned
    worker runs Hypercorn's own worker function on `app.asgi:app` (the app built from the
    environment, GC tuned as in one-process `serve`).

    The supervision is Hypercorn's multi-worker mode (hypercorn.run.run: spawn context, one
    shared shutdown event the workers poll, SIGINT ignored by the workers), redone here for
    three things run() gets wrong for us (Hypercorn 0.18): when a worker fails at start-up it
    returns status 0, so the failure is lost; once the first worker has stopped it SIGTERMs
    the others without waiting, cutting short their draining and after-serving hooks; and a
    SIGTERM sent to a worker itself (systemd stops the whole control group) kills it at once.
    Here SIGINT or SIGTERM to this process, or SIGTERM to a worker, starts the graceful
    shutdown of every worker; this process waits for all of them (SIGKILL only after
    graceful_timeout + STRAGGLER_GRACE_SECONDS) and exits non-zero if any failed. A worker
    that ends by itself with status 0 is replaced, as Hypercorn does (max_requests), and so
    is one that dies while serving (kill -9, the OOM killer), up to MAX_RESTARTS within
    RESTART_WINDOW_SECONDS; one that fails before it serves stops the server."""
    from app.log_setup import configure_logging
    from app.secrets import load_keys

    config = hypercorn_config(settings)
    sockets = _listen(config)
    configure_logging(settings.log_level)
    # The key files create_app() makes when SECRETS_KEY / JWT_SECRET are unset: made (or
    # refused) here, once, so N workers starting together cannot each write a key, and a
    # broken one stops this process with one line instead of every worker with a traceback.
    load_keys(settings)
    from app.db import check_ready

    asyncio.run(check_ready(settings))  # migrated (AUTO_MIGRATE) or refused here, once for all workers
    os.environ["AUTO_MIGRATE"] = "false"  # inherited by the spawned workers

    config.workers = settings.workers
    config.application_path = ASGI_APP_PATH
    config.worker_class = _worker_class(settings.event_loop)
    return _supervise(config, sockets)


def _supervise(config, sockets) -> int:
    import multiprocessing
    from multiprocessing.connection import wait

    # The workers' target is pickled by name; under `python -m app` this file runs as
    # "__main__", which a spawned process does not re-import: name it as app.__main__.
    from app.__main__ import run_worker

    ctx = multiprocessing.get_context("spawn")
    shutdown_event = ctx.Event()
    stop_requested = False

    def request_stop(*_) -> None:  # only a flag: the event's lock is not re-entrant
        nonlocal stop_requested
        stop_requested = True

    serving: dict[Any, Any] = {}  # a worker process -> the event it sets once it serves (_StopWhen)

    def spawn():
        started = ctx.Event()
        process = ctx.Process(target=run_worker, kwargs={"config": config, "sockets": sockets,
                                                         "shutdown_event": shutdown_event, "serving": started})
        process.start()
        serving[process] = started
        return process

    # SIG_IGN is inherited by the workers: Ctrl-C (SIGINT to the terminal's whole process
    # group) reaches only this process's handler, which stops them gracefully.
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    processes = []
    restarts: list[float] = []
    failed = False
    try:
        signal.signal(signal.SIGTERM, request_stop)  # not inherited: the workers set their own
        processes = [spawn() for _ in range(config.workers)]
        signal.signal(signal.SIGINT, request_stop)
        while not stop_requested:
            wait([process.sentinel for process in processes], timeout=0.2)
            for index, process in enumerate(processes):
                if process.exitcode is None or stop_requested:
                    continue
                if process.exitcode != 0:
                    now = time.monotonic()
                    restarts = [at for at in restarts if now - at < RESTART_WINDOW_SECONDS]
                    why = _why_not_replaced(serving[process].is_set(), len(restarts))
                    if why:
                        print(f"worker {process.pid} exited with status {process.exitcode} {why}; stopping",
                              file=sys.stderr)
                        failed = True
                        request_stop()
                        break
                    # Killed or crashed while serving: the other workers and their clients go
                    # on; its own connections are lost, as they would be in any server.
                    print(f"worker {process.pid} exited with status {process.exitcode} while serving; "
                          "starting another", file=sys.stderr)
                    restarts.append(now)
                del serving[process]
                processes[index] = spawn()  # died, or ended by itself (max_requests): replace it
    finally:
        shutdown_event.set()
        deadline = time.monotonic() + config.graceful_timeout + STRAGGLER_GRACE_SECONDS
        for process in processes:
            process.join(max(0.0, deadline - time.monotonic()))
        for process in processes:
            if process.is_alive():
                print(f"worker {process.pid} did not stop in time; killing it", file=sys.stderr)
                process.kill()
                process.join()
        for sock in (*sockets.secure_sockets, *sockets.insecure_sockets, *sockets.quic_sockets):
            sock.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 1 if failed or any(process.exitcode != 0 for process in processes) else 0


def _why_not_replaced(was_serving: bool, recent_restarts: int) -> str:
    """Why a worker that failed is not replaced ("" if it is). One that failed before it
    served failed at start-up, as every worker would (a setting, the database): the server
    stops with one line rather than restarting workers in a loop."""
    if not was_serving:
        return "before it served"
    if recent_restarts >= MAX_RESTARTS:
        return f"while serving, after {recent_restarts} workers were replaced within {RESTART_WINDOW_SECONDS:g} s"
    return ""


class _StopWhen:
    """What a worker's Hypercorn polls (is_set, every 0.1 s, on its event loop) to begin its
    graceful shutdown: the supervisor's shared event, or a SIGTERM this worker received.
    The first time it answers yes it calls `on_stop`, as one-process `serve`'s shutdown
    trigger ends the streams. Hypercorn polls it only once its app has started and its
    sockets accept, so the first poll also tells the supervisor that this worker serves
    (`serving`): a worker that dies later is replaced, not taken for a failed start."""

    def __init__(self, shared, on_stop: Callable[[], None], serving=None) -> None:
        self.shared = shared
        self.signalled = False
        self.on_stop: Callable[[], None] | None = on_stop
        self.serving = serving

    def is_set(self) -> bool:
        if self.serving is not None:
            self.serving.set()
            self.serving = None
        stopping = self.signalled or self.shared.is_set()
        if stopping and self.on_stop is not None:
            on_stop, self.on_stop = self.on_stop, None
            on_stop()
        return stopping


def _end_worker_streams() -> None:
    """SSE streams and /ws feeds never end by themselves: end them as shutdown begins, so
    the worker does not wait out graceful_timeout for them (and cut them off then)."""
    from app.asgi import app  # the app this worker serves: Hypercorn loaded it from ASGI_APP_PATH

    app.extensions["runtime"].end_streams()


def run_worker(config, sockets, shutdown_event, serving=None) -> None:
    """One worker process of `serve` with WORKERS > 1 (a spawned process); it sets
    `serving` once it serves (_StopWhen)."""
    from hypercorn.asyncio.run import asyncio_worker, uvloop_worker

    # (Hypercorn's WebSocket fix is applied by app.asgi, which each worker loads.)
    stop = _StopWhen(shutdown_event, on_stop=_end_worker_streams, serving=serving)

    def on_sigterm(*_) -> None:
        stop.signalled = True

    signal.signal(signal.SIGTERM, on_sigterm)
    worker = uvloop_worker if config.worker_class == "uvloop" else asyncio_worker
    # Hypercorn annotates a multiprocessing Event but only polls its is_set(), which _StopWhen has.
    worker(config=config, sockets=sockets, shutdown_event=stop)  # type: ignore[arg-type]


def _worker_class(event_loop: str) -> str:
    if event_loop == "uvloop":
        try:
            import uvloop  # noqa: F401
        except ImportError:  # e.g. Windows, where uvloop does not exist
            print("EVENT_LOOP=uvloop but uvloop is not installed; using asyncio", file=sys.stderr)
        else:
            return "uvloop"
    return "asyncio"


def tune_garbage_collector() -> None:
    """A full collection walks every tracked object, and with 1000 open streams that took
    100-200 ms: a pause of the whole event loop that showed up as delivery spikes. So
    everything loaded before serving (modules, models, schemas, the app: most of the
    heap, alive as long as the server) is frozen out of the collector's view, and
    collections run less often (gen 0 every 10,000 allocations rather than 700, full
    ones rarely).
    Measured with bench/fanout.py, 1000 subscribers: p99 106-140 ms -> 69-80 ms."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 50, 50)


def _run_loop(coroutine, kind: str) -> None:
    """uvloop (the default) roughly halves the event loop's own cost per socket write and
    per wake-up, which is most of the work of streaming one session to many clients."""
    if kind == "uvloop":
        try:
            import uvloop
        except ImportError:  # e.g. Windows, where uvloop does not exist
            print("EVENT_LOOP=uvloop but uvloop is not installed; using asyncio", file=sys.stderr)
        else:
            uvloop.run(coroutine)
            return
    asyncio.run(coroutine)


def _worker(settings: Settings) -> int | None:
    """A Temporal worker (RUNNER_MODE=temporal): runs session workflows and their turns."""
    if not settings.temporal:
        raise ConfigError("python -m app worker needs RUNNER_MODE=temporal (with DATABASE_URL, REDIS_URL and "
                          "TEMPORAL_ADDRESS); in-process mode runs turns inside `serve`")
    from app.log_setup import configure_logging
    from app.wiring import run_worker

    configure_logging(settings.log_level)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await run_worker(settings, stop)

    _run_loop(main(), settings.event_loop)
    return None


# name -> function of the settings; an int it returns is the exit status (None: 0).
COMMANDS: dict[str, Callable[[Settings], int | None]] = {"migrate": _migrate, "serve": _serve, "worker": _worker}


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] not in COMMANDS:
        print(f"usage: python -m app {{{'|'.join(COMMANDS)}}}", file=sys.stderr)
        return 2
    try:
        settings = Settings.from_env()
        require_database_driver(settings.effective_database_url)  # before binding or forking
        return COMMANDS[argv[0]](settings) or 0
    except ConfigError as error:
        # Something the operator has to fix (a setting, a key file, a port in use): one
        # line saying what, no traceback.
        print(f"error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
