"""Pieces every /v1 resource module shares: list envelope, paging, error schema, types."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, field_validator
from quart import request
from quart_schema import RequestSchemaValidationError

from app.api.json_body import parse_json_body
from app.models.sequences import SEQUENCE_MAX  # re-exported: routes bound sequence numbers by it

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

MAX_LIMIT = 500
# Bounds that make an over-large number in a query a 400, not an overflow in the database
# driver: offsets are 64-bit; event and message sequences (and other integer columns)
# 32-bit.
INT64_MAX = 2**63 - 1
INT32_MAX = 2**31 - 1
Offset = Annotated[int, Field(ge=0, le=INT64_MAX)]
SequenceNumber = Annotated[int, Field(ge=0, le=SEQUENCE_MAX)]

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Tag = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
Tags = Annotated[list[Tag], Field(max_length=50)]


class PageQuery(BaseModel):
    offset: Offset = 0
    limit: int = Field(50, ge=1, le=MAX_LIMIT)


class Page(BaseModel, Generic[T]):
    data: list[T]
    total: int
    offset: int
    limit: int


def page_of(convert: Callable[[Any], Any] | None, items: list[Any], total: int, query: PageQuery) -> dict[str, Any]:
    """The list envelope; `convert` turns one stored row into its response model (None:
    the items are ready as they are)."""
    return {
        "data": items if convert is None else [convert(item) for item in items],
        "total": total,
        "offset": query.offset,
        "limit": query.limit,
    }


class ErrorInfo(BaseModel):
    code: str
    message: str


class ErrorResponse(BaseModel):
    error: ErrorInfo
    message: str = Field(description="error.message again, for clients that read it at the top level")
    status: int


class RequestBody(BaseModel):
    """Request bodies reject unknown fields so a typo is an error, not a silent no-op."""

    model_config = ConfigDict(extra="forbid")


class PatchBody(RequestBody):
    """PATCH bodies: absent fields stay as they are; `null` clears a nullable field.

    Subclasses list the fields that may not be cleared in NOT_NULL.
    """

    NOT_NULL: ClassVar[tuple[str, ...]] = ()
    # The schema says what _refuse_null enforces: a NOT_NULL field may be absent, never null.
    model_config = ConfigDict(json_schema_extra=lambda schema, cls: _drop_null(schema, cls.NOT_NULL))

    @field_validator("*", mode="before")
    @classmethod
    def _refuse_null(cls, value: Any, info) -> Any:
        if value is None and info.field_name in cls.NOT_NULL:
            raise ValueError(f"{info.field_name} cannot be null")
        return value

    def changes(self) -> dict[str, Any]:
        return self.model_dump(include=self.model_fields_set)


def _drop_null(schema: dict[str, Any], fields: tuple[str, ...]) -> None:
    """Take `null` out of the schema of each named property (its `anyOf: [..., {"type":
    "null"}]` and its `default: null`, which only says "absent leaves it as it is")."""
    for name in fields:
        prop = schema.get("properties", {}).get(name)
        if prop is None:
            continue
        options = [o for o in prop.get("anyOf", ()) if o != {"type": "null"}]
        if "anyOf" in prop and len(options) == 1:
            rest = {k: v for k, v in prop.items() if k not in ("anyOf", "default")}
            prop.clear()
            prop.update({**options[0], **rest})
        elif "anyOf" in prop:
            prop["anyOf"] = options
            prop.pop("default", None)
        elif prop.get("default", ...) is None:
            del prop["default"]


async def optional_body(model: type[M]) -> M:
    """Validate a JSON body that may be absent altogether (AgentSpec's SDK sends none
    when it has nothing to say); a body that is present must still be valid JSON."""
    raw = await request.get_data()
    data: Any = {}
    if raw.strip():
        # Sent without Content-Type: application/json, a body is not read as JSON (§1): it
        # fails validation as on every other route (and a cross-site form post, which a
        # browser sends without asking, is no valid body here).
        data = parse_json_body(raw) if request.is_json else None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise RequestSchemaValidationError(exc) from None


class OrmOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
