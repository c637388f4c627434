"""Pipelines: named graphs of agent steps (definitions, validation) and their stored
runs. Running them is app/services/pipeline_runs.py."""

from __future__ import annotations

import asyncio
import uuid
from graphlib import CycleError, TopologicalSorter
from typing import TYPE_CHECKING, Any

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from app.auth.principal import new_owner, visible
from app.errors import Conflict, InvalidRequest, NotFound
from app.models import Pipeline, PipelineRun
from app.models.enums import AgentStatus, PipelineRunStatus
from app.services.agents import get_agent
from app.services.common import as_uuid, existing_key, paginate, parse_uuid
from app.services.pipeline_runs import (
    PIPELINE_DELETED,
    STOP_WAIT_SECONDS,
    launch,
    running_run_ids,
    stop_runs_of,
    usage_dict,
)

if TYPE_CHECKING:
    from app.wiring import Runtime




# --- definitions -------------------------------------------------------------------

async def create_pipeline(fields: dict[str, Any]) -> Pipeline:
    owner = new_owner()
    await _check_name_free(fields["name"], owner)
    fields["steps"] = await _checked_steps(fields["steps"])
    return await Pipeline.create(**fields, owner_id=owner)


async def list_pipelines(offset: int, limit: int) -> tuple[list[Pipeline], int]:
    return await paginate(visible(Pipeline.all()).order_by("-created_at", "id"), offset, limit)


async def get_pipeline(ref: str) -> Pipeline:
    """By id, or by name (unique per owner; an admin who sees two owners' pipelines of
    that name gets their own, else a 409 listing the ids)."""
    pipeline_id = as_uuid(ref)
    pipeline = None if pipeline_id is None else await visible(Pipeline.filter(id=pipeline_id)).first()
    if pipeline is None:
        name = existing_key(Pipeline, "name", ref, f"pipeline '{ref}' not found")
        matches = await visible(Pipeline.filter(name=name)).order_by("created_at").limit(10)
        own = [p for p in matches if p.owner_id == new_owner()]
        if len(matches) > 1 and len(own) != 1:
            ids = ", ".join(str(p.id) for p in matches)
            raise Conflict(f"pipeline name '{ref}' is ambiguous; use one of these ids: {ids}",
                           code="ambiguous_pipeline_name")
        pipeline = own[0] if len(matches) > 1 else (matches[0] if matches else None)
    if pipeline is None:
        raise NotFound(f"pipeline '{ref}' not found")
    return pipeline


async def update_pipeline(ref: str, changes: dict[str, Any]) -> Pipeline:
    pipeline = await get_pipeline(ref)
    if "name" in changes and changes["name"] != pipeline.name:
        await _check_name_free(changes["name"], pipeline.owner_id)
    if "steps" in changes:
        changes["steps"] = await _checked_steps(changes["steps"])
    if changes:
        pipeline.update_from_dict(changes)
        await pipeline.save()
    return pipeline


async def delete_pipeline(runtime: Runtime, ref: str) -> None:
    """Delete a pipeline with its runs; a run still going is stopped. None goes on once
    this returns (docs/decisions.md 168, 181, 199).

    A `/run` that found the pipeline just before may store its run and launch it
    meanwhile. In process, the runs are stopped before the delete and again once the
    rows are gone: a run launched before that second stop is stopped by it, and one
    launched after it finds its row gone and never begins (`_RunExecution.execute`).
    In temporal mode the runs to stop are those deleted with the pipeline, cancelled
    before the delete is committed (_delete_with_runs). No run can be stored after the
    delete (its row needs the pipeline's)."""
    pipeline = await get_pipeline(ref)
    if runtime.settings.temporal:
        run_ids = [str(r) for r in await _delete_with_runs(runtime, pipeline)]
        await runtime.temporal_runner.wait_pipeline_runs(run_ids, STOP_WAIT_SECONDS)
        return
    await stop_runs_of(runtime, pipeline.id, PIPELINE_DELETED)
    await pipeline.delete()
    await stop_runs_of(runtime, pipeline.id, PIPELINE_DELETED)


async def _delete_with_runs(runtime: Runtime, pipeline: Pipeline) -> list[uuid.UUID]:
    """Delete the pipeline and cancel the workflows of its runs still going, or neither:
    the ids of those runs. Its row is locked first, so no run can be stored between the
    read and the delete (a run's insert waits on that lock, then finds the pipeline
    gone): the ids are exactly the runs deleted. Their workflows are cancelled with the
    lock held, before the delete is committed: Temporal unreachable, the DELETE is a 503
    and the transaction is rolled back, nothing deleted (the client sends it again),
    rather than runs deleted whose workflows go on once Temporal is back. A workflow not
    started yet when its cancel is asked (its `/run` is still starting it) starts later;
    its first read (`load_pipeline_run`) waits on the same lock, so it finds its run
    deleted once this commits, or runs it if this rolled back."""
    async with in_transaction():
        await Pipeline.filter(id=pipeline.id).select_for_update().first()
        run_ids = await running_run_ids(pipeline.id)
        await runtime.temporal_runner.cancel_pipeline_runs([str(r) for r in run_ids])
        await pipeline.delete()
    return run_ids


