"""/v1/pipelines: pipeline definitions (graphs of agent steps), runs and run status.

`{name}` in a path is the pipeline's name or its id.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import AfterValidator, BaseModel, Field, StrictBool, StringConstraints, model_validator
from quart import Blueprint
from quart_schema import tag, validate_querystring, validate_request, validate_response

from app.api.common import Name, OrmOut, Page, PageQuery, PatchBody, RequestBody, page_of
from app.api.openapi import no_content
from app.dialects.agentspec import run_body, trigger_input
from app.models.enums import PipelineRunStatus
from app.services import pipeline_runs as run_engine
from app.services import pipelines as service
from app.wiring import current_runtime

bp = Blueprint("pipelines", __name__, url_prefix="/v1/pipelines")

PipelineName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200, pattern=r"^[^/]+$")]
StepStatus = Literal["pending", "running", "completed", "failed", "skipped"]
RunStatusValue = Literal["running", "completed", "failed"]




def _without_repeats(names: list[str]) -> list[str]:
    return list(dict.fromkeys(names))


# Repeats are dropped before the length is checked: 101 times the same step is one name.
DependsOn = Annotated[list[Name], AfterValidator(_without_repeats), Field(max_length=100)]


class StepIn(RequestBody):
    name: Name
    agent: Name = Field(description="Agent id or name")
    depends_on: DependsOn = Field([], description="Names of steps that must complete first (repeats dropped)")
    input: str | None = Field(None, min_length=1,
                              description="Literal input; default: the dependencies' outputs, else the run's input")


Steps = Annotated[list[StepIn], Field(min_length=1, max_length=100)]


class PipelineCreate(RequestBody):
    name: PipelineName
    description: str | None = Field(None, max_length=5000)
    steps: Steps


class PipelinePatch(PatchBody):
    NOT_NULL = ("name", "steps")
    name: PipelineName | None = None
    description: str | None = Field(None, max_length=5000)
    steps: Steps | None = None


class StepOut(BaseModel):
    name: str
    agent: str
    depends_on: list[str]
    input: str | None


class PipelineOut(OrmOut):
    id: UUID
    name: str
    description: str | None
    steps: list[StepOut]
    created_at: datetime
    updated_at: datetime


class RunRequest(RequestBody):
    input: str | None = Field(None, description="The run's input (required unless `trigger` is sent)")
    trigger: dict[str, Any] | None = Field(None, description="What the AgentSpec Python SDK sends instead of `input`: "
                                           "its `input`/`message` text, else the whole object as JSON, is the run's "
                                           "input, and the answer's `steps` are keyed by step name")
    wait: StrictBool = Field(True, description="false: answer 202 at once and poll GET /v1/pipelines/{name}/status")

    @model_validator(mode="after")
    def _has_input(self) -> RunRequest:
        if (self.input is None) == (self.trigger is None):
            raise ValueError("input: send exactly one of {\"input\": \"...\"} and {\"trigger\": {...}}")
        return self

    @property
    def text(self) -> str:
        return self.input if self.input is not None else trigger_input(self.trigger or {})


class RunUsage(BaseModel):
    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0


class StepError(BaseModel):
    code: str
    message: str


class StepRun(BaseModel):
    name: str
    agent: str
    status: StepStatus
    output: str | None
    usage: RunUsage
    duration_ms: int | None
    session_id: str | None
    started_at: datetime | None
    finished_at: datetime | None
    error: StepError | None = None


class SdkTokens(BaseModel):
    input: int
    output: int
    total: int


class RunOut(BaseModel):
    run_id: UUID
    pipeline: str
    status: RunStatusValue
    steps: list[StepRun] | dict[str, StepRun] = Field(
        description="In definition order; keyed by step name when the run was started with `trigger`")
    output: str | None
    total_duration_ms: int
    usage: RunUsage
    tokens: SdkTokens = Field(description="The same usage as {input, output, total}, as the Python SDK reads it")
    started_at: datetime
    finished_at: datetime | None


class RunStarted(BaseModel):
    run_id: UUID
    pipeline: str
    status: Literal["running"]


class RunStatus(BaseModel):
    pipeline: str
    run_id: UUID
    status: RunStatusValue
    steps: list[StepRun]
    started_at: datetime
    finished_at: datetime | None
    elapsed_ms: int
    output: str | None
    usage: RunUsage


class StatusQuery(BaseModel):
    run_id: str | None = None


@bp.post("")
@tag(["Pipelines"])
@validate_request(PipelineCreate)
@validate_response(PipelineOut, 201)
async def create_pipeline(data: PipelineCreate):
    """Define a pipeline: steps, each running one agent, with dependencies between them."""
    pipeline = await service.create_pipeline(data.model_dump())
    return PipelineOut.model_validate(pipeline), 201


@bp.get("")
@tag(["Pipelines"])
@validate_querystring(PageQuery)
@validate_response(Page[PipelineOut])
async def list_pipelines(query_args: PageQuery):
    """List pipelines, newest first."""
    items, total = await service.list_pipelines(query_args.offset, query_args.limit)
    return page_of(PipelineOut.model_validate, items, total, query_args)


@bp.get("/<name>")
@tag(["Pipelines"])
@validate_response(PipelineOut)
async def get_pipeline(name: str):
    """Get a pipeline by name or id."""
    return PipelineOut.model_validate(await service.get_pipeline(name))


@bp.put("/<name>")
@tag(["Pipelines"])
@validate_request(PipelineCreate)
@validate_response(PipelineOut)
async def replace_pipeline(name: str, data: PipelineCreate):
    """Replace a pipeline's name, description and steps (an absent description clears it)."""
    return PipelineOut.model_validate(await service.update_pipeline(name, data.model_dump()))


