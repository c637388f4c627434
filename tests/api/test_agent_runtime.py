"""The Agent Runtime API: every route with its errors, in its own {"detail"} shape."""

from __future__ import annotations

import pytest

from tests.fakes import Text, ToolCalls
from tests.helpers import make_chat, say, wait_for_event, wait_turns

pytestmark = pytest.mark.both_modes  # in process and on Temporal (tests/conftest.py)


def hook(event_type, session_id="abc-123", **fields):
    return {"event_type": event_type, "session_id": session_id, "session_name": "My Session",
            "timestamp": "2025-11-16T10:30:16.000000Z", **fields}


async def create(client, session_id="abc-123", **extra):
    response = await client.post("/sessions", json={"session_id": session_id, "session_name": "My Session", **extra})
    assert response.status_code == 200, await response.get_json()
    return (await response.get_json())["session"]


async def detail(response, status):
    body = await response.get_json()
    assert response.status_code == status and set(body) == {"detail"} and isinstance(body["detail"], str), body
    return body["detail"]


async def test_create_get_list_and_conflict(client):
    session = await create(client, project_dir="/work", agent_name="researcher")
    assert session["session_id"] == "abc-123" and session["status"] == "running"
    assert session["project_dir"] == "/work" and session["agent_name"] == "researcher"
    assert session["last_resumed_at"] is None and session["created_at"].endswith("Z")
    assert (await (await client.get("/sessions/abc-123")).get_json())["session"] == session
    assert [s["session_id"] for s in (await (await client.get("/sessions")).get_json())["sessions"]] == ["abc-123"]
    assert await detail(await client.post("/sessions", json={"session_id": "abc-123", "session_name": "x"}), 409) == "Session already exists"


@pytest.mark.parametrize("body", [{"session_name": "x"}, {"session_id": "a b", "session_name": "x"},
                                  {"session_id": "a/b", "session_name": "x"}, {"session_id": "x"}, []])
async def test_invalid_create_is_400_not_422(client, body):
    await detail(await client.post("/sessions", json=body), 400)


@pytest.mark.parametrize("session_id", [".", ".."])
async def test_dot_segments_are_not_session_ids(client, session_id):
    """Reported: accepted, then no browser (nor plain curl) could open or delete it, as
    URLs drop `.` and `..` path segments; the dashboard listed it forever."""
    said = await detail(await client.post("/sessions", json={"session_id": session_id, "session_name": "dots"}), 400)
    assert "'.' and '..' cannot be session ids" in said
    event = {"event_type": "session_start", "session_id": session_id, "session_name": "dots"}
    await detail(await client.post("/events", json=event), 400)  # nor made by a hook event
    assert (await (await client.get("/sessions")).get_json())["sessions"] == []
    assert (await client.post("/sessions", json={"session_id": "...", "session_name": "ok"})).status_code == 200


async def test_unknown_sessions_are_404_in_detail_shape(client):
    for path in ("/sessions/nope", "/sessions/nope/result", "/sessions/nope/events", "/events/nope"):
        assert await detail(await client.get(path), 404) == "Session not found"
    await detail(await client.delete("/sessions/nope"), 404)
    await detail(await client.patch("/sessions/nope/metadata", json={"session_name": "n"}), 404)
    await detail(await client.get("/sessions/abc/unknown-route"), 404)
    assert (await (await client.get("/sessions/nope/status")).get_json()) == {"status": "not_existent"}


async def test_events_keep_falsy_outputs_and_stop_finishes(client):
    await create(client)
    for output in (0, "", False, None):
        response = await client.post("/sessions/abc-123/events", json=hook("post_tool", tool_name="Read", tool_output=output))
        assert (await response.get_json())["ok"] is True
    events = (await (await client.get("/sessions/abc-123/events")).get_json())["events"]
    assert [e["tool_output"] for e in events] == [0, "", False, None]
    assert all(e["event_type"] == "post_tool" and e["session_name"] == "My Session" for e in events)
    assert [e["id"] for e in events] == sorted(e["id"] for e in events)
    await client.post("/sessions/abc-123/events", json=hook("session_stop", exit_code=0, reason="completed"))
    assert (await (await client.get("/sessions/abc-123/status")).get_json()) == {"status": "finished"}


