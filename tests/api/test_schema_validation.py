"""Request validation with one pydantic TypeAdapter per model (app/api/schema_validation.py)."""

from __future__ import annotations

import inspect

import quart_schema.mixins
import quart_schema.validation
from quart_schema import conversion

from app.api import schema_validation


def test_it_replaces_the_library_function_it_was_written_for():
    # If quart-schema renames or reshapes model_load, this replacement must be revisited.
    def shape(function):
        return [(p.name, p.kind, p.default) for p in inspect.signature(function).parameters.values()]

    assert shape(conversion.model_load) == shape(schema_validation.model_load)
    assert "TypeAdapter(model_class).validate_python(data)" in inspect.getsource(conversion.model_load)


async def test_requests_validate_as_before_with_one_adapter_per_model(client):
    assert quart_schema.validation.model_load is quart_schema.mixins.model_load is schema_validation.model_load
    schema_validation._adapter.cache_clear()
    assert (await client.get("/v1/sessions?limit=2")).status_code == 200
    built = schema_validation._adapter.cache_info().misses
    for _ in range(3):
        assert (await client.get("/v1/sessions?limit=2")).status_code == 200
    assert built and schema_validation._adapter.cache_info().misses == built  # built once, then reused
    response = await client.get("/v1/sessions?limit=abc")
    assert response.status_code == 400
    assert "limit" in (await response.get_json())["error"]["message"]
    response = await client.post("/sessions/s1/events", json={"event_type": "nope", "session_id": "s1"})
    assert response.status_code == 400
    assert "event_type" in (await response.get_json())["detail"]
