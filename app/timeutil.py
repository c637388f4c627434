"""Time as the server stores and compares it."""

from __future__ import annotations

import datetime as dt


def utcnow() -> dt.datetime:
    """Now, in UTC and timezone-aware (as every stored timestamp is)."""
    return dt.datetime.now(dt.UTC)
