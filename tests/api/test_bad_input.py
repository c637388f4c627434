"""Bad input found by trying the server as an attacker would (issue 11): each request here
answered 500 before; now each is a 400 (or 404) in the route's documented error shape,
and nothing is written. The store-level cases run on SQLite and on PostgreSQL."""

from __future__ import annotations

import pytest

from app.main import create_app
from tests.fakes import Text
from tests.helpers import make_chat, messages, wait_turns

NOT_UTF8 = b"\xff\xfe"
DEEP = b"[" * 1000 + b"]" * 1000  # 2 KB; the 6 KB case nests objects the same way
DEEP_OBJECT = b'{"a":' * 1000 + b"1" + b"}" * 1000

# Every route that takes a JSON body, with a path that exists for it (filled in below).
BODY_ROUTES = [
    ("POST", "/v1/agents"), ("PATCH", "/v1/agents/{agent}"), ("PUT", "/v1/agents/{agent}/capabilities"),
    ("POST", "/v1/sessions"), ("PATCH", "/v1/sessions/{session}"), ("POST", "/v1/sessions/{session}/messages"),
    ("POST", "/v1/agents/{agent}/invoke"), ("POST", "/v1/llm-providers"), ("POST", "/v1/pipelines"),
    ("PUT", "/v1/pipelines/p1"), ("PATCH", "/v1/pipelines/p1"), ("POST", "/v1/pipelines/p1/run"),
    ("POST", "/sessions"), ("POST", "/events"), ("POST", "/sessions/ext-1/events"),
    ("PATCH", "/sessions/ext-1/metadata"), ("POST", "/v1/auth/api-keys"),
]


def assert_shape(path: str, response_body: dict, status: int) -> str:
    """The route's documented error shape; returns the message."""
    if path.startswith(("/sessions", "/events")):
        assert set(response_body) == {"detail"}, response_body
        return response_body["detail"]
    assert response_body["status"] == status and response_body["error"]["code"] == "invalid_request", response_body
    return response_body["error"]["message"]


@pytest.fixture
async def seeded(client):
    agent = await (await client.post("/v1/agents", json={"name": "a1", "system_prompt": "p"})).get_json()
    session = await (await client.post("/v1/sessions", json={"agent_id": agent["id"]})).get_json()
    assert (await client.post("/v1/pipelines", json={"name": "p1", "steps": [{"name": "s", "agent": "a1"}]})).status_code == 201
    assert (await client.post("/sessions", json={"session_id": "ext-1", "session_name": "x"})).status_code == 200
    return {"agent": agent["id"], "session": session["id"]}


async def _counts(client) -> tuple:
    agents = (await (await client.get("/v1/agents")).get_json())["total"]
    sessions = (await (await client.get("/v1/sessions")).get_json())["total"]
    events = len((await (await client.get("/sessions/ext-1/events")).get_json())["events"])
    return agents, sessions, events


@pytest.mark.parametrize("body, words", [(NOT_UTF8, "UTF-8"), (DEEP, "deeper"), (DEEP_OBJECT, "deeper")],
                         ids=["not-utf8", "deep-array", "deep-object"])
async def test_unreadable_bodies_are_400_on_every_json_route(client, seeded, body, words):
    before = await _counts(client)
    for method, template in BODY_ROUTES:
        path = template.format(**seeded)
        response = await client.open(path, method=method, data=body, headers={"Content-Type": "application/json"})
        assert response.status_code == 400, (method, path, await response.get_data())
        assert words in assert_shape(path, await response.get_json(), 400)
    assert await _counts(client) == before


@pytest.mark.parametrize("method, path, body", [
    ("POST", "/v1/sessions", {"agent_id": "{agent}", "metadata": {"n": 18446744073709551616}}),
    ("POST", "/v1/sessions", {"agent_id": "{agent}", "metadata": {"n": -9223372036854775809}}),
    ("PATCH", "/v1/sessions/{session}", {"metadata": {"deep": [{"n": 2**70}]}}),
    ("POST", "/events", {"event_type": "session_stop", "session_id": "ext-1", "session_name": "x",
                         "timestamp": "2026-01-01T00:00:00Z", "exit_code": 99999999999999999999}),
    ("POST", "/v1/llm-providers/{provider}/models", {"model_id": "m", "context_window": 2**40}),
])
async def test_integers_beyond_64_bits_in_bodies_are_400(client, seeded, method, path, body):
    provider = await (await client.post("/v1/llm-providers", json={"name": "p", "provider_type": "openai",
                                                                    "api_key": "k"})).get_json()
    path = path.format(provider=provider["id"], **seeded)
    body = {key: value.format(**seeded) if isinstance(value, str) else value for key, value in body.items()}
    response = await client.open(path, method=method, json=body)
    assert response.status_code == 400, await response.get_data()
    assert_shape(path, await response.get_json(), 400)


