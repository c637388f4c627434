"""What later Everruns clients send, against a real server process: plain HTTP clients
paging the event log (urllib sends no Accept, requests sends */*), the SDK's message
envelope, and the OpenAPI document describing both message forms."""

from __future__ import annotations

import json
import urllib.request

import httpx
import pytest
import requests

TIMEOUT = 5  # seconds: a client that got a stream instead of a page fails here, not hangs


@pytest.fixture
def seeded(live_server) -> dict:
    """An Agent Runtime session with events (three posted), so the log has pages to read."""
    base = live_server.url
    assert httpx.post(f"{base}/sessions", json={"session_id": "ev-1", "session_name": "x"}).status_code == 200
    for n in range(3):
        hook = {"event_type": "post_tool", "session_id": "ev-1", "session_name": "x", "tool_name": f"T{n}",
                "tool_use_id": f"t{n}", "tool_output": n, "timestamp": "2026-11-30T00:00:00.000000Z"}
        posted = httpx.post(f"{base}/sessions/ev-1/events", json=hook)
        assert posted.status_code in (200, 201), posted.text
    url = f"{base}/v1/sessions/ev-1/events"
    # What an Accept: application/json client reads (unchanged behaviour) is the reference.
    log = httpx.get(url, params={"limit": 500}, headers={"Accept": "application/json"}, timeout=TIMEOUT).json()
    assert log["total"] == len(log["data"]) >= 3
    return {"url": url, "total": log["total"], "sequences": [e["sequence"] for e in log["data"]]}


def test_urllib_gets_the_stream_by_default_and_pages_with_format_json(seeded):
    """urlopen(url) sends no Accept: that is SSE, as documented (EventSource and curl -N
    rely on it), so a JSON client says ?format=json and pages with after/next_after."""
    with urllib.request.urlopen(seeded["url"], timeout=TIMEOUT) as response:
        assert response.headers["Content-Type"].startswith("text/event-stream")
        assert response.readline() == b"retry: 2000\n"
    with urllib.request.urlopen(f"{seeded['url']}?format=json&limit=2", timeout=TIMEOUT) as response:
        assert response.headers["Content-Type"].startswith("application/json")
        first = json.load(response)
    assert first["total"] == seeded["total"] and len(first["data"]) == 2
    second_page = f"{seeded['url']}?format=json&after={first['next_after']}"
    with urllib.request.urlopen(second_page, timeout=TIMEOUT) as response:
        second = json.load(response)
    assert [e["sequence"] for e in first["data"] + second["data"]] == seeded["sequences"]
    assert second["next_after"] == seeded["sequences"][-1]


def test_requests_gets_the_stream_by_default_and_pages_with_format_json(seeded):
    """requests.get(url) sends Accept: */*: SSE too; with ?format=json the whole log."""
    with requests.get(seeded["url"], stream=True, timeout=TIMEOUT) as stream:
        assert stream.headers["Content-Type"].startswith("text/event-stream")
        assert next(stream.iter_lines()) == b"retry: 2000"
    response = requests.get(seeded["url"], params={"format": "json", "limit": 500}, timeout=TIMEOUT)
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("application/json")
    page = response.json()
    assert page["total"] == seeded["total"] and [e["sequence"] for e in page["data"]] == seeded["sequences"]
    assert all(e["session_id"] == "ev-1" and isinstance(e["data"], dict) for e in page["data"])


def test_format_beats_accept_both_ways(seeded):
    """?format= is what the client asked for, whatever its HTTP library put in Accept."""
    page = requests.get(seeded["url"], params={"format": "json"}, headers={"Accept": "text/event-stream"},
                        timeout=TIMEOUT)
    assert page.headers["Content-Type"].startswith("application/json") and page.json()["total"] == seeded["total"]
    with requests.get(seeded["url"], params={"format": "sse"}, headers={"Accept": "application/json"},
                      stream=True, timeout=TIMEOUT) as stream:
        assert stream.headers["Content-Type"].startswith("text/event-stream")
        assert next(stream.iter_lines()) == b"retry: 2000"


def test_bad_format_and_json_on_the_sse_alias_are_400(seeded, live_server):
    bad = requests.get(seeded["url"], params={"format": "xml"}, timeout=TIMEOUT)
    assert bad.status_code == 400 and "format" in bad.json()["error"]["message"]
    alias = requests.get(f"{live_server.url}/v1/sessions/ev-1/sse", params={"format": "json"}, timeout=TIMEOUT)
    assert alias.status_code == 400 and "format=json" in alias.json()["error"]["message"]


def test_sdk_message_envelope_is_stored_as_the_text_the_model_reads(live_server):
    """The body the Everruns SDK's messages.create posts, sent with httpx as the SDK does."""
    base = live_server.url
    agent = httpx.post(f"{base}/v1/agents", json={"name": "A", "system_prompt": "p"}).json()
    session = httpx.post(f"{base}/v1/sessions", json={"agent_id": agent["id"]}).json()
    body = {"message": {"role": "user", "content": [{"type": "text", "text": "Reset my password."},
                                                    {"type": "text", "text": "Account: bob"}]}}
    created = httpx.post(f"{base}/v1/sessions/{session['id']}/messages", json=body, timeout=TIMEOUT)
    assert created.status_code == 201, created.text
    assert created.json()["content"] == {"text": "Reset my password.\n\nAccount: bob"}
    listed = httpx.get(f"{base}/v1/sessions/{session['id']}/messages", timeout=TIMEOUT).json()["data"]
    assert [m["content"]["text"] for m in listed if m["role"] == "user"] == ["Reset my password.\n\nAccount: bob"]


def test_openapi_describes_both_message_forms(live_server):
    doc = httpx.get(f"{live_server.url}/api-doc/openapi.json", timeout=TIMEOUT).json()
    schemas = doc["components"]["schemas"]

    def resolve(schema: dict) -> dict:
        return schemas[schema["$ref"].rsplit("/", 1)[1]] if "$ref" in schema else schema

    for path in ("/v1/sessions/{session_id}/messages", "/v1/agents/{agent_id}/sessions/{session_id}/messages"):
        body = resolve(doc["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"])
        forms = [resolve(form) for form in body.get("oneOf") or body.get("anyOf")]
        assert sorted(tuple(sorted(form["properties"])) for form in forms) == [("content", "role"), ("message",)]
        seed_form = next(form for form in forms if "content" in form["properties"])
        content_forms = seed_form["properties"]["content"]["anyOf"]
        block_list = next(form for form in content_forms if form.get("type") == "array")
        block = resolve(block_list["items"])
        assert block["properties"]["type"]["const"] == "text" and "text" in block["required"]


def test_openapi_says_which_event_routes_stream(live_server):
    doc = httpx.get(f"{live_server.url}/api-doc/openapi.json", timeout=TIMEOUT).json()
    for path in ("/v1/sessions/{session_id}/events", "/v1/agents/{agent_id}/sessions/{session_id}/events"):
        operation = doc["paths"][path]["get"]
        assert set(operation["responses"]["200"]["content"]) == {"application/json", "text/event-stream"}
        fmt = next(p for p in operation["parameters"] if p["name"] == "format")
        assert sorted(fmt["schema"]["anyOf"][0]["enum"]) == ["json", "sse"]
    alias = doc["paths"]["/v1/sessions/{session_id}/sse"]["get"]
    assert set(alias["responses"]["200"]["content"]) == {"text/event-stream"}
