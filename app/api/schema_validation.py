"""quart-schema's validation, without a new pydantic TypeAdapter for every request.

quart-schema 0.23's `model_load` (what `validate_request` and `validate_querystring` call
for every request) builds `TypeAdapter(model_class)` each time and validates with it.
Building the adapter costs 6-7 µs for our small models, about as much as the validation
itself: a twentieth of a `POST /sessions/{id}/events` in the app (issue 13). An adapter
depends only on its class, so here each class gets one, kept. Everything else (the
errors, what is validated, camelCase, msgspec) is quart-schema's own code;
tests/api/test_schema_validation.py fails if a later quart-schema no longer has the
function this replaces.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import quart_schema.mixins
import quart_schema.validation
from pydantic import TypeAdapter, ValidationError
from quart_schema import conversion

_library_model_load = conversion.model_load


@cache
def _adapter(model_class: Any) -> TypeAdapter:
    return TypeAdapter(model_class)


def model_load(data: Any, model_class: Any, exception_class: type[Exception], *, decamelize: bool = False,
               preference: str | None = None) -> Any:
    if decamelize or not conversion._use_pydantic(model_class, preference):
        return _library_model_load(data, model_class, exception_class, decamelize=decamelize, preference=preference)
    try:
        return _adapter(model_class).validate_python(data)
    except (TypeError, ValidationError, ValueError) as error:  # as quart-schema's model_load
        raise exception_class(error) from error


def install() -> None:
    """Where quart-schema's modules imported model_load by name."""
    quart_schema.validation.model_load = model_load
    quart_schema.mixins.model_load = model_load