async def test_event_validation(client):
    await create(client)
    await detail(await client.post("/sessions/abc-123/events", json=hook("teleport")), 400)
    await detail(await client.post("/sessions/abc-123/events", json=hook("pre_tool", timestamp="yesterday")), 400)
    await detail(await client.post("/sessions/abc-123/events", json=hook("pre_tool", "other-id")), 400)
    await detail(await client.post("/sessions/abc-123/events", json=hook("message", role="system")), 400)
    for bad in ("1", True, 1.5):  # "1" and true were stored as 1 (reported): an int or null, as documented
        await detail(await client.post("/sessions/abc-123/events", json=hook("session_stop", exit_code=bad)), 400)
    bad_json = await client.post("/sessions/abc-123/events", data=b"{", headers={"Content-Type": "application/json"})
    await detail(bad_json, 400)


async def test_result_rules(client):
    await create(client)
    assert await detail(await client.get("/sessions/abc-123/result"), 400) == "Session not finished"
    await client.post("/events", json=hook("session_stop"))
    await detail(await client.get("/sessions/abc-123/result"), 404)
    await client.post("/events", json=hook("session_start"))
    for text in ("first", "final answer"):
        await client.post("/events", json=hook("message", role="assistant", content=[{"type": "text", "text": text}]))
    await client.post("/events", json=hook("message", role="user", content=[{"type": "text", "text": "thanks"}]))
    await client.post("/events", json=hook("session_stop"))
    assert (await (await client.get("/sessions/abc-123/result")).get_json()) == {"result": "final answer"}


async def test_result_joins_text_blocks_with_a_blank_line(client):
    """Reported: two blocks "Hi" and "there" came back as "Hithere"."""
    await create(client)
    blocks = [{"type": "text", "text": "Hi"}, {"type": "text", "text": " "}, {"type": "tool_use", "text": "x"},
              {"type": "text", "text": "there"}]
    await client.post("/events", json=hook("message", role="assistant", content=blocks))
    await client.post("/events", json=hook("session_stop"))
    assert (await (await client.get("/sessions/abc-123/result")).get_json()) == {"result": "Hi\n\nthere"}


async def test_legacy_post_events_creates_resumes_and_finishes(client):
    assert (await (await client.post("/events", json=hook("session_start", "fresh"))).get_json())["ok"] is True
    session = (await (await client.get("/sessions/fresh")).get_json())["session"]
    assert session["status"] == "running" and session["session_name"] == "My Session"
    await client.post("/events", json=hook("session_stop", "fresh"))
    assert (await (await client.get("/sessions/fresh")).get_json())["session"]["status"] == "finished"
    await client.post("/events", json=hook("session_start", "fresh"))  # resumed
    resumed = (await (await client.get("/sessions/fresh")).get_json())["session"]
    assert resumed["status"] == "running" and resumed["last_resumed_at"] is not None
    legacy = (await (await client.get("/events/fresh")).get_json())["events"]
    assert legacy == (await (await client.get("/sessions/fresh/events")).get_json())["events"]
    assert [e["event_type"] for e in legacy] == ["session_start", "session_stop", "session_start"]


async def test_no_event_cap_and_paging(client):
    await create(client)
    for i in range(130):
        await client.post("/sessions/abc-123/events", json=hook("pre_tool", tool_name=f"t{i}"))
    assert len((await (await client.get("/events/abc-123")).get_json())["events"]) == 130
    page = (await (await client.get("/sessions/abc-123/events?after=100&limit=20")).get_json())["events"]
    assert [e["sequence"] for e in page] == list(range(101, 121))
    await detail(await client.get("/sessions/abc-123/events?limit=0"), 400)


async def test_metadata_patch_and_delete(client):
    await create(client)
    await detail(await client.patch("/sessions/abc-123/metadata", json={}), 400)
    await detail(await client.patch("/sessions/abc-123/metadata", json={"colour": "red"}), 400)
    body = await (await client.patch("/sessions/abc-123/metadata", json={"session_name": "Renamed", "project_dir": "/x"})).get_json()
    assert body["ok"] and body["session"]["session_name"] == "Renamed" and body["session"]["project_dir"] == "/x"
    assert (await (await client.get("/v1/sessions/abc-123")).get_json())["title"] == "Renamed"
    for _ in range(3):
        await client.post("/sessions/abc-123/events", json=hook("pre_tool"))
    deleted = await (await client.delete("/sessions/abc-123")).get_json()
    assert deleted == {"ok": True, "session_id": "abc-123", "deleted": {"session": True, "events_count": 3}}
    assert (await (await client.get("/sessions/abc-123/status")).get_json()) == {"status": "not_existent"}


