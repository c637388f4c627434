"""Helpers shared by the domain services: id parsing, pagination, PATCH saves."""

from __future__ import annotations

import uuid
from typing import Any, TypeVar

from tortoise.fields import CharField
from tortoise.models import Model
from tortoise.queryset import QuerySet

from app.errors import NotFound
from app.text import is_storable_text

T = TypeVar("T", bound=Model)


def as_uuid(value: str | uuid.UUID) -> uuid.UUID | None:
    """The UUID `value` spells, or None (a name, or anything else)."""
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


def parse_uuid(value: str | uuid.UUID, kind: str) -> uuid.UUID:
    """An id that is not a UUID cannot exist: that is a 404, not a 500 or a 400."""
    parsed = as_uuid(value)
    if parsed is None:
        raise NotFound(f"{kind} '{value}' not found")
    return parsed


def fits_column(model: type[Model], field: str, value: str) -> bool:
    """Whether the column can hold `value` at all: Tortoise validates filter values against
    the column's length (and raised), PostgreSQL refuses NUL in text: both were 500s."""
    column = model._meta.fields_map[field]
    assert isinstance(column, CharField)  # a column of bounded text
    return len(value) <= column.max_length and is_storable_text(value)


def existing_key(model: type[Model], field: str, value: str, not_found: str) -> str:
    """A key the column cannot hold cannot name a row: that is a 404."""
    if not fits_column(model, field, value):
        raise NotFound(not_found)
    return value


async def paginate(query: QuerySet[T], offset: int, limit: int) -> tuple[list[T], int]:
    total = await query.count()
    items = await query.offset(offset).limit(limit)
    return list(items), total


async def save_changes(row: Model, changes: dict[str, Any]) -> None:
    """A PATCH's changes applied to `row` and saved: those columns (and updated_at) only.
    Saving the whole row as it was read would undo what was written since: a status a
    turn or a `session_stop` set, an archive, and on PostgreSQL a session's event counter,
    after which every event of the session collided with a stored one (decision 208)."""
    row.update_from_dict(changes)
    await row.save(update_fields=[*changes, "updated_at"])
