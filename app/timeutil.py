"""Time as the server stores and compares it."""

from __future__ import annotations

import datetime as dt


def utcnow() -> dt.datetime:
    """Now, in UTC and timezone-aware (as every stored timestamp is)."""
    return dt.datetime.now(dt.UTC)


def rfc3339(moment: dt.datetime) -> str:
    """A UTC timestamp as the API writes it (docs/api.md §1): `2026-11-24T00:59:36.120426Z`,
    for timestamps put into event data as text (the JSON encoder writes datetimes so)."""
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
