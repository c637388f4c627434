"""Pipelines (AgentSpec, issue 6): definitions, graph runs against the fake provider, status.

Everything goes through the HTTP API; only the LLM provider is a fake (on loopback)."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
import uuid

import pytest

from tests.fakes import Hang, Text
from tests.helpers import events, make_chat, messages, session, until

pytestmark = pytest.mark.both_modes  # in process and on Temporal (tests/conftest.py)

FAN = [  # A -> (B, C) -> D; C has its own input
    {"name": "A", "agent": "Writer"},
    {"name": "B", "agent": "Writer", "depends_on": ["A"]},
    {"name": "C", "agent": "Critic", "depends_on": ["A"], "input": "C's own words"},
    {"name": "D", "agent": "Writer", "depends_on": ["B", "C"]},
]


async def agent(client, name: str, **fields) -> dict:
    response = await client.post("/v1/agents", json={"name": name, "system_prompt": "Be brief.", **fields})
    assert response.status_code == 201, await response.get_json()
    return await response.get_json()


@pytest.fixture
async def agents(client, fake_llm) -> dict[str, dict]:
    """A default provider + model pointing at the fake, and two agents that use it."""
    await make_chat(client, fake_llm)
    return {"Writer": await agent(client, "Writer"), "Critic": await agent(client, "Critic")}


async def create(client, name: str = "flow", steps=None, **fields) -> dict:
    response = await client.post("/v1/pipelines", json={"name": name, "steps": steps or FAN, **fields})
    assert response.status_code == 201, await response.get_json()
    return await response.get_json()


async def run(client, ref: str, text: str = "the topic", **body) -> tuple[int, dict]:
    response = await client.post(f"/v1/pipelines/{ref}/run", json={"input": text, **body})
    return response.status_code, await response.get_json()


async def status(client, ref: str, run_id: str | None = None) -> dict:
    url = f"/v1/pipelines/{ref}/status" + (f"?run_id={run_id}" if run_id else "")
    response = await client.get(url)
    assert response.status_code == 200, await response.get_json()
    return await response.get_json()


async def error(response, status_code: int) -> str:
    body = await response.get_json()
    assert response.status_code == status_code, body
    return body["error"]["message"]


def at(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value)


def by_name(steps: list[dict]) -> dict[str, dict]:
    return {s["name"]: s for s in steps}


async def user_text(client, session_id: str) -> str:
    return next(m["content"]["text"] for m in await messages(client, session_id) if m["role"] == "user")


# --- definitions ---------------------------------------------------------------------

async def test_crud(client, agents):
    created = await create(client, description="fan out, fan in")
    assert uuid.UUID(created["id"]) and created["name"] == "flow" and created["description"] == "fan out, fan in"
    assert created["steps"][0] == {"name": "A", "agent": "Writer", "depends_on": [], "input": None}
    assert created["steps"][2]["input"] == "C's own words" and created["steps"][3]["depends_on"] == ["B", "C"]
    assert created["created_at"].endswith("Z")

    assert await (await client.get("/v1/pipelines/flow")).get_json() == created
    assert await (await client.get(f"/v1/pipelines/{created['id']}")).get_json() == created
    listed = await (await client.get("/v1/pipelines")).get_json()
    assert listed == {"data": [created], "total": 1, "offset": 0, "limit": 50}

    duplicate = await client.post("/v1/pipelines", json={"name": "flow", "steps": FAN})
    assert "flow" in await error(duplicate, 409)

    steps = [{"name": "only", "agent": agents["Critic"]["id"]}]
    replaced = await client.put("/v1/pipelines/flow", json={"name": "single", "steps": steps})
    body = await replaced.get_json()
    assert replaced.status_code == 200 and body["name"] == "single" and body["description"] is None
    assert body["steps"] == [{"name": "only", "agent": agents["Critic"]["id"], "depends_on": [], "input": None}]
    assert (await client.get("/v1/pipelines/flow")).status_code == 404

    patched = await client.patch(f"/v1/pipelines/{created['id']}", json={"description": "one step"})
    body = await patched.get_json()
    assert patched.status_code == 200 and body["description"] == "one step" and body["name"] == "single"
    patched = await client.patch("/v1/pipelines/single", json={"steps": FAN, "description": None})
    body = await patched.get_json()
    assert [s["name"] for s in body["steps"]] == ["A", "B", "C", "D"] and body["description"] is None
    assert "name" in await error(await client.patch("/v1/pipelines/single", json={"name": None}), 400)

    await create(client, "other", description="taken")
    assert "other" in await error(await client.patch("/v1/pipelines/single", json={"name": "other"}), 409)
    assert (await (await client.get("/v1/pipelines?limit=1")).get_json())["total"] == 2

    response = await client.delete("/v1/pipelines/single")
    assert response.status_code == 204 and await response.get_data() == b""
    assert (await client.get(f"/v1/pipelines/{created['id']}")).status_code == 404
    assert (await (await client.get("/v1/pipelines")).get_json())["total"] == 1


@pytest.mark.parametrize("steps, words", [
    ([], ["steps", "at least 1"]),
    ([{"name": "a", "agent": "Writer"}, {"name": "a", "agent": "Critic"}], ["steps[1]", "duplicate", "'a'"]),
    ([{"name": "a", "agent": "Writer", "depends_on": ["ghost"]}], ["steps[0]", "'a'", "unknown step 'ghost'"]),
    ([{"name": "a", "agent": "Writer", "depends_on": ["c"]}, {"name": "b", "agent": "Writer", "depends_on": ["a"]},
      {"name": "c", "agent": "Writer", "depends_on": ["b"]}, {"name": "d", "agent": "Writer"}],
     ["cycle", "'a' -> 'c' -> 'b' -> 'a'"]),
    ([{"name": "a", "agent": "Writer", "depends_on": ["a"]}], ["cycle", "'a' -> 'a'"]),
    ([{"name": "a", "agent": "Writer"}, {"name": "b", "agent": "Nobody"}], ["steps[1]", "'b'", "agent 'Nobody' not found"]),
    ([{"name": "a", "agent": str(uuid.uuid4())}], ["steps[0]", "not found"]),
    ([{"name": "a", "agent": "Twin"}], ["steps[0]", "ambiguous", "Twin"]),
    ([{"name": "a", "agent": "Writer", "retries": 3}], ["steps.0.retries"]),
    ([{"name": "a"}], ["steps.0.agent"]),
    ([{"name": "a", "agent": "Writer", "input": ""}], ["steps.0.input"]),
])
async def test_invalid_definitions_are_400_naming_the_problem(client, agents, steps, words):
    await agent(client, "Twin")
    await agent(client, "Twin")
    response = await client.post("/v1/pipelines", json={"name": "bad", "steps": steps})
    message = await error(response, 400)
    assert (await response.get_json())["error"]["code"] == "invalid_request"
    for word in words:
        assert word in message
    # Updates are checked the same way, and a refused update changes nothing.
    good = await create(client, "good", steps=[{"name": "x", "agent": "Writer"}])
    for response in (await client.put("/v1/pipelines/good", json={"name": "good", "steps": steps}),
                     await client.patch("/v1/pipelines/good", json={"steps": steps})):
        message = await error(response, 400)
        assert all(word in message for word in words), message
    assert await (await client.get("/v1/pipelines/good")).get_json() == good
    assert (await (await client.get("/v1/pipelines")).get_json())["total"] == 1


async def test_other_invalid_bodies(client, agents):
    for body, word in (({"steps": FAN}, "name"), ({"name": "x"}, "steps"), ({"name": "a/b", "steps": FAN}, "name"),
                       ({"name": "x", "steps": FAN, "colour": "red"}, "colour"),
                       ({"name": "x", "steps": [{"name": "a", "agent": "Writer"}] * 101}, "steps")):
        assert word in await error(await client.post("/v1/pipelines", json=body), 400)
    archived = await agent(client, "Old")
    await client.delete(f"/v1/agents/{archived['id']}")
    steps = [{"name": "s", "agent": archived["id"]}]
    message = await error(await client.post("/v1/pipelines", json={"name": "x", "steps": steps}), 400)
    assert "steps[0]" in message and "archived" in message
    await create(client)
    assert "input" in await error(await client.post("/v1/pipelines/flow/run", json={}), 400)
    assert "wiat" in await error(await client.post("/v1/pipelines/flow/run", json={"input": "x", "wiat": False}), 400)


async def test_depends_on_counts_names_once(client, agents):
    """docs/api.md 10.1: depends_on is at most 100 names, repeats dropped. Reported: 101
    times the same name was a 400 "at most 100 items" although one name remains."""
    steps = [{"name": "a", "agent": "Writer"}, {"name": "b", "agent": "Writer", "depends_on": ["a"] * 101}]
    response = await client.post("/v1/pipelines", json={"name": "repeats", "steps": steps})
    body = await response.get_json()
    assert response.status_code == 201 and body["steps"][1]["depends_on"] == ["a"], body
    steps[1]["depends_on"] = [f"s{i}" for i in range(101)]
    message = await error(await client.post("/v1/pipelines", json={"name": "many", "steps": steps}), 400)
    assert "steps.1.depends_on" in message and "at most 100 items" in message


async def test_unknown_pipeline_is_404(client, agents):
    for ref in ("nope", str(uuid.uuid4())):
        for method, path, body in (("GET", "", None), ("PUT", "", {"name": "n", "steps": FAN}),
                                   ("PATCH", "", {"description": "d"}), ("DELETE", "", None),
                                   ("POST", "/run", {"input": "hi"}), ("GET", "/status", None), ("GET", "/runs", None)):
            response = await client.open(f"/v1/pipelines/{ref}{path}", method=method, json=body)
            assert f"pipeline '{ref}' not found" in await error(response, 404), (method, path)
            assert (await response.get_json())["error"]["code"] == "not_found"


# --- runs ------------------------------------------------------------------------

async def test_fan_out_fan_in_runs_in_parallel_and_passes_outputs(client, fake_llm, agents):
    await create(client)
    # A answers first; B and C get the two slow replies (in either order) and overlap; D echoes.
    fake_llm.script(Text(["alpha"], input_tokens=3, output_tokens=1),
                    Text(["beta ", "one"], delay=0.4), Text(["gamma ", "two"], delay=0.4))
    code, result = await run(client, "flow")
    assert code == 200, result
    assert result["status"] == "completed" and result["pipeline"] == "flow" and uuid.UUID(result["run_id"])
    steps = by_name(result["steps"])
    assert list(steps) == ["A", "B", "C", "D"] and all(s["status"] == "completed" for s in steps.values())
    a, b, c, d = (steps[n] for n in "ABCD")
    assert a["output"] == "alpha" and {b["output"], c["output"]} == {"beta one", "gamma two"}
    assert d["output"] == f"echo: {b['output']}\n\n{c['output']}"  # B then C, in depends_on order
    assert result["output"] == d["output"]  # the one sink

    # Inputs: A the run's input, B its dependency's output, C its own input, D both outputs.
    assert [await user_text(client, s["session_id"]) for s in (a, b, c, d)] == \
        ["the topic", "alpha", "C's own words", f"{b['output']}\n\n{c['output']}"]
    # Each step ran in a new session of its own agent, named after the pipeline and step.
    assert len({s["session_id"] for s in steps.values()}) == 4
    c_session = await session(client, c["session_id"])
    assert c_session["agent_id"] == agents["Critic"]["id"] and c_session["title"] == "flow / C"
    assert (await session(client, a["session_id"]))["agent_id"] == agents["Writer"]["id"]

    # Timing, from the stored steps: B and C overlapped, after A and before D.
    stored = by_name((await status(client, "flow", result["run_id"]))["steps"])
    assert stored == steps
    b_start, b_end, c_start, c_end = at(b["started_at"]), at(b["finished_at"]), at(c["started_at"]), at(c["finished_at"])
    assert b_start < c_end and c_start < b_end
    assert at(a["finished_at"]) <= min(b_start, c_start) and at(d["started_at"]) >= max(b_end, c_end)
    assert b["duration_ms"] >= 400 and c["duration_ms"] >= 400
    assert result["total_duration_ms"] >= 400 and result["finished_at"] is not None

    assert a["usage"] == {"input_tokens": 3, "output_tokens": 1, "total_tokens": 4}
    assert result["usage"] == {"input_tokens": 33, "output_tokens": 16, "total_tokens": 49}
    assert all(s["error"] is None for s in steps.values())


async def test_several_sinks_join_their_outputs_and_run_by_id(client, agents):
    created = await create(client, "pair", steps=[{"name": "x", "agent": "Writer"},
                                                  {"name": "y", "agent": agents["Critic"]["id"], "input": "why"}])
    code, result = await run(client, created["id"], "ex")
    assert code == 200 and result["pipeline"] == "pair" and result["status"] == "completed"
    assert result["output"] == "echo: ex\n\necho: why"


async def test_a_failing_step_skips_its_dependents_and_fails_the_run(client, fake_llm, agents):
    broken = await (await client.post("/v1/llm-providers", json={
        "name": "broken", "provider_type": "openai", "base_url": fake_llm.openai_base_url,
        "api_key": "sk-wrong-key-0000"})).get_json()
    model = await (await client.post(f"/v1/llm-providers/{broken['id']}/models", json={"model_id": "bad-model"})).get_json()
    await agent(client, "Broken", default_model_id=model["id"])
    await create(client, "fragile", steps=[
        {"name": "first", "agent": "Writer"},
        {"name": "bad", "agent": "Broken", "depends_on": ["first"]},
        {"name": "after_bad", "agent": "Writer", "depends_on": ["bad"]},
        {"name": "after_after", "agent": "Writer", "depends_on": ["after_bad", "first"]},
        {"name": "independent", "agent": "Critic", "input": "on my own"},
    ])
    code, result = await run(client, "fragile", "go")
    assert code == 200, result
    assert result["status"] == "failed"
    steps = by_name(result["steps"])
    assert {n: s["status"] for n, s in steps.items()} == {
        "first": "completed", "bad": "failed", "after_bad": "skipped", "after_after": "skipped", "independent": "completed"}
    bad = steps["bad"]
    assert bad["error"]["code"] == "provider_auth_failed" and "API key" in bad["error"]["message"]
    assert bad["session_id"] and bad["finished_at"] and bad["output"] is None
    assert (await session(client, bad["session_id"]))["status"] == "failed"
    for name in ("after_bad", "after_after"):
        skipped = steps[name]
        assert skipped["session_id"] is None and skipped["started_at"] is None and skipped["output"] is None
        assert skipped["usage"] == {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0}
    assert steps["independent"]["output"] == "echo: on my own"
    assert result["output"] == "echo: on my own"  # the sinks that completed
    assert result["usage"]["total_tokens"] == 30  # first and independent; the 401 used none
    assert (await status(client, "fragile"))["status"] == "failed"


async def test_no_wait_answers_202_then_status_shows_progress(client, fake_llm, agents):
    await create(client, "slow", steps=[{"name": "draft", "agent": "Writer"},
                                        {"name": "polish", "agent": "Writer", "depends_on": ["draft"]}])
    fake_llm.script(Text(["rough ", "draft"], delay=0.5))
    code, started = await run(client, "slow", "story", wait=False)
    assert code == 202 and set(started) == {"run_id", "pipeline", "status"}
    assert started["status"] == "running" and started["pipeline"] == "slow"

    seen, last = [], None
    deadline = time.monotonic() + 10
    while True:
        current = await status(client, "slow", started["run_id"])
        seen.append((current["status"], tuple(s["status"] for s in current["steps"])))
        if current["status"] != "running":
            break
        last = current
        assert time.monotonic() < deadline, seen
        await asyncio.sleep(0.05)
    assert ("running", ("running", "pending")) in seen
    assert last is not None and last["finished_at"] is None and last["elapsed_ms"] >= 0
    assert current["status"] == "completed" and current["run_id"] == started["run_id"] and current["pipeline"] == "slow"
    assert [s["output"] for s in current["steps"]] == ["rough draft", "echo: rough draft"]
    assert current["output"] == "echo: rough draft" and current["elapsed_ms"] >= 500
    assert current["usage"] == {"input_tokens": 20, "output_tokens": 10, "total_tokens": 30}
    # Frozen once finished: the run's own span, and still the same after a whole other
    # run has happened since (no sleep: that run is what makes time pass).
    span = at(current["finished_at"]) - at(current["started_at"])
    assert current["elapsed_ms"] == round(span.total_seconds() * 1000)

    # The latest run without ?run_id=, unknown runs are 404, and the runs list.
    _, second = await run(client, "slow", "again")
    assert (await status(client, "slow"))["run_id"] == second["run_id"]
    assert (await status(client, "slow", started["run_id"]))["elapsed_ms"] == current["elapsed_ms"]
    for bad in (str(uuid.uuid4()), "not-a-uuid"):
        assert bad in await error(await client.get(f"/v1/pipelines/slow/status?run_id={bad}"), 404)
    runs = await (await client.get("/v1/pipelines/slow/runs")).get_json()
    assert runs["total"] == 2 and [r["run_id"] for r in runs["data"]] == [second["run_id"], started["run_id"]]
    assert runs["data"][0]["status"] == "completed"


async def test_status_before_any_run_is_404(client, agents):
    await create(client)
    assert "no runs" in await error(await client.get("/v1/pipelines/flow/status"), 404)


async def test_deleting_a_pipeline_stops_its_run(client, fake_llm, agents):
    await create(client, "long", steps=[{"name": "wait", "agent": "Writer"},
                                        {"name": "next", "agent": "Writer", "depends_on": ["wait"]}])
    fake_llm.script(Hang(["..."], seconds=30))
    await run(client, "long", "x", wait=False)
    step = {}

    async def first_step_asked_the_provider() -> bool:
        nonlocal step
        step = (await status(client, "long"))["steps"][0]
        return bool(step["session_id"] and fake_llm.requests)

    await until(first_step_asked_the_provider)
    assert (await client.delete("/v1/pipelines/long")).status_code == 204
    # No clock on the DELETE: by the time it answers, the step's turn is already
    # cancelled, while the provider would still be hanging for 30 s. A delete that let
    # the run go on, or waited it out, finds the session running or completed here.
    assert (await client.get("/v1/pipelines/long/status")).status_code == 404
    assert (await session(client, step["session_id"]))["status"] == "pending"  # its turn was cancelled
    assert len(fake_llm.requests) == 1  # the next step never started


async def test_a_run_going_when_the_server_stops_ends_failed(settings, fake_llm):
    from app.main import create_app

    app = create_app(settings)
    async with app.test_app():
        client = app.test_client()
        await make_chat(client, fake_llm)
        await agent(client, "Writer")
        await create(client, "long", steps=[{"name": "wait", "agent": "Writer"},
                                            {"name": "next", "agent": "Writer", "depends_on": ["wait"]}])
        fake_llm.script(Hang(["..."], seconds=30))
        _, started = await run(client, "long", "x", wait=False)
        await until(lambda: bool(fake_llm.requests))
    app = create_app(settings)  # the server again, on the same database
    async with app.test_app():
        after = await status(app.test_client(), "long", started["run_id"])
    assert after["status"] == "failed" and after["finished_at"] is not None
    assert [(s["status"], (s["error"] or {}).get("code")) for s in after["steps"]] == [("failed", "cancelled"), ("skipped", None)]


async def test_a_step_stopped_by_a_shutdown_keeps_its_partial_text(settings, fake_llm):
    """docs/api.md 10.3: a cancelled step's `output` is any partial text. Reported: after
    a SIGTERM the step ended with `output: null` while its session held "part"."""
    from app.main import create_app

    app = create_app(settings)
    async with app.test_app():
        client = app.test_client()
        await make_chat(client, fake_llm)
        await agent(client, "Writer")
        await create(client, "sd", steps=[{"name": "wait", "agent": "Writer"}])
        fake_llm.script(Hang(["part"], seconds=30))
        _, started = await run(client, "sd", "x", wait=False)
        step_session = ""

        async def part_streamed() -> bool:
            nonlocal step_session
            step_session = (await status(client, "sd"))["steps"][0]["session_id"] or ""
            return bool(step_session) and any(e["type"] == "message.delta" for e in await events(client, step_session))

        await until(part_streamed)
    app = create_app(settings)  # the server again, on the same database
    async with app.test_app():
        client = app.test_client()
        step = (await status(client, "sd", started["run_id"]))["steps"][0]
        assert step["status"] == "failed" and step["error"] == {"code": "cancelled", "message": "server shutting down"}
        assert step["output"] == "part"
        assert [m["content"]["text"] for m in await messages(client, step_session) if m["role"] == "assistant"] == ["part"]


async def test_a_run_left_running_by_a_crash_ends_failed_at_start_up(client, agents):
    from app.models import PipelineRun
    from app.services.pipeline_runs import fail_interrupted_runs

    pipeline = await create(client, steps=[{"name": "a", "agent": "Writer"},
                                           {"name": "b", "agent": "Writer", "depends_on": ["a"]}])
    def step(name, state):
        return {"name": name, "agent": "Writer", "status": state, "output": None, "session_id": None,
                "usage": {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0}, "duration_ms": None,
                "started_at": None, "finished_at": None, "error": None}

    crashed = await PipelineRun.create(pipeline_id=pipeline["id"], status="running", input="x",
                                       steps=[step("a", "running"), step("b", "pending")])
    assert await fail_interrupted_runs() == 1
    after = await status(client, "flow", str(crashed.id))
    assert after["status"] == "failed" and after["finished_at"] is not None
    assert [(s["status"], (s["error"] or {}).get("code")) for s in after["steps"]] == [("failed", "server_restarted"), ("skipped", None)]
    # As docs/api.md 10.3 says (a client test found "" and the start-up time here): unknown stays null.
    assert after["output"] is None and after["steps"][0]["finished_at"] is None and after["steps"][0]["duration_ms"] is None


async def test_pipeline_steps_are_counted_in_metrics(client, agents):
    await create(client, steps=[{"name": "a", "agent": "Writer"}, {"name": "b", "agent": "Writer"}])
    assert (await run(client, "flow"))[0] == 200
    text = await (await client.get("/v1/metrics")).get_data(as_text=True)
    assert 'agentspec_pipeline_steps_total{status="completed"} 2.0' in text


async def test_creating_the_same_name_at_once_gives_one_pipeline_and_409s(client, agents):
    responses = await asyncio.gather(*[client.post("/v1/pipelines", json={"name": "race", "steps": FAN}) for _ in range(8)])
    codes = sorted(r.status_code for r in responses)
    assert codes.count(201) >= 1 and set(codes) <= {201, 409}



async def test_a_delete_racing_with_runs_leaves_none_of_them_going(client, fake_llm):
    """Runs that found the pipeline just before a DELETE are stopped or refused: none goes
    on once the DELETE has answered. A client test saw 27 of 30 such runs answer 200
    `completed` for a pipeline already gone. The window (a run stored, its task or, on
    Temporal, its workflow not yet started) is hit by sending the DELETE at several
    moments of a burst of runs. On Temporal, before the fix, steps of runs stored in that
    window were still running after the 204."""
    await delete_during_a_burst_of_runs(client, fake_llm)


async def delete_during_a_burst_of_runs(client, fake_llm) -> None:
    await make_chat(client, fake_llm)
    writer = await agent(client, "Writer")
    fake_llm.script(*[Text(["a", "b"], delay=0.5) for _ in range(200)])
    for i, pause in enumerate((0.0, 0.005, 0.01, 0.02, 0.03, 0.05)):
        pipeline = await create(client, f"race{i}", steps=[{"name": "a", "agent": "Writer"}])
        runs = [asyncio.create_task(run(client, f"race{i}", "go")) for _ in range(20)]
        await asyncio.sleep(pause)
        assert (await client.delete(f"/v1/pipelines/{pipeline['id']}")).status_code == 204
        going = await client.get(f"/v1/agents/{writer['id']}/sessions?limit=500")
        sessions = (await going.get_json())["data"]
        assert [s["id"] for s in sessions if s["status"] == "running"] == []
        answers = await asyncio.gather(*runs)
        outcomes = {(code, body["error"]["code"] if code >= 400 else body["status"]) for code, body in answers}
        assert outcomes <= {(409, "run_stopped"), (404, "not_found")}, (pause, answers)
        after = await client.get(f"/v1/agents/{writer['id']}/sessions?limit=500")
        assert (await after.get_json())["total"] == len(sessions)  # no step began after the DELETE
