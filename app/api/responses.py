"""How handlers' return values become JSON responses: encoded once, by orjson or pydantic.

quart-schema converts every returned dict or list through a new pydantic TypeAdapter and
every model through `model_dump()`, then Quart encodes the result with `json.dumps`:
three passes over the data, about a sixth of a `GET /sessions/{id}`. Here a model is
encoded straight to JSON bytes by pydantic's own serializer (the same bytes its JSON mode
gives), and a dict or list, which the handlers build JSON-ready, straight by orjson.
quart-schema's `validate_response` still checks what handlers return against the
documented model before this runs; only the re-conversion afterwards is skipped.
"""

from __future__ import annotations

from typing import Any

import orjson
from flask.json.provider import DefaultJSONProvider
from pydantic import BaseModel
from pydantic_core import to_json
from quart import Quart

from app.json_encoding import dumpb, dumps

MIMETYPE = "application/json"


class JsonProvider(DefaultJSONProvider):
    """`app.json`: Quart's `jsonify` and dict responses, encoded by orjson."""

    _app: Quart  # Flask's provider types it as Flask's app, whose response class takes no body

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        return dumps(obj)

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        return orjson.loads(s)

    def response(self, *args: Any, **kwargs: Any):
        return self._app.response_class(dumpb(self._prepare_response_obj(args, kwargs)) + b"\n", mimetype=MIMETYPE)


def install_json_responses(app: Quart, plain_make_response) -> None:
    """Call after QuartSchema(app). `plain_make_response`: Quart's own, saved before
    quart-schema wrapped it; anything but a model, dict or list still takes
    quart-schema's path (dataclasses, for instance)."""
    app.json = JsonProvider(app)
    schema_make_response = app.make_response

    async def make_response(result):
        value, rest = (result[0], result[1:]) if isinstance(result, tuple) else (result, None)
        if isinstance(value, BaseModel):
            value = app.response_class(to_json(value) + b"\n", mimetype=MIMETYPE)
            return await plain_make_response(value if rest is None else (value, *rest))
        if isinstance(value, (dict, list)):
            return await plain_make_response(result)
        return await schema_make_response(result)

    app.make_response = make_response  # type: ignore[method-assign]  # on this app only, as quart-schema does
