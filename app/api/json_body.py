"""Reading JSON request bodies: the one parser every route's body goes through.

The rules (docs/api.md §1, "Bodies"), each answered with a 400 in the route's error shape
before anything is written:
- the body is UTF-8 (a stray byte would otherwise fail deep inside the framework);
- it nests at most MAX_DEPTH arrays/objects (the standard parser recurses, and a few KB
  of brackets exhausted the stack);
- integers fit in 64 bits signed (what SQLite and PostgreSQL store; pydantic would pass
  20-digit numbers on to the database driver, which overflowed) and numbers are finite
  (`NaN`/`Infinity` are not JSON, 1e400 parses to infinity);
- strings hold neither NUL (U+0000: PostgreSQL's text and jsonb cannot hold it) nor lone
  surrogates (`"\\udba1"` is not a character and cannot be encoded as UTF-8 to be stored).
"""

from __future__ import annotations

import json
import math
import re
from functools import cache
from typing import Any

from quart import Request

from app.errors import InvalidRequest
from app.text import is_storable_text

MAX_DEPTH = 64
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

# NUL and surrogates can only come from \u escapes (raw UTF-8 holds neither, and a raw
# control character is a parse error); only when one appears are the strings walked.
_SUSPECT_ESCAPE = re.compile(r"\\u(?:0000|[dD][89a-fA-F])")


class JsonBodyError(InvalidRequest, ValueError):
    """The body cannot be accepted; the message says why, for the client (a 400)."""


def parse_json_body(raw: bytes | str) -> Any:
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise JsonBodyError(f"Request body is not valid UTF-8 (byte {exc.start})") from None
    try:
        value = json.loads(raw, parse_int=_int64, parse_float=_finite, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise JsonBodyError(f"Request body is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    except RecursionError:  # the parser recurses once per level: ~1000 levels exhaust it
        raise JsonBodyError(f"Request body nests deeper than {MAX_DEPTH} levels") from None
    check_storable(value, strings=bool(_SUSPECT_ESCAPE.search(raw)))
    return value


def _int64(literal: str) -> int:
    value = int(literal)
    if not INT64_MIN <= value <= INT64_MAX:
        raise JsonBodyError(f"Request body holds the integer {literal[:40]}, outside the 64-bit range")
    return value


def _finite(literal: str) -> float:
    value = float(literal)
    if math.isinf(value):
        raise JsonBodyError(f"Request body holds the number {literal[:40]}, too large to store")
    return value


def _no_constant(name: str) -> Any:
    raise JsonBodyError(f"Request body holds {name}, which is not JSON")


def check_storable(value: Any, strings: bool = True) -> None:
    """Refuse nesting deeper than MAX_DEPTH and, with `strings`, NUL and lone surrogates
    in every string, keys too. Iterative, so depth cannot exhaust the stack here."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth >= MAX_DEPTH:
                raise JsonBodyError(f"Request body nests deeper than {MAX_DEPTH} levels")
            if isinstance(item, dict):
                if strings:
                    for key in item:
                        _check_text(key)
                item = item.values()
            stack.extend((child, depth + 1) for child in item if strings or isinstance(child, dict | list))
        elif strings and isinstance(item, str):
            _check_text(item)


def _check_text(text: str) -> None:
    if not is_storable_text(text):
        what = "NUL (\\u0000)" if "\x00" in text else "a lone surrogate (\\ud800-\\udfff), not a character,"
        raise JsonBodyError(f"Request body holds {what} in the text {_excerpt(text)}; it cannot be stored")


def _excerpt(text: str) -> str:
    return json.dumps(text[:40] + ("..." if len(text) > 40 else ""))


@cache
def _blueprint_chain(endpoint: str) -> tuple[str, ...]:
    """"a.b.view" -> ("a.b", "a"): the blueprints an endpoint belongs to, innermost first."""
    parts = endpoint.split(".")[:-1]
    return tuple(".".join(parts[:n]) for n in range(len(parts), 0, -1))


class JsonRequest(Request):
    """Quart's request with get_json on parse_json_body. Quart decodes the body before
    its own try block, so a non-UTF-8 body escaped as a UnicodeDecodeError (a 500)."""

    @property
    def blueprints(self) -> list[str]:
        """Quart's answer, looked up once per endpoint: Quart works it out anew each time
        its hook machinery asks (twice or more a request, with an import statement each
        time), about 5% of a `GET /health` (py-spy, issue 13)."""
        rule = self.url_rule
        return list(_blueprint_chain(rule.endpoint)) if rule is not None else []

    async def get_json(self, force: bool = False, silent: bool = False, cache: bool = True) -> Any:
        if cache and self._cached_json[silent] is not Ellipsis:
            return self._cached_json[silent]
        if not (force or self.is_json):
            return None
        try:
            # A body that has all arrived (every small POST) is read without Quart's
            # BODY_TIMEOUT timer, a task and a timer handle (asyncio.wait_for) per request;
            # one still arriving is waited for with it.
            complete = cache and self.body._complete.is_set()
            result = parse_json_body(await self.body if complete else await self.get_data(cache=cache))
        except JsonBodyError:
            if not silent:
                raise
            result = None
        if cache:
            self._cached_json[silent] = result
        return result
