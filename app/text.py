"""Text both databases can store: no NUL (PostgreSQL's text and jsonb refuse it) and no
lone surrogate (not a character; it cannot be encoded as UTF-8). Clients that send such
text get a 400 (app/api/json_body.py) or a 404 for a key (app/services/common.py); text
from a model has it replaced (app/runtime/providers/base.py)."""

from __future__ import annotations

import re

_SURROGATE = re.compile("[\ud800-\udfff]")


def is_storable_text(text: str) -> bool:
    if text.isascii():  # the common case, without encoding a copy
        return "\x00" not in text
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def storable_text(text: str) -> str:
    """`text` with NUL and lone surrogates replaced by U+FFFD."""
    if is_storable_text(text):
        return text
    return _SURROGATE.sub("\ufffd", text.replace("\x00", "\ufffd"))