async def test_external_sessions_under_v1(client):
    await create(client)
    await client.post("/sessions/abc-123/events", json=hook("pre_tool", tool_name="Read", tool_input={"f": "a.py"}))
    v1 = await (await client.get("/v1/sessions/abc-123")).get_json()
    assert v1["kind"] == "external" and v1["status"] == "running" and v1["agent_id"] is None
    log = (await (await client.get("/v1/sessions/abc-123/events", headers={"Accept": "application/json"})).get_json())["data"]
    assert log[0]["type"] == "pre_tool" and log[0]["data"]["tool_input"] == {"f": "a.py"}
    response = await client.post("/v1/sessions/abc-123/messages", json={"content": "hi"})
    assert response.status_code == 409 and (await response.get_json())["error"]["code"] == "external_session"


async def test_agent_loop_sessions_read_in_this_dialect(client, fake_llm):
    chat = await make_chat(client, fake_llm)
    session = (await (await client.get(f"/sessions/{chat['id']}")).get_json())["session"]
    assert session["status"] == "finished" and session["kind"] == "agent" and session["agent_name"] == "Helper"
    fake_llm.script(Text(["The answer."]))
    await say(client, chat["id"], "question")
    await wait_turns(client, chat["id"])
    assert (await (await client.get(f"/sessions/{chat['id']}/result")).get_json()) == {"result": "The answer."}
    events = (await (await client.get(f"/events/{chat['id']}")).get_json())["events"]
    kinds = [e["event_type"] for e in events]
    assert kinds[0] == "message" and "session_start" in kinds and kinds[-1] == "session_stop"
    # Only the Agent Runtime types by default: steps and deltas would be raw JSON cards.
    assert set(kinds) <= {"session_start", "pre_tool", "post_tool", "session_stop", "message"}
    everything = (await (await client.get(f"/events/{chat['id']}?events=all")).get_json())["events"]
    assert {"step.started", "message.delta", "step.completed"} <= {e["event_type"] for e in everything}
    assert [e for e in everything if e["id"] in {x["id"] for x in events}] == events  # same objects
    stop = events[-1]
    assert stop["exit_code"] == 0 and stop["reason"] == "completed"
    assistant = next(e for e in events if e["event_type"] == "message" and e["role"] == "assistant")
    assert assistant["content"] == [{"type": "text", "text": "The answer."}]


async def test_posted_fields_cannot_replace_the_event_identity(client):
    await create(client)
    await client.post("/sessions/abc-123/events", json=hook("pre_tool", id=999, sequence=7, event_type_extra="x"))
    event = (await (await client.get("/sessions/abc-123/events")).get_json())["events"][0]
    assert event["id"] != 999 and event["sequence"] == 1 and event["event_type"] == "pre_tool"


async def test_restart_recovery_leaves_external_sessions_alone(app, client):
    await create(client)
    await app.extensions["runtime"].runner.start()  # what a restarted server does first
    assert (await (await client.get("/sessions/abc-123/status")).get_json()) == {"status": "running"}


# --- GET /sessions paging ------------------------------------------------------------

async def make_sessions(client, count, prefix="s", headers=None):
    """`count` sessions, oldest first: returns their ids in creation order."""
    ids = [f"{prefix}-{i:03d}" for i in range(count)]
    for session_id in ids:
        response = await client.post("/sessions", json={"session_id": session_id, "session_name": "n"}, headers=headers)
        assert response.status_code == 200, await response.get_json()
    return ids


async def all_pages(client, limit, headers=None):
    """Follow `next` to the end: every page's ids."""
    pages, query = [], f"/sessions?limit={limit}"
    while True:
        body = await (await client.get(query, headers=headers)).get_json()
        pages.append([s["session_id"] for s in body["sessions"]])
        assert body["has_more"] is (body["next"] is not None)
        if body["next"] is None:
            return pages
        query = f"/sessions?limit={limit}&before={body['next']}"


async def test_sessions_without_parameters_are_the_newest_default_page(client):
    ids = await make_sessions(client, 105)
    body = await (await client.get("/sessions")).get_json()
    assert [s["session_id"] for s in body["sessions"]] == ids[::-1][:100]  # newest first
    assert set(body["sessions"][0]) >= {"session_id", "session_name", "status", "created_at"}
    assert body["has_more"] is True and isinstance(body["next"], str)
    rest = await (await client.get(f"/sessions?before={body['next']}")).get_json()
    assert [s["session_id"] for s in rest["sessions"]] == ids[4::-1] and rest["next"] is None


