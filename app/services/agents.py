"""Agents: create, read, update, archive, and their capability list."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from app.auth.principal import new_owner, visible
from app.errors import Conflict, InvalidRequest, NotFound
from app.models import Agent
from app.models.enums import AgentStatus
from app.runtime.capabilities import REGISTRY, unknown_capabilities
from app.runtime.toolbox import MCP_PREFIX
from app.services.common import as_uuid, existing_key, paginate, save_changes
from app.services.llm import check_model_exists
from app.services.mcp_servers import unknown_mcp_capabilities


async def create_agent(fields: dict[str, Any]) -> Agent:
    await check_model_exists(fields.get("default_model_id"), "default_model_id")
    fields["capability_ids"] = await _checked_capabilities(fields.get("capability_ids") or [])
    _check_client_tools(fields.get("client_tools") or [])
    return await Agent.create(**fields, owner_id=new_owner())


async def list_agents(status: str, offset: int, limit: int) -> tuple[list[Agent], int]:
    query = visible(Agent.all()).order_by("-created_at", "id")
    if status != "all":
        query = query.filter(status=status)
    return await paginate(query, offset, limit)


async def get_agent(agent_ref: str) -> Agent:
    """By id, or by name (AgentSpec clients call agents by name). Names need not be
    unique: a name shared by several active agents is a 409 that lists their ids."""
    agent_id = as_uuid(agent_ref)
    if agent_id is None:
        name = existing_key(Agent, "name", agent_ref, f"agent '{agent_ref}' not found")
        matches = await visible(Agent.filter(name=name, status=AgentStatus.ACTIVE)).order_by("created_at").limit(10)
        if len(matches) > 1:
            ids = ", ".join(str(a.id) for a in matches)
            raise Conflict(f"agent name '{agent_ref}' is ambiguous; use one of these ids: {ids}", code="ambiguous_agent_name")
        agent = matches[0] if matches else None
    else:
        agent = await visible(Agent.filter(id=agent_id)).first()
    if agent is None:
        raise NotFound(f"agent '{agent_ref}' not found")
    return agent


async def get_active_agent(agent_id: str) -> Agent:
    agent = await get_agent(agent_id)
    if agent.status == AgentStatus.ARCHIVED:
        raise Conflict(f"agent '{agent_id}' is archived; new sessions cannot be started on it", code="agent_archived")
    return agent


async def update_agent(agent_id: str, changes: dict[str, Any]) -> Agent:
    agent = await get_agent(agent_id)
    if "default_model_id" in changes:
        await check_model_exists(changes["default_model_id"], "default_model_id")
    if "capability_ids" in changes:
        changes["capability_ids"] = await _checked_capabilities(changes["capability_ids"], agent.capability_ids)
        changes["capability_settings"] = _kept_settings(agent, changes["capability_ids"])
    if "client_tools" in changes:
        _check_client_tools(changes["client_tools"])
    if changes:
        await save_changes(agent, changes)
    return agent


async def archive_agent(agent_id: str) -> Agent:
    agent = await get_agent(agent_id)
    if agent.status != AgentStatus.ARCHIVED:
        agent.status = AgentStatus.ARCHIVED
        await agent.save(update_fields=["status", "updated_at"])
    return agent


async def _checked_capabilities(ids: list[str], kept: Collection[str] = ()) -> list[str]:
    """Known ids (built-in, or a visible MCP server's), or ids the agent has already
    (`kept`): a deleted MCP server's ids stay on the agents naming it, so an agent read
    and written back must not be refused for them. Order kept, repeats dropped."""
    new = [i for i in ids if i not in kept]
    unknown = unknown_capabilities([i for i in new if not i.startswith(MCP_PREFIX)])
    unknown += await unknown_mcp_capabilities([i for i in new if i.startswith(MCP_PREFIX)])
    if unknown:
        raise InvalidRequest(f"capability_ids: unknown capability {', '.join(repr(i) for i in unknown)}; see GET /v1/capabilities")
    return list(dict.fromkeys(ids))


async def set_capabilities(agent_id: str, ids: list[str], settings: dict[str, dict] | None = None) -> Agent:
    """`settings` None: the ids that stay keep theirs (a client that only knows ids
    does not silently lift an approval requirement)."""
    try:
        agent = await get_agent(agent_id)
    except NotFound:
        await _checked_capabilities(ids)  # an unknown id is reported before a missing agent
        raise
    checked = await _checked_capabilities(ids, agent.capability_ids)
    agent.capability_ids = checked
    agent.capability_settings = {k: v for k, v in settings.items() if v} if settings is not None \
        else _kept_settings(agent, checked)
    await agent.save(update_fields=["capability_ids", "capability_settings", "updated_at"])
    return agent


def _kept_settings(agent: Agent, ids: list[str]) -> dict[str, dict]:
    return {k: v for k, v in (agent.capability_settings or {}).items() if k in ids}


def _check_client_tools(tools: list[dict[str, Any]]) -> None:
    """Names the model can tell apart: unique, and not a built-in tool's."""
    names = [t["name"] for t in tools]
    repeated = sorted({n for n in names if names.count(n) > 1})
    builtin = sorted(set(names) & {tool.name for cap in REGISTRY.values() for tool in cap.tools})
    if repeated or builtin:
        clash = ", ".join(repr(n) for n in repeated or builtin)
        raise InvalidRequest(f"client_tools: {clash} " + ("appears more than once" if repeated
                                                           else "is the name of a built-in tool"))
