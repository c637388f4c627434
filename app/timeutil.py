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


def given_as_utc(value: dt.datetime | None) -> dt.datetime | None:
    """A timestamp a client sent, in UTC: one without an offset is taken as UTC (what
    clients mean, not server-local time, and a naive one cannot be compared with the
    clock). ValueError "out of range" when it cannot be moved to UTC (0001-01-01T00:00:00+01:00):
    for a pydantic validator, a 400 rather than a 500 further on."""
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    try:
        return value.astimezone(dt.UTC)
    except OverflowError:
        raise ValueError("out of range") from None
