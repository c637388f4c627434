"""/v1/agents: agents and their capabilities."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from jsonschema import Draft202012Validator, SchemaError
from pydantic import BaseModel, Field, StrictBool, model_validator
from quart import Blueprint
from quart_schema import tag, validate_querystring, validate_request, validate_response

from app.api.common import Name, OrmOut, Page, PageQuery, PatchBody, RequestBody, Tags, page_of
from app.runtime.toolbox import setting
from app.services import agents as service

bp = Blueprint("agents", __name__, url_prefix="/v1/agents")


class ClientTool(RequestBody):
    """A tool the client runs: the turn asks for its result (docs/api.md §3.9)."""

    name: str = Field(pattern=r"^[a-zA-Z0-9_-]{1,64}$", description="As the model calls it")
    description: str = Field("", max_length=4000)
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}},
                                       description="JSON schema of the arguments (an object)")

    @model_validator(mode="after")
    def _object_schema(self) -> ClientTool:
        if self.parameters.get("type", "object") != "object":
            raise ValueError("parameters must be the JSON schema of an object ({\"type\": \"object\", ...})")
        # A schema that is not one would be refused by the provider on every turn instead.
        try:
            Draft202012Validator.check_schema(self.parameters)
        except SchemaError as exc:
            where = "/".join(str(p) for p in exc.path)
            raise ValueError(f"parameters is not a valid JSON Schema{f' at {where}' if where else ''}: "
                             f"{exc.message}") from None
        return self


ClientTools = list[ClientTool]


class AgentCreate(RequestBody):
    name: Name
    system_prompt: str
    description: str | None = None
    tags: Tags = []
    default_model_id: UUID | None = None
    capability_ids: list[str] = []
    client_tools: ClientTools = Field([], max_length=64)


class AgentPatch(PatchBody):
    NOT_NULL = ("name", "system_prompt", "tags", "capability_ids", "client_tools")
    name: Name | None = None
    system_prompt: str | None = None
    description: str | None = None
    tags: Tags | None = None
    default_model_id: UUID | None = None
    capability_ids: list[str] | None = None
    client_tools: ClientTools | None = Field(None, max_length=64)


class ClientToolOut(BaseModel):
    name: str
    description: str
    parameters: dict[str, Any]


class AgentOut(OrmOut):
    id: UUID
    name: str
    description: str | None
    system_prompt: str
    tags: list[str]
    default_model_id: UUID | None
    capability_ids: list[str]
    client_tools: list[ClientToolOut]
    status: Literal["active", "archived"]
    created_at: datetime
    updated_at: datetime


class AgentPage(Page[AgentOut]):
    # GET /v1/agents is shared: Everruns clients read `data`, the AgentSpec Python SDK's
    # list_agents() reads `agents` (and finds nothing without it).
    agents: list[AgentOut] = Field(description="The same items, under the name AgentSpec clients read")


class AgentListQuery(PageQuery):
    status: Literal["active", "archived", "all"] = "active"


class CapabilitySetting(RequestBody):
    id: str = Field(description="A capability id; `mcp:<server>:*` covers all of a server's tools")
    requires_approval: StrictBool = Field(False, description="Its tools wait for a person's approval before they run")


class CapabilityIds(RequestBody):
    """Either list: `capability_ids` keeps the settings of the ids that stay."""

    capability_ids: list[str] | None = None
    capabilities: list[CapabilitySetting] | None = None

    @model_validator(mode="after")
    def _one_list(self) -> CapabilityIds:
        if (self.capability_ids is None) == (self.capabilities is None):
            raise ValueError("send either capability_ids or capabilities")
        return self


class AgentCapabilities(BaseModel):
    agent_id: UUID
    capability_ids: list[str]
    capabilities: list[CapabilitySetting]

    @classmethod
    def of(cls, agent) -> AgentCapabilities:
        settings = agent.capability_settings or {}
        # What applies: an MCP tool with no setting of its own takes its server's `*`.
        return cls(agent_id=agent.id, capability_ids=agent.capability_ids, capabilities=[
            CapabilitySetting(id=cap_id, requires_approval=bool(setting(settings, cap_id, "requires_approval")))
            for cap_id in agent.capability_ids])


@bp.post("")
@tag(["Agents"])
@validate_request(AgentCreate)
@validate_response(AgentOut, 201)
async def create_agent(data: AgentCreate):
    """Create an agent."""
    agent = await service.create_agent(data.model_dump())
    return AgentOut.model_validate(agent), 201


@bp.get("")
@tag(["Agents"])
@validate_querystring(AgentListQuery)
@validate_response(AgentPage)
async def list_agents(query_args: AgentListQuery):
    """List agents, newest first; archived ones only with ?status=archived or all."""
    items, total = await service.list_agents(query_args.status, query_args.offset, query_args.limit)
    page = page_of(AgentOut.model_validate, items, total, query_args)
    return {**page, "agents": page["data"]}


@bp.get("/<agent_id>")
@tag(["Agents"])
@validate_response(AgentOut)
async def get_agent(agent_id: str):
    """Get an agent (archived agents too)."""
    return AgentOut.model_validate(await service.get_agent(agent_id))


@bp.patch("/<agent_id>")
@tag(["Agents"])
@validate_request(AgentPatch)
@validate_response(AgentOut)
async def update_agent(agent_id: str, data: AgentPatch):
    """Update an agent; explicit null clears description or default_model_id."""
    return AgentOut.model_validate(await service.update_agent(agent_id, data.changes()))


@bp.delete("/<agent_id>")
@tag(["Agents"])
@validate_response(AgentOut)
async def archive_agent(agent_id: str):
    """Archive an agent (soft delete): still readable by id, no new sessions."""
    return AgentOut.model_validate(await service.archive_agent(agent_id))


@bp.get("/<agent_id>/capabilities")
@tag(["Agents", "Capabilities"])
@validate_response(AgentCapabilities)
async def get_agent_capabilities(agent_id: str):
    """The capabilities enabled on an agent, in order, with their settings."""
    return AgentCapabilities.of(await service.get_agent(agent_id))


@bp.put("/<agent_id>/capabilities")
@tag(["Agents", "Capabilities"])
@validate_request(CapabilityIds)
@validate_response(AgentCapabilities)
async def set_agent_capabilities(agent_id: str, data: CapabilityIds):
    """Replace an agent's capability list (order kept; unknown ids are a 400)."""
    if data.capabilities is not None:
        settings: dict[str, dict] = {}
        for c in data.capabilities:  # each entry's settings, false too (an MCP tool's wins over its `*`)
            settings.setdefault(c.id, c.model_dump(exclude={"id"}))  # a repeated id: its first entry, as in the list
        agent = await service.set_capabilities(agent_id, [c.id for c in data.capabilities], settings)
    else:
        assert data.capability_ids is not None  # _one_list: one of the two lists is sent
        agent = await service.set_capabilities(agent_id, data.capability_ids)
    return AgentCapabilities.of(agent)
