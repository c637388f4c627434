"""/v1/agents: agents and their capabilities."""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, Field
from quart import Blueprint
from quart_schema import tag, validate_querystring, validate_request, validate_response

from app.api.common import Name, OrmOut, Page, PageQuery, PatchBody, RequestBody, Tags, page_of
from app.services import agents as service

bp = Blueprint("agents", __name__, url_prefix="/v1/agents")


class AgentCreate(RequestBody):
    name: Name
    system_prompt: str
    description: str | None = None
    tags: Tags = []
    default_model_id: UUID | None = None
    capability_ids: list[str] = []


class AgentPatch(PatchBody):
    NOT_NULL = ("name", "system_prompt", "tags", "capability_ids")
    name: Name | None = None
    system_prompt: str | None = None
    description: str | None = None
    tags: Tags | None = None
    default_model_id: UUID | None = None
    capability_ids: list[str] | None = None


class AgentOut(OrmOut):
    id: UUID
    name: str
    description: str | None
    system_prompt: str
    tags: list[str]
    default_model_id: UUID | None
    capability_ids: list[str]
    status: Literal["active", "archived"]
    created_at: datetime
    updated_at: datetime


class AgentPage(Page[AgentOut]):
    # GET /v1/agents is shared: Everruns clients read `data`, the AgentSpec Python SDK's
    # list_agents() reads `agents` (and finds nothing without it).
    agents: list[AgentOut] = Field(description="The same items, under the name AgentSpec clients read")


class AgentListQuery(PageQuery):
    status: Literal["active", "archived", "all"] = "active"


class CapabilityIds(RequestBody):
    capability_ids: list[str]


class AgentCapabilities(BaseModel):
    agent_id: UUID
    capability_ids: list[str]


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
    """The capability ids enabled on an agent, in order."""
    agent = await service.get_agent(agent_id)
    return AgentCapabilities(agent_id=agent.id, capability_ids=agent.capability_ids)


@bp.put("/<agent_id>/capabilities")
@tag(["Agents", "Capabilities"])
@validate_request(CapabilityIds)
@validate_response(AgentCapabilities)
async def set_agent_capabilities(agent_id: str, data: CapabilityIds):
    """Replace an agent's capability list (order kept; unknown ids are a 400)."""
    agent = await service.set_capabilities(agent_id, data.capability_ids)
    return AgentCapabilities(agent_id=agent.id, capability_ids=agent.capability_ids)