@pytest.mark.parametrize("method, path, body", [
    ("POST", "/v1/llm-providers", {"name": "q", "provider_type": "openai", "is_default": "yes"}),
    ("PATCH", "/v1/llm-providers/{provider}", {"is_default": 1}),
    ("POST", "/v1/llm-providers/{provider}/models", {"model_id": "m", "is_default": "true"}),
    ("POST", "/v1/llm-providers/{provider}/models", {"model_id": "m", "context_window": "100"}),
    ("POST", "/v1/llm-providers/{provider}/models", {"model_id": "m", "context_window": 1.0}),
    ("PUT", "/v1/agents/{agent}/capabilities", {"capabilities": [{"id": "noop", "requires_approval": "yes"}]}),
    ("PUT", "/v1/agents/{agent}/capabilities", {"capabilities": [{"id": "noop", "requires_approval": 1}]}),
    ("POST", "/v1/mcp-servers", {"name": "m", "transport": "http", "url": "http://x/mcp", "enabled": "no"}),
])
async def test_booleans_and_integers_in_bodies_are_json_ones(client, seeded, method, path, body):
    """Reported: "yes", 1 and "100" were taken for booleans and integers (docs/api.md 1:
    booleans are JSON booleans). One such default flag silently unset another provider's."""
    provider = await (await client.post("/v1/llm-providers", json={"name": "p", "provider_type": "openai",
                                                                    "api_key": "k", "is_default": True})).get_json()
    response = await client.open(path.format(provider=provider["id"], **seeded), method=method, json=body)
    assert response.status_code == 400, await response.get_data()
    assert_shape(path, await response.get_json(), 400)
    assert (await (await client.get(f"/v1/llm-providers/{provider['id']}")).get_json())["is_default"] is True


@pytest.mark.parametrize("path", [
    "/v1/agents?offset=99999999999999999999", "/v1/sessions?offset=99999999999999999999",
    "/v1/llm-providers?offset=99999999999999999999", "/v1/pipelines?offset=99999999999999999999",
    "/v1/sessions/{session}/messages?offset=99999999999999999999",
    "/v1/sessions/{session}/events?after=99999999999999999999",
    "/v1/sessions/{session}/events?after=9223372036854775807",
    "/sessions/ext-1/events?after=99999999999999999999", "/sessions/ext-1/events?limit=99999999999999999999",
])
async def test_integers_beyond_range_in_queries_are_400(client, seeded, path):
    path = path.format(**seeded)
    response = await client.get(path, headers={"Accept": "application/json"})
    assert response.status_code == 400, await response.get_data()
    assert_shape(path, await response.get_json(), 400)


@pytest.mark.parametrize("header", ["²", "9223372036854775808", "99999999999999999999999", "-1", "1.5"])
async def test_bad_last_event_id_is_400_before_the_stream(client, seeded, header):
    response = await client.get(f"/v1/sessions/{seeded['session']}/events", headers={"Last-Event-ID": header})
    assert response.status_code == 400
    assert response.headers["Content-Type"].startswith("application/json")
    assert "Last-Event-ID" in assert_shape("/v1", await response.get_json(), 400)


async def test_since_beyond_any_sequence_is_400_before_the_stream(client, seeded):
    response = await client.get(f"/v1/sessions/{seeded['session']}/sse?since=9223372036854775808")
    assert response.status_code == 400
    assert_shape("/v1", await response.get_json(), 400)


@pytest.mark.parametrize("path, status, detail", [
    ("/v1/sessions/" + "a" * 200, 404, None), ("/v1/sessions/" + "a" * 200 + "/events", 404, None),
    ("/v1/sessions/" + "a" * 200 + "/messages", 404, None),
    ("/sessions/" + "a" * 200, 404, "Session not found"), ("/sessions/" + "a" * 200 + "/events", 404, "Session not found"),
    ("/events/" + "a" * 200, 404, "Session not found"),
    ("/sessions/" + "a" * 200 + "/status", 200, None),
    ("/v1/agents/" + "a" * 300, 404, None), ("/v1/pipelines/" + "a" * 300, 404, None),
])
async def test_path_ids_longer_than_stored_are_not_found(client, path, status, detail):
    response = await client.get(path, headers={"Accept": "application/json"})
    assert response.status_code == status, await response.get_data()
    body = await response.get_json()
    if detail:
        assert body == {"detail": detail}
    elif status == 200:
        assert body == {"status": "not_existent"}
    else:
        assert body["error"]["code"] == "not_found"


# --- what the store cannot hold: one rule on SQLite and PostgreSQL ---------------------

