"""One JSON encoder for responses, SSE frames, /ws messages and stored JSON: orjson.

orjson encodes in one C pass what `json.dumps` plus pydantic's fallback did in Python
(a `GET /v1/sessions/{id}` spent about a tenth of its time encoding). Output is what
clients read before, value for value: datetimes as ISO 8601 with `Z` for UTC (pydantic's
form, which the API documents), UUIDs as strings, pydantic models as their JSON
dump. Two differences in bytes only: non-ASCII text is sent as UTF-8 rather than
`\\u` escapes, and object keys keep their order instead of being sorted.
"""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import BaseModel
from pydantic_core import to_jsonable_python

OPTIONS = orjson.OPT_UTC_Z | orjson.OPT_NON_STR_KEYS


def encode_other(value: Any) -> Any:
    """What orjson does not know: pydantic models and the types pydantic knows (Decimal,
    sets, ...); anything else as its str(), as `json.dumps(default=str)` did."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    try:
        return to_jsonable_python(value)
    except Exception:  # noqa: BLE001  (pydantic raises its own error type for unknown types)
        return str(value)


def dumpb(value: Any) -> bytes:
    return orjson.dumps(value, default=encode_other, option=OPTIONS)


def dumps(value: Any) -> str:
    return dumpb(value).decode()
