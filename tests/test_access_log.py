"""The access log of a real server process: one line per request, with the request id
(app/log_setup.py AccessLogger), and none at all with ACCESS_LOG=false."""

from __future__ import annotations

import time

import httpx


def _wait_for(server, text: str, seconds: float = 5.0) -> str:
    deadline = time.monotonic() + seconds
    while text not in (log := server.log()) and time.monotonic() < deadline:
        time.sleep(0.05)  # the line is written just after the response is sent
    return log


def test_each_request_gets_one_line_naming_its_request_id(live_server):
    response = httpx.get(f"{live_server.url}/health?probe=1", headers={"X-Request-ID": "trace-abc.123",
                                                                       "User-Agent": "probe/1.0"})
    assert response.status_code == 200
    log = _wait_for(live_server, "trace-abc.123")
    lines = [line for line in log.splitlines() if "trace-abc.123" in line]
    assert len(lines) == 1
    line = lines[0]
    assert '"GET /health?probe=1 1.1" 200 ' in line
    assert f" {response.headers['content-length']} " in line  # the response's size
    assert '"probe/1.0"' in line
    assert line.rstrip().endswith("ms")  # the time taken


def test_a_request_id_the_server_made_is_logged_too(live_server):
    response = httpx.get(f"{live_server.url}/v1/agents/none-such")
    assert response.status_code == 404
    made = response.headers["x-request-id"]
    log = _wait_for(live_server, made)
    assert any('"GET /v1/agents/none-such 1.1" 404 ' in line and made in line for line in log.splitlines())


def test_access_log_false_writes_no_request_lines(live_server_factory):
    server = live_server_factory({"ACCESS_LOG": "false"})
    for _ in range(3):
        assert httpx.get(f"{server.url}/health", headers={"X-Request-ID": "quiet-1"}).status_code == 200
    server.stop()  # every line the process would write is written once it has exited
    log = server.log()
    assert "Running on" in log  # the server's own log is still there
    assert "quiet-1" not in log and '"GET /health' not in log


def test_a_credential_in_the_query_is_not_logged(live_server):
    """Reported: EventSource and /ws clients send ?access_token=<token or evr_ key>
    (docs/api.md §8.3), and the access log wrote the whole key (§8: never logged)."""
    key = "evr_" + "9ef6aaea5d73fe95d0be01b4cb3986a3" * 2
    for path in (f"/v1/sessions/none/events?after=3&access_token={key}", f"/ws?access_token={key}&events=all",
                 f"/health?Access%5Ftoken={key}"):
        httpx.get(f"{live_server.url}{path}", headers={"X-Request-ID": "cred-probe"})
    log = _wait_for(live_server, '"GET /health?Access%5Ftoken=[redacted] 1.1"')
    lines = [line for line in log.splitlines() if "cred-probe" in line]
    assert len(lines) == 3 and key not in log
    assert '"GET /v1/sessions/none/events?after=3&access_token=[redacted] 1.1"' in lines[0]
    assert '"GET /ws?access_token=[redacted]&events=all 1.1"' in lines[1]


def test_hypercorn_lines_are_written_once_and_follow_log_level(live_server_factory, tmp_path):
    """Reported: "Running on …" came twice (Hypercorn's handler, and again through ours),
    and still came with LOG_LEVEL=WARNING. The access lines stay on (ACCESS_LOG decides)."""
    server = live_server_factory({})  # LOG_LEVEL=INFO
    assert server.log().count("Running on") == 1
    quiet = live_server_factory({"LOG_LEVEL": "WARNING"}, data_dir=tmp_path / "quiet")
    assert httpx.get(f"{quiet.url}/health", headers={"X-Request-ID": "warn-level"}).status_code == 200
    log = _wait_for(quiet, "warn-level")
    assert "Running on" not in log and '"GET /health 1.1" 200' in log