async def _check_name_free(name: str, owner: uuid.UUID | None) -> None:
    if await Pipeline.filter(name=name, owner_id=owner).exists():
        raise Conflict(f"a pipeline named '{name}' already exists; choose another name or update that one "
                       f"(PUT /v1/pipelines/{name})")


async def _checked_steps(steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The steps as stored: {name, agent, depends_on, input}; 400 naming the problem."""
    if not steps:
        raise InvalidRequest("steps: a pipeline needs at least one step")
    seen: set[str] = set()
    for i, step in enumerate(steps):
        if step["name"] in seen:
            raise InvalidRequest(f"steps[{i}]: duplicate step name '{step['name']}'; step names must be unique")
        seen.add(step["name"])
    checked = []
    for i, step in enumerate(steps):
        depends_on = list(dict.fromkeys(step.get("depends_on") or []))
        for dep in depends_on:
            if dep not in seen:
                raise InvalidRequest(f"steps[{i}] ('{step['name']}'): depends_on names unknown step '{dep}'; "
                                     f"known steps: {', '.join(repr(n) for n in seen)}")
        checked.append({"name": step["name"], "agent": step["agent"], "depends_on": depends_on,
                        "input": step.get("input")})
    cycle = _find_cycle(checked)
    if cycle:
        raise InvalidRequest(f"steps: dependency cycle {' -> '.join(repr(n) for n in cycle)} "
                             "(each step depends on the next); steps cannot wait for each other")
    for i, step in enumerate(checked):
        try:
            agent = await get_agent(step["agent"])
        except (NotFound, Conflict) as exc:
            raise InvalidRequest(f"steps[{i}] ('{step['name']}'): {exc.message}") from None
        if agent.status == AgentStatus.ARCHIVED:
            raise InvalidRequest(f"steps[{i}] ('{step['name']}'): agent '{step['agent']}' is archived")
    return checked


def _find_cycle(steps: list[dict[str, Any]]) -> list[str] | None:
    """One dependency cycle as [a, b, ..., a] (a depends on b ...), from its earliest
    step, or None."""
    try:
        TopologicalSorter({s["name"]: s["depends_on"] for s in steps}).prepare()
    except CycleError as exc:
        cycle = exc.args[1][:0:-1]  # graphlib's runs dependency first, and repeats its first node
        order = {s["name"]: i for i, s in enumerate(steps)}
        first = cycle.index(min(cycle, key=order.__getitem__))
        return cycle[first:] + cycle[:first + 1]
    return None


# --- runs: reading -----------------------------------------------------------------

async def get_run(ref: str, run_id: str | None) -> tuple[Pipeline, PipelineRun]:
    """A run of the pipeline by id, or its latest run; 404 for an unknown run."""
    pipeline = await get_pipeline(ref)
    query = visible(PipelineRun.filter(pipeline_id=pipeline.id))
    if run_id is not None:
        run = await query.filter(id=parse_uuid(run_id, "pipeline run")).first()
        if run is None:
            raise NotFound(f"pipeline run '{run_id}' not found for pipeline '{pipeline.name}'")
    else:
        run = await query.order_by("-started_at", "id").first()
        if run is None:
            raise NotFound(f"pipeline '{pipeline.name}' has no runs yet; start one with POST /v1/pipelines/{ref}/run")
    return pipeline, run


async def list_runs(ref: str, offset: int, limit: int) -> tuple[Pipeline, list[PipelineRun], int]:
    pipeline = await get_pipeline(ref)
    query = visible(PipelineRun.filter(pipeline_id=pipeline.id)).order_by("-started_at", "id")
    runs, total = await paginate(query, offset, limit)
    return pipeline, runs, total


async def start_run(runtime: Runtime, ref: str, text: str) -> tuple[Pipeline, PipelineRun, asyncio.Task]:
    """Store a new run and start it in a background task.

    The task resolves with the finished run as `describe_run` shows it; it needs no
    request context and is not tied to the request (await it through asyncio.shield)."""
    pipeline = await get_pipeline(ref)
    steps = [{"name": s["name"], "agent": s["agent"], "status": "pending", "output": None, "usage": usage_dict(),
              "duration_ms": None, "session_id": None, "started_at": None, "finished_at": None, "error": None}
             for s in pipeline.steps]
    try:
        run = await PipelineRun.create(pipeline=pipeline, owner_id=new_owner(), status=PipelineRunStatus.RUNNING,
                                       input=text, steps=steps, usage=usage_dict())
    except IntegrityError:  # deleted since it was found: the run's row needs the pipeline's
        raise NotFound(f"pipeline '{ref}' not found") from None
    return pipeline, run, await launch(runtime, pipeline, run)