async def test_sessions_page_by_cursor_without_skipping_or_repeating(client):
    from app.models import Session

    ids = await make_sessions(client, 12)
    # Five sessions share one creation time: the id decides their order, so a page
    # boundary inside them neither skips nor repeats one.
    same = await Session.get(id=ids[6])
    await Session.filter(id__in=ids[3:8]).update(created_at=same.created_at)
    expected = ids[::-1]  # these ids sort like their creation order
    assert sum(await all_pages(client, 4), []) == expected
    assert [len(p) for p in await all_pages(client, 4)] == [4, 4, 4]
    first = await (await client.get("/sessions?limit=5")).get_json()
    await make_sessions(client, 2, prefix="newer")  # new sessions do not shift the next page
    await client.delete(f"/sessions/{expected[4]}")  # nor does deleting the page's last one
    second = await (await client.get(f"/sessions?limit=5&before={first['next']}")).get_json()
    assert [s["session_id"] for s in second["sessions"]] == expected[5:10]


@pytest.mark.parametrize("query", ["limit=-1", "limit=0", "limit=abc", "limit=1.5", "limit=501",
                                   "limit=99999999999999999999", "limit=-99999999999999999999",
                                   "before=", "before=nonsense", "before=%E2%82%AC",
                                   pytest.param("before=WyIyMDI1LTAxLTAxIiwieCJd", id="no-time-zone"),  # ["2025-01-01","x"]
                                   pytest.param("before=" + "WyIyMDI1LTAxLTAxVDAwOjAwOjAwKzAwOjAwIiwi" + "eHh4" * 60 + "Il0",
                                                id="id-too-long"),
                                   pytest.param("before=WyIyMDI1LTAxLTAxVDAwOjAwOjAwKzAwOjAwIiwiYVx1MDAwMCJd",
                                                id="id-with-nul")])  # [..., "a\u0000"]
async def test_bad_session_paging_is_400_in_detail_shape(client, query):
    assert (await detail(await client.get(f"/sessions?{query}"), 400))


@pytest.fixture
async def full_auth(settings):
    """An app in AUTH_MODE=full (as tests/auth) with alice, bob and the admin logged in."""

    from app.main import create_app
    from tests.auth.conftest import ADMIN, login, register

    app = create_app(settings.replace(auth_mode="full", auth_admin_email=ADMIN[0], auth_admin_password=ADMIN[1],
                                      rate_limit_enabled=False, jwt_secret="test-jwt-secret-0123456789abcdef"))
    async with app.test_app():
        client = app.test_client(use_cookies=False)
        users = {"alice": await register(client, "alice@example.com"), "bob": await register(client, "bob@example.com"),
                 "admin": await login(client, *ADMIN)}
        yield client, {name: account.headers for name, account in users.items()}


async def test_session_pages_hold_only_your_own_sessions(full_auth):
    client, headers = full_auth
    alice = await make_sessions(client, 5, "alice", headers["alice"])
    bob = await make_sessions(client, 4, "bob", headers["bob"])
    alice += await make_sessions(client, 2, "alice-late", headers["alice"])
    assert await all_pages(client, 2, headers["alice"]) == [alice[:-3:-1], alice[4:2:-1], alice[2:0:-1], alice[:1]]
    assert sum(await all_pages(client, 3, headers["bob"]), []) == bob[::-1]
    assert sum(await all_pages(client, 3, headers["admin"]), []) == alice[:-3:-1] + bob[::-1] + alice[4::-1]
    # Bob's cursor names Bob's session; it shows Alice only her own older sessions.
    bob_page = await (await client.get("/sessions?limit=1", headers=headers["bob"])).get_json()
    older = await (await client.get(f"/sessions?before={bob_page['next']}", headers=headers["alice"])).get_json()
    assert [s["session_id"] for s in older["sessions"]] == alice[4::-1]


# --- what real clients send (issue 12) -------------------------------------------------

