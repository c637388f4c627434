"""Agents: create, read, update, archive, and their capability list."""

from __future__ import annotations

import uuid

from typing import Any

from app.errors import Conflict, InvalidRequest, NotFound
from app.auth.principal import new_owner, visible
from app.models import Agent
from app.runtime.capabilities import unknown_capabilities
from app.services.common import existing_key, paginate
from app.services.llm import check_model_exists

async def create_agent(fields: dict[str, Any]) -> Agent:
    await check_model_exists(fields.get("default_model_id"), "default_model_id")
    fields["capability_ids"] = _checked_capabilities(fields.get("capability_ids") or [])
    return await Agent.create(**fields, owner_id=new_owner())


async def list_agents(status: str, offset: int, limit: int) -> tuple[list[Agent], int]:
    query = visible(Agent.all()).order_by("-created_at", "id")
    if status != "all":
        query = query.filter(status=status)
    return await paginate(query, offset, limit)


async def get_agent(agent_ref: str) -> Agent:
    """By id, or by name (AgentSpec clients call agents by name). Names need not be
    unique: a name shared by several active agents is a 409 that lists their ids."""
    try:
        agent_id = uuid.UUID(str(agent_ref))
    except ValueError:
        name = existing_key(Agent, "name", agent_ref, f"agent '{agent_ref}' not found")
        matches = await visible(Agent.filter(name=name, status="active")).order_by("created_at").limit(10)
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
    if agent.status == "archived":
        raise Conflict(f"agent '{agent_id}' is archived; new sessions cannot be started on it", code="agent_archived")
    return agent


async def update_agent(agent_id: str, changes: dict[str, Any]) -> Agent:
    agent = await get_agent(agent_id)
    if "default_model_id" in changes:
        await check_model_exists(changes["default_model_id"], "default_model_id")
    if "capability_ids" in changes:
        changes["capability_ids"] = _checked_capabilities(changes["capability_ids"])
    if changes:
        agent.update_from_dict(changes)
        await agent.save()
    return agent


async def archive_agent(agent_id: str) -> Agent:
    agent = await get_agent(agent_id)
    if agent.status != "archived":
        agent.status = "archived"
        await agent.save(update_fields=["status", "updated_at"])
    return agent


def _checked_capabilities(ids: list[str]) -> list[str]:
    """Known ids only; order kept, repeats dropped."""
    unknown = unknown_capabilities(ids)
    if unknown:
        raise InvalidRequest(f"capability_ids: unknown capability {', '.join(repr(i) for i in unknown)}; see GET /v1/capabilities")
    return list(dict.fromkeys(ids))


async def set_capabilities(agent_id: str, ids: list[str]) -> Agent:
    checked = _checked_capabilities(ids)
    agent = await get_agent(agent_id)
    agent.capability_ids = checked
    await agent.save(update_fields=["capability_ids", "updated_at"])
    return agent
