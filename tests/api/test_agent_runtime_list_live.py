"""`GET /sessions/{id}/events` against a real server: a long list costs the server a
batch of the log, not the log, however many ask for it at once, and a client that asks
for one and never reads is cut off (SEND_TIMEOUT_SECONDS) like any stream."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import httpx
import orjson

from tests.live_server import report_session, until

COUNT, SIZE = 30, 900_000  # 27 MB of tool output (each event just under MAX_BODY_BYTES)
READERS = 4
# Peak RSS growth allowed. The old code, which built each answer whole: 260-290 MB for the
# four readers, 260 MB for the three stalled clients. Now 20-50 MB: a few MB a request,
# and what the allocator keeps of it.
GROWTH_MB = 80


def _large_log(server, session_id: str) -> None:
    """Then read once, so that what the requests measured cost is theirs, not the first
    read's (the first large reads grow the allocator's heaps for good: 30 MB or so)."""
    events = ({"event_type": "post_tool", "tool_name": "Read", "tool_output": f"{i} " + "x" * SIZE} for i in range(COUNT))
    with report_session(server.url, session_id, events) as http:
        assert len(http.get(f"/sessions/{session_id}/events").json()["events"]) == COUNT


def _kib(pid: int, field: str) -> int:
    line = next(x for x in Path(f"/proc/{pid}/status").read_text().splitlines() if x.startswith(field + ":"))
    return int(line.split()[1])


def _peak_from_here(pid: int) -> int:
    """Start the process's peak RSS (VmHWM) again from its current RSS (Linux: clear_refs
    5); that RSS, in KiB."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")
    return _kib(pid, "VmRSS")


def test_concurrent_unbounded_lists_cost_a_batch_each_not_the_log(live_server_factory):
    """Reported: the list was decoded, shaped and encoded whole before a byte went out,
    several times the log's size per request (its data is in each event twice), and a
    few concurrent ones took the server to gigabytes. Now it is streamed (chunked) in
    batches of about a MB of the log."""
    server = live_server_factory()
    _large_log(server, "big")
    pid = server.proc.pid
    bodies: list[bytes] = []
    heads: list[httpx.Headers] = []

    def read() -> None:
        with httpx.stream("GET", f"{server.url}/sessions/big/events", timeout=30) as stream:
            heads.append(stream.headers)
            bodies.append(b"".join(stream.iter_bytes()))

    before = _peak_from_here(pid)
    readers = [threading.Thread(target=read) for _ in range(READERS)]
    for reader in readers:
        reader.start()
    for reader in readers:
        reader.join(60)
    growth_mb = (_kib(pid, "VmHWM") - before) / 1024
    print(f"peak RSS growth for {READERS} concurrent lists of a {COUNT * SIZE / 1e6:.0f} MB log: {growth_mb:.0f} MB")
    assert len(bodies) == READERS and len(set(bodies)) == 1
    events = orjson.loads(bodies[0])["events"]
    assert [e["tool_output"].split()[0] for e in events] == [str(i) for i in range(COUNT)]
    # Each answer is twice the log (54 MB: its data is in each event twice).
    assert growth_mb < GROWTH_MB, f"{growth_mb:.0f} MB"
    assert all(h.get("transfer-encoding") == "chunked" and "content-length" not in h for h in heads)
    assert heads[0]["content-type"] == "application/json"
    # A short answer of small events still goes in one piece.
    short = httpx.get(f"{server.url}/sessions/big/events?after={COUNT}")
    assert short.headers["content-length"] == str(len(short.content)) and short.json() == {"events": []}


def _stalled_client(port: int, path: str) -> socket.socket:
    """Asks for `path` and never reads, with a tiny receive window (set before connecting)."""
    stalled = socket.socket()
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.connect(("127.0.0.1", port))
    stalled.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    return stalled


def test_clients_that_never_read_an_unbounded_list_are_cut_off_and_hold_little(live_server_factory):
    """Before, each such client held the whole encoded list (54 MB here) until it was cut
    off (260 MB for these three); now its stream waits on one batch, then ends with the
    connection."""
    server = live_server_factory({"SEND_TIMEOUT_SECONDS": "2"})
    _large_log(server, "big")
    before = _peak_from_here(server.proc.pid)
    stalled = [_stalled_client(server.port, "/sessions/big/events" if i % 2 else "/events/big") for i in range(3)]
    try:
        ports = {s.getsockname()[1] for s in stalled}
        until(lambda: ports <= server.held_connections(), 5, "the stalled clients connected")
        until(lambda: not ports & server.held_connections(), 2 + 5, "the stalled clients cut off")
        growth_mb = (_kib(server.proc.pid, "VmHWM") - before) / 1024
        print(f"peak RSS growth for 3 stalled clients: {growth_mb:.0f} MB")
        assert server.log().count("took nothing for 2 s") == 3
    finally:
        for sock in stalled:
            sock.close()
    assert growth_mb < GROWTH_MB, f"{growth_mb:.0f} MB"
    assert httpx.get(f"{server.url}/health").status_code == 200
    answer = httpx.get(f"{server.url}/events/big?events=all", timeout=30)
    assert answer.status_code == 200 and len(answer.json()["events"]) == COUNT
    assert "Traceback" not in server.log()