async def test_a_resumed_run_marks_itself_resumed_then_starts(client):
    """The session client, on a resumed run, sends in one `try`: PATCH last_resumed_at,
    the session_start event, the user's prompt. The PATCH used to be a 400 (so the run
    stayed `finished` and the prompt was lost)."""
    await create(client, "run-1")
    await client.post("/sessions/run-1/events", json=hook("session_stop", "run-1", exit_code=0, reason="completed"))
    response = await client.patch("/sessions/run-1/metadata", json={"last_resumed_at": "2025-11-16T11:00:00.123456+00:00"})
    assert response.status_code == 200, await response.get_json()
    assert (await response.get_json())["session"]["last_resumed_at"] == "2025-11-16T11:00:00.123456Z"
    await client.post("/sessions/run-1/events", json=hook("session_start", "run-1"))
    prompt = [{"type": "text", "text": "continue please"}]
    await client.post("/sessions/run-1/events", json=hook("message", "run-1", role="user", content=prompt))
    assert (await (await client.get("/sessions/run-1/status")).get_json()) == {"status": "running"}
    events = (await (await client.get("/sessions/run-1/events")).get_json())["events"]
    assert [(e["event_type"], e.get("content")) for e in events][-2:] == [("session_start", None), ("message", prompt)]


async def test_metadata_ignores_unknown_fields_but_needs_a_known_one(client):
    await create(client)
    body = await (await client.patch("/sessions/abc-123/metadata", json={"agent_name": "coder", "color": "red"})).get_json()
    assert body["session"]["agent_name"] == "coder" and "color" not in body["session"]
    await detail(await client.patch("/sessions/abc-123/metadata", json={"color": "red"}), 400)
    for bad in ("yesterday", "0001-01-01T00:00:00+01:00", 1700000000):  # a number was taken as epoch seconds
        await detail(await client.patch("/sessions/abc-123/metadata", json={"last_resumed_at": bad}), 400)


async def test_parent_session_name_is_stored_and_returned(client):
    child = await create(client, "child-1", parent_session_name="orchestrator-1", agent_name="worker")
    assert child["parent_session_name"] == "orchestrator-1" and child["implicit"] is False
    listed = (await (await client.get("/sessions")).get_json())["sessions"]
    assert [s["parent_session_name"] for s in listed] == ["orchestrator-1"]
    await client.patch("/sessions/child-1/metadata", json={"parent_session_name": "orchestrator-2"})
    assert (await (await client.get("/sessions/child-1")).get_json())["session"]["parent_session_name"] == "orchestrator-2"
    await detail(await client.post("/sessions", json={"session_id": "c2", "session_name": "n",
                                                       "parent_session_name": "x" * 501}), 400)


@pytest.mark.parametrize("path", ["/sessions/mid-1/events", "/events"])
async def test_an_event_for_an_unknown_session_is_kept(client, path):
    """Hooks installed mid-session: the first event the server hears is a pre_tool."""
    response = await client.post(path, json=hook("pre_tool", "mid-1", tool_name="Read", tool_input={"f": "a"},
                                                 project_dir="/repo"))
    assert response.status_code == 200 and (await response.get_json())["ok"] is True
    session = (await (await client.get("/sessions/mid-1")).get_json())["session"]
    assert session["implicit"] is True and session["status"] == "running"
    assert session["session_name"] == "My Session" and session["project_dir"] == "/repo"
    events = (await (await client.get("/sessions/mid-1/events")).get_json())["events"]
    assert [(e["event_type"], e["tool_name"], e["tool_input"]) for e in events] == [("pre_tool", "Read", {"f": "a"})]
    await client.post(path, json=hook("session_stop", "mid-1", exit_code=0))
    assert (await (await client.get("/sessions/mid-1/status")).get_json()) == {"status": "finished"}


async def test_an_event_for_a_session_deleted_behind_the_servers_back_starts_it_again(client):
    """Events of a session the server is writing to go in without a read of the session
    first (issue 13). A session deleted by other means than its DELETE (a cascade, another
    process) then fails the insert: the event takes the usual path, creating the session
    again, numbered from 1 as any new session."""
    from app.models import Session

    await create(client, "gone-1")
    for _ in range(3):
        assert (await client.post("/sessions/gone-1/events", json=hook("pre_tool", "gone-1", tool_name="Bash"))).status_code == 200
    await Session.filter(id="gone-1").delete()
    response = await client.post("/sessions/gone-1/events", json=hook("post_tool", "gone-1", tool_name="Bash"))
    assert response.status_code == 200, await response.get_json()
    assert (await (await client.get("/sessions/gone-1")).get_json())["session"]["implicit"] is True
    page = await (await client.get("/v1/sessions/gone-1/events?format=json")).get_json()
    assert [(e["sequence"], e["type"]) for e in page["data"]] == [(1, "post_tool")], page