@pytest.fixture(params=["sqlite", "postgres"])
async def store_client(request, settings):
    if request.param == "postgres":
        settings = settings.replace(database_url=request.getfixturevalue("pg_copy"))
    app = create_app(settings)
    async with app.test_app():
        yield app.test_client()


@pytest.mark.parametrize("method, path, raw", [
    ("POST", "/v1/sessions", r'{"agent_id": "%s", "metadata": {"note": "a\u0000b"}}'),
    ("POST", "/v1/sessions", r'{"agent_id": "%s", "metadata": {"note": "\udba1"}}'),
    ("POST", "/v1/sessions", r'{"agent_id": "%s", "metadata": {"a\u0000": 1}}'),
    ("POST", "/v1/sessions", r'{"agent_id": "%s", "title": "nul \u0000 in a typed field"}'),
    ("POST", "/v1/agents", r'{"name": "n", "system_prompt": "p\u0000"}'),
    ("POST", "/sessions", r'{"session_id": "s-nul", "session_name": "a\u0000b"}'),
    ("POST", "/events", r'{"event_type": "session_start", "session_id": "s-2", "session_name": "x",'
                        r' "timestamp": "2026-01-01T00:00:00Z", "tool_output": ["\udba1"]}'),
], ids=["nul-metadata", "surrogate-metadata", "nul-key", "nul-title", "nul-prompt", "nul-ar-name", "surrogate-event"])
async def test_text_the_store_cannot_hold_is_400_on_both_databases(store_client, method, path, raw):
    agent = await (await store_client.post("/v1/agents", json={"name": "a", "system_prompt": "p"})).get_json()
    raw = raw.replace("%s", agent["id"])
    response = await store_client.open(path, method=method, data=raw.encode(),
                                       headers={"Content-Type": "application/json"})
    assert response.status_code == 400, await response.get_data()
    message = assert_shape(path, await response.get_json(), 400)
    assert "NUL" in message or "surrogate" in message
    assert (await (await store_client.get("/v1/sessions")).get_json())["total"] == 0
    assert (await (await store_client.get("/sessions")).get_json())["sessions"] == []


async def test_paired_surrogate_escapes_are_one_character(store_client):
    response = await store_client.post("/sessions", data=rb'{"session_id": "s1", "session_name": "smile \ud83d\ude00"}',
                                       headers={"Content-Type": "application/json"})
    assert response.status_code == 200, await response.get_data()
    assert (await response.get_json())["session"]["session_name"] == "smile \U0001F600"


async def test_a_model_emitting_nul_or_a_lone_surrogate_does_not_fail_the_turn(store_client, fake_llm):
    session = await make_chat(store_client, fake_llm)
    fake_llm.script(Text(["bad \x00 byte, ", "half \udba1 pair"]))
    await store_client.post(f"/v1/sessions/{session['id']}/messages", json={"content": "go"})
    log = await wait_turns(store_client, session["id"])
    assert log[-1]["type"] == "session.completed", log[-1]
    reply = (await messages(store_client, session["id"]))[-1]
    assert reply["content"]["text"] == "bad \ufffd byte, half \ufffd pair"


@pytest.mark.parametrize("method, path", [
    ("GET", "/v1/agents/a%00b"), ("GET", "/v1/sessions/a%00b"), ("GET", "/sessions/a%00b"),
    ("GET", "/v1/pipelines/a%00b"), ("GET", "/v1/agents/a%00b/sessions"), ("POST", "/v1/agents/a%00b/invoke"),
])
async def test_path_ids_holding_nul_are_not_found_on_both_databases(store_client, method, path):
    response = await store_client.open(path, method=method, json={"input": "hi"} if method == "POST" else None)
    assert response.status_code == 404, await response.get_data()


async def test_status_of_a_session_id_holding_nul_is_not_existent(store_client):
    response = await store_client.get("/sessions/a%00b/status")
    assert response.status_code == 200 and await response.get_json() == {"status": "not_existent"}


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
async def test_a_body_not_sent_as_json_is_refused_where_the_body_is_optional(client, seeded, content_type):
    """`POST /v1/agents/{id}/sessions` (whose body may be left out) read a text/plain or
    form body as JSON and created the session; every other route answers 400 (§1), and a
    browser sends such a body cross-site without asking first."""
    headers = {"Content-Type": content_type} if content_type else {}
    before = await _counts(client)
    response = await client.post(f"/v1/agents/{seeded['agent']}/sessions", data=b'{"title":"x"}', headers=headers)
    assert response.status_code == 400, await response.get_data()
    assert assert_shape("/v1", await response.get_json(), 400).startswith("body: Input should be a valid dictionary")
    assert await _counts(client) == before
    assert (await client.post(f"/v1/agents/{seeded['agent']}/sessions")).status_code == 201  # no body: still fine
