"""The fake OpenAI provider (tests/fakes) in its own process, with timestamps.

Run by the benchmarks as a subprocess so the fake's event loop competes with neither
the server's nor the measuring client's. It prints `PORT <n>` once listening, then
reads one JSON command per line on stdin and answers one JSON line on stdout:

    {"cmd": "script", "chunks": ["a", "b"], "delay": 0.01}  -> {"ok": true}
    {"cmd": "log"}   -> {"requests": [{"t_req": .., "chunks": [[text, t], ...]}, ...]}

`log` returns and clears what was recorded since the last `log`: for each chat request,
when the fake picked its reply (t_req, right after reading the request body) and when
each content chunk was encoded for sending. Times are time.monotonic(), which on Linux
is CLOCK_MONOTONIC, one clock shared by all processes, so the client can compare them
with its own readings. With nothing scripted the fake answers "echo: <text>" at once.
EOF on stdin stops it.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fakes import llm_server  # noqa: E402
from tests.fakes.llm_server import FakeLLM, Text  # noqa: E402

_lock = threading.Lock()
_requests: list[dict] = []  # in arrival order
_by_id: dict[str, dict] = {}
_original_sse = llm_server._sse


def _timed_sse(data, event=None):
    """Wraps the fake's SSE encoder: note when each OpenAI content chunk is produced."""
    choices = data.get("choices") if isinstance(data, dict) else None
    if choices:
        content = (choices[0].get("delta") or {}).get("content")
        if content:
            now = time.monotonic()
            with _lock:
                entry = _by_id.get(data["id"])
                if entry is None:  # first chunk of a response: belongs to the oldest request without one
                    entry = next((r for r in _requests if r["id"] is None), None)
                    if entry is None:
                        entry = {"t_req": None, "id": None, "chunks": []}
                        _requests.append(entry)
                    entry["id"] = data["id"]
                    _by_id[data["id"]] = entry
                entry["chunks"].append([content, now])
    return _original_sse(data, event)


class TimedFakeLLM(FakeLLM):
    def _next_reply(self, body):
        now = time.monotonic()
        with _lock:
            _requests.append({"t_req": now, "id": None, "chunks": []})
        return super()._next_reply(body)


def main() -> None:
    llm_server._sse = _timed_sse
    fake = TimedFakeLLM(api_key=None).start()
    print(f"PORT {fake.port}", flush=True)
    for line in sys.stdin:
        command = json.loads(line)
        if command["cmd"] == "script":
            fake.script(Text(command["chunks"], delay=command.get("delay", 0.0)))
            answer: dict = {"ok": True}
        elif command["cmd"] == "log":
            with _lock:
                answer = {"requests": [{"t_req": r["t_req"], "chunks": r["chunks"]} for r in _requests]}
                _requests.clear()
                _by_id.clear()
        else:
            answer = {"error": f"unknown command {command['cmd']!r}"}
        print(json.dumps(answer), flush=True)
    fake.stop()


if __name__ == "__main__":
    main()