async def test_a_session_created_again_under_an_old_id_numbers_from_1(client):
    """An id whose session went by other means than its DELETE (a cascade) and is created
    again starts a new log: its first event is 1, not the old counter's next."""
    from app.models import Session

    await create(client, "again-1")
    for _ in range(3):
        assert (await client.post("/sessions/again-1/events", json=hook("pre_tool", "again-1", tool_name="Bash"))).status_code == 200
    await Session.filter(id="again-1").delete()
    await create(client, "again-1")
    assert (await client.post("/sessions/again-1/events", json=hook("post_tool", "again-1", tool_name="Bash"))).status_code == 200
    page = await (await client.get("/v1/sessions/again-1/events?format=json")).get_json()
    assert [(e["sequence"], e["type"]) for e in page["data"]] == [(1, "post_tool")], page


async def test_a_lost_start_then_a_stop_is_a_finished_implicit_session(client):
    await client.post("/events", json=hook("session_stop", "late", exit_code=0, reason="completed"))
    session = (await (await client.get("/sessions/late")).get_json())["session"]
    assert session["status"] == "finished" and session["implicit"] is True
    await client.post("/events", json=hook("session_start", "started"))
    assert (await (await client.get("/sessions/started")).get_json())["session"]["implicit"] is False


async def test_an_event_for_another_users_session_is_refused(full_auth):
    client, headers = full_auth
    await client.post("/sessions", json={"session_id": "alice-run", "session_name": "a"}, headers=headers["alice"])
    for path in ("/sessions/alice-run/events", "/events"):
        response = await client.post(path, json=hook("pre_tool", "alice-run"), headers=headers["bob"])
        assert await detail(response, 409) == "Session already exists"
    assert (await (await client.get("/sessions/alice-run/events", headers=headers["alice"])).get_json())["events"] == []
    await client.post("/events", json=hook("pre_tool", "bob-run"), headers=headers["bob"])
    assert await detail(await client.get("/sessions/bob-run", headers=headers["alice"]), 404) == "Session not found"


async def test_stop_cancels_a_loop_session_and_refuses_an_external_one(client, fake_llm):
    chat = await make_chat(client, fake_llm)
    fake_llm.script(Text(["slow ", "answer ", "that ", "never ", "ends"], delay=1.0))
    await say(client, chat["id"], "talk")
    await wait_for_event(client, chat["id"], "message.delta")
    body = await (await client.post(f"/sessions/{chat['id']}/stop")).get_json()
    assert body["ok"] is True and body["stopped"] is True and body["session"]["session_id"] == chat["id"]
    await wait_turns(client, chat["id"])
    stop = (await (await client.get(f"/events/{chat['id']}")).get_json())["events"][-1]
    assert (stop["event_type"], stop["exit_code"]) == ("session_stop", 130)
    assert (await (await client.get(f"/sessions/{chat['id']}/status")).get_json()) == {"status": "finished"}
    idle = await (await client.post(f"/sessions/{chat['id']}/stop")).get_json()
    assert idle["ok"] is True and idle["stopped"] is False
    await create(client, "ext-1")
    assert "own agent" in await detail(await client.post("/sessions/ext-1/stop"), 409)
    assert (await (await client.get("/sessions/ext-1/status")).get_json()) == {"status": "running"}
    await detail(await client.post("/sessions/nope/stop"), 404)


async def test_pages_of_agent_runtime_events_skip_the_left_out_ones(client, fake_llm):
    """A page holds `limit` events of the hook types even where left-out ones (tool_call
    and tool_result messages, steps, deltas) lie between them, so a short page still
    means the end."""
    chat = await make_chat(client, fake_llm)
    fake_llm.script(ToolCalls([("c1", "get_current_time", {"timezone": "UTC"})]), Text(["It ", "is noon."]))
    await say(client, chat["id"], "time?")
    await wait_turns(client, chat["id"])
    whole = (await (await client.get(f"/events/{chat['id']}")).get_json())["events"]
    assert [e["event_type"] for e in whole] == ["message", "session_start", "pre_tool", "post_tool", "message", "session_stop"]
    paged, after = [], 0
    while page := (await (await client.get(f"/events/{chat['id']}?after={after}&limit=2")).get_json())["events"]:
        assert len(page) == 2 or len(paged) + len(page) == len(whole)
        paged, after = paged + page, page[-1]["sequence"]
    assert paged == whole