@bp.patch("/<name>")
@tag(["Pipelines"])
@validate_request(PipelinePatch)
@validate_response(PipelineOut)
async def update_pipeline(name: str, data: PipelinePatch):
    """Change some of a pipeline's name, description and steps; null clears the description."""
    return PipelineOut.model_validate(await service.update_pipeline(name, data.changes()))


@bp.delete("/<name>")
@tag(["Pipelines"])
@no_content
async def delete_pipeline(name: str):
    """Delete a pipeline and its runs (a run still going is stopped)."""
    await service.delete_pipeline(current_runtime(), name)
    return "", 204


@bp.post("/<name>/run")
@tag(["Pipelines"])
@validate_request(RunRequest)
@validate_response(RunOut, 200)
@validate_response(RunStarted, 202)
async def run_pipeline(name: str, data: RunRequest):
    """Run a pipeline: steps whose dependencies are done run at the same time, each in a new
    session of its agent. A failed step fails the run (still a 200) and skips its dependents.
    With "wait": false the answer is a 202 at once; poll GET /v1/pipelines/{name}/status."""
    pipeline, run, task = await service.start_run(current_runtime(), name, data.text)
    if not data.wait:
        return RunStarted(run_id=run.id, pipeline=pipeline.name, status=PipelineRunStatus.RUNNING.value), 202
    finished = await run_engine.wait_run(task)
    return RunOut.model_validate(run_body(finished, keyed=data.trigger is not None)), 200


@bp.get("/<name>/status")
@tag(["Pipelines"])
@validate_querystring(StatusQuery)
@validate_response(RunStatus)
async def run_status(name: str, query_args: StatusQuery):
    """A run's progress (the latest run without ?run_id=); elapsed_ms runs on until it ends."""
    pipeline, run = await service.get_run(name, query_args.run_id)
    return RunStatus.model_validate(run_engine.describe_run(run, pipeline.name))


@bp.get("/<name>/runs")
@tag(["Pipelines"])
@validate_querystring(PageQuery)
@validate_response(Page[RunStatus])
async def list_runs(name: str, query_args: PageQuery):
    """A pipeline's runs, newest first."""
    pipeline, runs, total = await service.list_runs(name, query_args.offset, query_args.limit)
    return page_of(lambda run: RunStatus.model_validate(run_engine.describe_run(run, pipeline.name)), runs, total, query_args)
