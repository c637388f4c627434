"""A fake OpenAI Chat Completions provider for the benchmarks, with timestamps.

The benchmarks run it as a subprocess so that its event loop competes with neither the
server's nor the measuring client's. It answers POST .../chat/completions in the real
streaming wire format (`chat.completion.chunk` SSE frames over chunked transfer encoding,
keep-alive, usage chunk on `stream_options.include_usage`, then `data: [DONE]`), like
`_openai_stream` in tests/fakes/llm_server.py; `"stream": false` gets a `chat.completion`
JSON body and other paths a 404. Unscripted, it replies "echo: <last user text>" in two
chunks at once.

It is a raw asyncio.Protocol HTTP/1.1 server, stdlib only, rather than the Quart app of
tests/fakes: `t_req` is stamped on arrival of the read that completes a request (its
last body bytes), so it marks the moment the whole request had reached the provider,
and the fake's own parsing (about 0.5 ms under Hypercorn + Quart) is not counted as the
runtime's time. Not the first bytes: the openai SDK writes head and body separately, and
the gap between them is the client's doing. The parsing
here is minimal too (Content-Length bodies only, which is what the openai SDK sends).

Everything runs on one event loop in the main thread, stdin included, so the shared
state needs no lock. It prints `PORT <n>` once listening on 127.0.0.1, then reads one
JSON command per line on stdin and answers one JSON line on stdout:

    {"cmd": "script", "chunks": ["a", "b"], "delay": 0.01}  -> {"ok": true}
    {"cmd": "log"}   -> {"requests": [{"t_req": .., "chunks": [[text, t], ...]}, ...]}

`script` sets the reply of the next chat request (FIFO, one per request): those chunks,
`delay` seconds apart. `log` returns and clears what was recorded, per chat request in
arrival order: t_req, and for each content chunk the time just before its bytes were
written to the socket. Times are time.monotonic(), on Linux CLOCK_MONOTONIC, one clock
shared by all processes, so the client can compare them with its own readings. EOF on
stdin stops the process.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import sys
import time
from collections import deque

_scripts: deque[tuple[list[str], float]] = deque()  # (chunks, delay), one per chat request
_log: list[dict] = []  # {"t_req": t, "chunks": [[text, t], ...]} per chat request, until `log`
_ids = itertools.count(1)

STREAM_HEAD = (b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n"
               b"transfer-encoding: chunked\r\n\r\n")


def _sse(obj: dict | str) -> bytes:
    """One SSE `data:` frame as one HTTP chunk."""
    data = b"data: " + (obj if isinstance(obj, str) else json.dumps(obj)).encode() + b"\n\n"
    return b"%x\r\n%s\r\n" % (len(data), data)


def _json_response(status: str, obj: dict) -> bytes:
    body = json.dumps(obj).encode()
    head = f"HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n"
    return head.encode() + body


def _last_user_text(body: dict) -> str:
    for msg in reversed(body.get("messages") or []):
        if isinstance(msg, dict) and msg.get("role") == "user":
            content = msg.get("content")
            if isinstance(content, list):  # content parts
                return "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
            return content if isinstance(content, str) else ""
    return ""


class Reply:
    """One chat completion in progress: its chunks, the recorded entry, the OpenAI envelope."""

    def __init__(self, body: dict, t_req: float):
        self.chunks, self.delay = _scripts.popleft() if _scripts else (["echo: ", _last_user_text(body)], 0.0)
        self.entry = {"t_req": t_req, "chunks": []}
        _log.append(self.entry)
        self.stream = bool(body.get("stream"))
        self.usage = self.stream and bool((body.get("stream_options") or {}).get("include_usage"))
        self.base = {"id": f"chatcmpl-fake{next(_ids)}", "created": int(time.time()), "model": body.get("model", "gpt-fake")}
        self.sent = 0  # chunks written so far
        self.pending = STREAM_HEAD if self.stream else b""  # the head goes out with the first frame

    def frame(self, delta: dict, finish: str | None = None) -> bytes:
        if self.pending:  # first frame: its delta carries the role, as OpenAI does
            delta = {"role": "assistant", **delta}
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        obj = {**self.base, "object": "chat.completion.chunk", "choices": [choice]}
        if self.usage:
            obj["usage"] = None  # OpenAI sends usage: null on every chunk but the last
        data, self.pending = self.pending + _sse(obj), b""
        return data

    def tail(self) -> bytes:
        tokens = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
        if not self.stream:
            message = {"role": "assistant", "content": "".join(self.chunks), "refusal": None}
            choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": "stop"}
            return _json_response("200 OK", {**self.base, "object": "chat.completion", "choices": [choice], "usage": tokens})
        data = self.frame({}, "stop")
        if self.usage:
            data += _sse({**self.base, "object": "chat.completion.chunk", "choices": [], "usage": tokens})
        return data + _sse("[DONE]") + b"0\r\n\r\n"


class Connection(asyncio.Protocol):
    """One client connection: keep-alive, requests answered one at a time, in order."""

    def connection_made(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        self.buf = b""
        self.t_last = 0.0  # arrival of the latest read: t_req of a request it completes
        self.reply: Reply | None = None  # while set, further (pipelined) requests wait in buf
        self.timer: asyncio.TimerHandle | None = None
        self.close_after = False

    def data_received(self, data: bytes) -> None:
        self.t_last = time.monotonic()  # first thing: t_req of any request this read completes
        self.buf += data
        if self.reply is None:
            self.serve()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.timer:
            self.timer.cancel()

    def serve(self) -> None:
        """Answer the complete requests in buf until one has to wait for its delay."""
        while self.reply is None and not self.transport.is_closing():
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            lines = self.buf[:end].decode("latin-1").split("\r\n")
            headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
            stop = end + 4 + int(headers.get("content-length", 0))
            if len(self.buf) < stop:
                return  # the body is still on its way
            body, self.buf, t_req = self.buf[end + 4:stop], self.buf[stop:], self.t_last
            self.close_after = headers.get("connection", "").lower() == "close"
            method, path = (lines[0].split() + ["", ""])[:2]
            if method == "POST" and path.split("?")[0].endswith("/chat/completions"):
                self.reply = Reply(json.loads(body or b"{}"), t_req)
                self.send()
            else:
                self.finish(_json_response("404 Not Found", {"error": {"message": f"no route {method} {path}",
                                                                      "type": "invalid_request_error"}}))

    def send(self) -> None:
        """Write the reply's next chunks; with a delay, come back via call_later for each."""
        r, self.timer = self.reply, None
        while r.sent < len(r.chunks):
            text = r.chunks[r.sent]
            r.sent += 1
            if r.stream:
                data = r.frame({"content": text})
                r.entry["chunks"].append([text, time.monotonic()])
                self.transport.write(data)
            if r.delay and r.sent < len(r.chunks):
                self.timer = asyncio.get_running_loop().call_later(r.delay, self.resume)
                return
        if not r.stream:  # the whole text goes out in the one JSON body
            t = time.monotonic()
            r.entry["chunks"] = [[text, t] for text in r.chunks]
        self.reply = None
        self.finish(r.tail())

    def resume(self) -> None:
        self.send()
        self.serve()  # requests that arrived while this one was being answered

    def finish(self, data: bytes) -> None:
        self.transport.write(data)
        if self.close_after:
            self.transport.close()


def _command(command: dict) -> dict:
    if command.get("cmd") == "script":
        _scripts.append((list(command["chunks"]), float(command.get("delay", 0.0))))
        return {"ok": True}
    if command.get("cmd") == "log":
        requests = sorted(_log, key=lambda r: r["t_req"])  # arrival order, across connections too
        _log.clear()
        return {"requests": requests}
    return {"error": f"unknown command {command.get('cmd')!r}"}


async def main() -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Connection, "127.0.0.1", 0)
    print(f"PORT {server.sockets[0].getsockname()[1]}", flush=True)
    stdin = asyncio.StreamReader(limit=1 << 24)  # read on this loop: no thread, no lock
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
    while line := await stdin.readline():
        if line.strip():
            print(json.dumps(_command(json.loads(line))), flush=True)
    server.close()


if __name__ == "__main__":
    asyncio.run(main())
