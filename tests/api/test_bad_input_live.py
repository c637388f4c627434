"""Bad input that needs a real server process: raw bytes in a header, a chunked body over
the limit on a keep-alive connection, and control characters reaching the logs."""

from __future__ import annotations

import json
import socket
import time

import httpx
from quart import Blueprint

from app.main import create_app


def raw_request(port: int, request: bytes) -> bytes:
    """Send bytes exactly as given and read until the server closes or goes quiet."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request)
        received = b""
        try:
            while chunk := sock.recv(65536):
                received += chunk
                if b"\r\n\r\n" in received and b"Content-Length" in received.split(b"\r\n\r\n")[0]:
                    head, _, body = received.partition(b"\r\n\r\n")
                    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                                      if line.lower().startswith(b"content-length")))
                    if len(body) >= length:
                        break
        except TimeoutError:
            pass
    return received


def test_last_event_id_with_a_non_ascii_digit_is_400_before_the_stream(live_server):
    """Python's http.client sends str header values as Latin-1: "²" is the byte 0xB2,
    which str.isdigit() accepted and int() refused (a 500)."""
    session = httpx.post(f"{live_server.url}/sessions", json={"session_id": "s1", "session_name": "x"})
    assert session.status_code == 200
    response = raw_request(live_server.port, b"GET /v1/sessions/s1/events HTTP/1.1\r\nHost: x\r\n"
                                             b"Accept: text/event-stream\r\nLast-Event-ID: \xb2\r\n\r\n")
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400"), response[:300]
    assert b"application/json" in head
    assert "Last-Event-ID" in json.loads(body)["error"]["message"]


def test_a_chunked_body_over_the_limit_closes_the_connection_cleanly(live_server_factory):
    """httpx reuses a keep-alive connection: after the 413 its next request went out on
    the connection the server then dropped."""
    server = live_server_factory({"MAX_BODY_BYTES": "2048"})

    def too_big():
        for _ in range(8):
            yield b'{"name": "' + b"x" * 1024

    with httpx.Client(base_url=server.url, timeout=5) as client:
        response = client.post("/v1/agents", content=too_big(), headers={"Content-Type": "application/json"})
        assert response.status_code == 413
        assert response.headers["connection"] == "close"
        assert response.json()["error"]["code"] == "payload_too_large"
        assert client.get("/health").status_code == 200  # on a new connection, not lost


def test_a_path_holding_a_newline_cannot_forge_an_access_log_line(live_server):
    response = httpx.get(f"{live_server.url}/v1/sessions/x%0AFORGED%20access%20line%0D")
    assert response.status_code == 404
    deadline = time.monotonic() + 5
    while "FORGED" not in (log := live_server.log()) and time.monotonic() < deadline:
        time.sleep(0.05)  # the access line is written just after the response is sent
    assert "x\\nFORGED access line\\r" in log
    assert not any(line.startswith("FORGED") for line in log.splitlines())


async def test_a_500_whose_path_holds_a_newline_cannot_forge_an_error_log_line(settings, capfd):
    app = create_app(settings)  # configures logging onto this test's captured stderr
    broken = Blueprint("broken", __name__)

    @broken.get("/v1/broken/<rest>")
    async def fail(rest):
        raise RuntimeError("boom")

    app.register_blueprint(broken)
    async with app.test_app():
        response = await app.test_client().get("/v1/broken/a%0A2026-01-01%2000:00:00,000%20ERROR%20forged")
    assert response.status_code == 500
    err = capfd.readouterr().err
    assert "unhandled error on GET /v1/broken/a\\n2026-01-01" in err
    assert not any(line.startswith("2026-01-01 00:00:00,000 ERROR forged") for line in err.splitlines())
    assert "Traceback (most recent call last):\n" in err  # the traceback keeps its lines
