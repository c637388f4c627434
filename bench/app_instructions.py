"""Instructions per request in the app: the REST routes' own cost, counted, not timed.

On a shared VM, CPU per request moves 10-40 % between back-to-back wrk runs of the same
code (docs/performance.md, round 5), which hides a 5 % change. Valgrind's callgrind counts
the instructions executed, and counts the same twice. Here the Quart app is called
through ASGI in this process (no Hypercorn, no sockets: what is counted is the app, the
hooks, the database driver and SQLite), seeded like bench/rest_path.py: an Agent Runtime
session with 100 hook events and a session whose turn hangs on a provider that never
answers. Each route is warmed up with 200 requests, then `--requests` more are counted,
with instrumentation on around them only (`callgrind_control -i on/off`).

Run: .venv/bin/python bench/app_instructions.py [--routes events,post_events] [--requests 50]
Needs valgrind (apt-get install valgrind). About 40 s per route. To compare two commits,
run it in a worktree of each (`git worktree add`, with `.venv` linked): the app is
imported from the working directory.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

ROOT = Path.cwd()
sys.path.insert(0, str(ROOT))

from bench.common import table  # noqa: E402
from bench.rest_path import hook_event  # noqa: E402

AR = "bench-ar"
ROUTES = {  # name -> (method, path with {hang} for the hanging session, body)
    "health": ("GET", "/health", None),
    "get_session": ("GET", f"/sessions/{AR}", None),
    "get_v1_session": ("GET", "/v1/sessions/{hang}", None),
    "events": ("GET", f"/sessions/{AR}/events?limit=100", None),
    "post_events": ("POST", f"/sessions/{AR}/events", hook_event(AR, 1)),
    "post_message": ("POST", "/v1/sessions/{hang}/messages", {"content": "more"}),
    "messages": ("GET", "/v1/sessions/{hang}/messages?limit=100", None),
}


async def call(app, method: str, target: str, body=None) -> tuple[int, bytes]:
    """One request through ASGI, as wrk sends it; (status, body)."""
    path, _, query = target.partition("?")
    data = json.dumps(body).encode() if body is not None else b""
    headers = [(b"host", b"bench"), (b"user-agent", b"wrk")]
    if body is not None:
        headers += [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
             "path": path, "raw_path": path.encode(), "query_string": query.encode(), "root_path": "",
             "headers": headers, "client": ("127.0.0.1", 5555), "server": ("127.0.0.1", 8000), "extensions": {}}
    never = asyncio.get_running_loop().create_future()
    sent, out = False, {"status": 0, "body": b""}

    async def receive():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": data, "more_body": False}
        return await never  # the client stays connected

    async def send(message):
        if message["type"] == "http.response.start":
            out["status"] = message["status"]
        elif message["type"] == "http.response.body":
            out["body"] += message.get("body", b"")

    await app(scope, receive, send)
    return out["status"], out["body"]


async def seeded_app():
    """The app on a fresh SQLite file, seeded; (app, the hanging session's id)."""
    os.environ.update(DATA_DIR=tempfile.mkdtemp(prefix="bench-instr-"), LOG_LEVEL="INFO")
    from app.main import create_app

    app = create_app()
    await app.startup()
    for thread in threading.enumerate():  # the provider SDKs load in the background: not counted
        if "import" in thread.name:
            thread.join()
    hole = socket.socket()  # accepts and never answers: a turn there hangs
    hole.bind(("127.0.0.1", 0))
    hole.listen(128)
    app.extensions["bench_hole"] = hole

    async def made(method, path, body) -> dict:
        status, answer = await call(app, method, path, body)
        if status not in (200, 201):
            raise RuntimeError(f"{method} {path}: {status} {answer[:200]!r}")
        return json.loads(answer)

    await made("POST", "/sessions", {"session_id": AR, "session_name": "bench"})
    for i in range(100):
        await made("POST", f"/sessions/{AR}/events", hook_event(AR, i))
    provider = await made("POST", "/v1/llm-providers", {"name": "hole", "provider_type": "openai", "api_key": "k",
                                                         "base_url": f"http://127.0.0.1:{hole.getsockname()[1]}/v1"})
    model = await made("POST", f"/v1/llm-providers/{provider['id']}/models", {"model_id": "hang"})
    agent = await made("POST", "/v1/agents", {"name": "bench", "system_prompt": "hi"})
    hang = (await made("POST", f"/v1/agents/{agent['id']}/sessions", {"model_id": model["id"]}))["id"]
    await made("POST", f"/v1/sessions/{hang}/messages", {"content": "first"})
    await asyncio.sleep(0.5)
    return app, hang


async def inner(route: str, requests: int) -> None:
    """Under callgrind: count `requests` requests of `route`, instrumentation on around them."""
    app, hang = await seeded_app()
    method, path, body = ROUTES[route]
    path = path.format(hang=hang)
    for _ in range(200):
        status, _ = await call(app, method, path, body)
    if status >= 300:
        raise RuntimeError(f"{route}: {status}")
    await asyncio.sleep(0.2)
    # Blocking on purpose: the loop runs nothing while the instrumentation is switched.
    subprocess.run(["callgrind_control", "-i", "on", str(os.getpid())], check=True, capture_output=True)  # noqa: ASYNC221
    for _ in range(requests):
        await call(app, method, path, body)
    subprocess.run(["callgrind_control", "-i", "off", str(os.getpid())], check=True, capture_output=True)  # noqa: ASYNC221
    sys.stdout.flush()
    os._exit(0)  # the app's background threads and the hanging turn are not waited for


def count(route: str, requests: int) -> int:
    """Instructions per request of `route` (a valgrind run of this script)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        run = subprocess.run(["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}",
                              sys.executable, __file__, "--inner", route, "--requests", str(requests)],
                             env={**os.environ, "PYTHONMALLOC": "malloc"}, capture_output=True, text=True)
        totals = [line for line in out.read_text().splitlines() if line.startswith("totals:")] if out.exists() else []
        if run.returncode != 0 or not totals:
            raise RuntimeError(f"{route}: valgrind exited {run.returncode}\n{run.stderr[-2000:]}")
        return int(totals[0].split()[1]) // requests


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--routes", default=",".join(ROUTES), help=f"comma-separated, of: {', '.join(ROUTES)}")
    parser.add_argument("--requests", type=int, default=50, help="requests counted per route")
    parser.add_argument("--inner", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.inner:
        import uvloop

        uvloop.run(inner(args.inner, args.requests))
        return
    rows = []
    for route in args.routes.split(","):
        method, path, _ = ROUTES[route]
        rows.append([route, f"{method} {path}", f"{count(route, args.requests) / 1e6:.3f}"])
        print(f"{route}: {rows[-1][2]}M", file=sys.stderr, flush=True)
    print(f"commit: {subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], capture_output=True, text=True).stdout.strip()}"
          f", {args.requests} requests counted per route, after 200 warm-up ones")
    print(table(["route", "request", "instructions / request (M)"], rows))


if __name__ == "__main__":
    main()
