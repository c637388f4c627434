"""The error contract for every kind of failure, and the request id."""

from __future__ import annotations

import pytest
from quart import Blueprint


def assert_error(body, status, code):
    assert body["status"] == status and body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]


async def test_unknown_route_is_404_in_shape(client):
    response = await client.get("/v1/nothing-here")
    assert response.status_code == 404
    assert_error(await response.get_json(), 404, "not_found")


async def test_wrong_method_is_405(client):
    response = await client.put("/v1/agents")
    assert response.status_code == 405 and "GET" in response.headers["Allow"]
    assert_error(await response.get_json(), 405, "method_not_allowed")


async def test_malformed_json_is_400(client):
    response = await client.post("/v1/agents", data=b'{"name": ', headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert_error(await response.get_json(), 400, "invalid_request")


async def test_non_object_body_is_400(client):
    response = await client.post("/v1/agents", json=["a", "list"])
    assert response.status_code == 400
    assert_error(await response.get_json(), 400, "invalid_request")


async def test_wrong_types_name_the_field(client):
    response = await client.post("/v1/agents", json={"name": "a", "system_prompt": "p", "tags": "oops"})
    body = await response.get_json()
    assert response.status_code == 400 and body["error"]["message"].startswith("tags")


async def test_body_over_limit_is_413(client, settings):
    big = "x" * (settings.max_body_bytes + 1)
    response = await client.post("/v1/agents", json={"name": "a", "system_prompt": big})
    assert response.status_code == 413
    assert_error(await response.get_json(), 413, "payload_too_large")


async def test_internal_error_hides_details_and_quotes_request_id(app, caplog):
    bp = Blueprint("boom", __name__)

    @bp.get("/v1/boom")
    async def boom():
        raise RuntimeError("secret stack detail")

    app.register_blueprint(bp)
    client = app.test_client()
    response = await client.get("/v1/boom", headers={"X-Request-ID": "req-123"})
    text = await response.get_data(as_text=True)
    assert response.status_code == 500 and "secret stack detail" not in text and "Traceback" not in text
    assert_error(await response.get_json(), 500, "internal_error")
    assert "req-123" in text and response.headers["X-Request-ID"] == "req-123"
    assert any("req-123" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("path", ["/health", "/v1/agents", "/v1/nothing"])
async def test_every_response_has_a_request_id(client, path):
    response = await client.get(path)
    assert len(response.headers["X-Request-ID"]) >= 16
    mine = await client.get(path, headers={"X-Request-ID": "abc-1"})
    assert mine.headers["X-Request-ID"] == "abc-1"
    bad = await client.get(path, headers={"X-Request-ID": "no spaces allowed"})
    assert bad.headers["X-Request-ID"] != "no spaces allowed"


async def test_a_plain_get_of_ws_says_a_websocket_is_needed(client):
    """Reported: `curl localhost:9000/ws` answered "Bad request: The browser (or proxy) sent
    a request that this server could not understand."."""
    response = await client.get("/ws")
    body = await response.get_json()
    assert response.status_code == 400 and body["error"]["code"] == "invalid_request"
    assert body["message"] == "/ws is a WebSocket endpoint: connect with a WebSocket client (Upgrade: websocket)"
