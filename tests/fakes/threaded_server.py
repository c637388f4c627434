"""A Quart app served by Hypercorn in a background thread, on a loopback port that is
bound before start() returns. The base of the fake providers the tests talk to."""

from __future__ import annotations

import asyncio
import socket
import threading
from typing import Any

from hypercorn.asyncio import serve
from hypercorn.config import Config
from quart import Quart


class ThreadedServer:
    def __init__(self) -> None:
        self.port: int | None = None
        self._app: Quart | None = None  # subclasses build it and call app.before_serving(self._ready.set)
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._shutdown: asyncio.Event | None = None
        self._startup_error: BaseException | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self):
        if self._thread is not None:
            return self
        self._startup_error = None
        # Bind and listen here, before the thread starts, so the port is known and
        # connectable on return (no "find a free port, then race to bind it").
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        sock.listen(128)
        self.port = sock.getsockname()[1]
        fd = sock.detach()  # Hypercorn takes ownership of the fd via fd://
        name = f"{type(self).__name__}:{self.port}"
        self._thread = threading.Thread(target=self._run, args=(fd,), name=name, daemon=True)
        self._thread.start()
        if not self._ready.wait(10) or self._startup_error:
            raise RuntimeError(f"{name} failed to start: {self._startup_error!r}")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._shutdown is not None and not self._loop.is_closed():
            try:
                self._loop.call_soon_threadsafe(self._shutdown.set)
            except RuntimeError:  # loop already closed
                pass
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._thread = self._loop = self._shutdown = None
        self._ready.clear()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def _run(self, fd: int) -> None:
        try:
            asyncio.run(self._serve(fd))
        except BaseException as e:  # surface to start() instead of dying silently
            self._startup_error = e
            self._ready.set()

    async def _serve(self, fd: int) -> None:
        self._loop = asyncio.get_running_loop()
        self._shutdown = asyncio.Event()
        config = Config()
        config.bind = [f"fd://{fd}"]
        config.loglevel = "WARNING"  # no "Running on ..." noise in test output
        config.graceful_timeout = 0.2  # requests still open at stop() are test leftovers: cut them short
        await serve(self._app, config, shutdown_trigger=self._shutdown.wait)
