"""Command line: `python -m app migrate` and `python -m app serve`."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

from app.config import Settings


def _migrate(settings: Settings) -> None:
    from app.db import apply_migrations

    asyncio.run(apply_migrations(settings))
    print(f"migrations applied to {settings.effective_database_url.split('@')[-1]}")


def _serve(settings: Settings) -> None:
    from hypercorn.asyncio import serve
    from hypercorn.config import Config

    from app.main import create_app

    config = Config.from_toml(Path(__file__).resolve().parents[1] / "hypercorn.toml")
    config.bind = [settings.bind]
    app = create_app(settings)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await serve(app, config, shutdown_trigger=stop.wait)

    _run_loop(main(), settings.event_loop)


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


def main(argv: list[str]) -> int:
    commands = {"migrate": _migrate, "serve": _serve}
    if len(argv) != 1 or argv[0] not in commands:
        print("usage: python -m app {migrate|serve}", file=sys.stderr)
        return 2
    commands[argv[0]](Settings.from_env())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
