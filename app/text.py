"""Text both databases can store: no NUL (PostgreSQL's text and jsonb refuse it) and no
lone surrogate (not a character; it cannot be encoded as UTF-8). Clients that send such
text get a 400 (app/api/json_body.py) or a 404 for a key (app/services/common.py); text
from a model has it replaced (app/runtime/providers/base.py)."""

from __future__ import annotations

import re
from collections.abc import Iterable

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


# Text blocks become one paragraph each: a blank line keeps them apart (joined bare,
# "Hello" + "world" would read "Helloworld"), and it is how pipeline step inputs are
# joined too. Blank blocks add nothing a reader could see, so they are dropped.
BLOCK_SEPARATOR = "\n\n"


def joined_blocks(texts: Iterable[str]) -> str:
    """A message's text blocks as one text: a /v1 message's (app/api/messages.py) and an
    Agent Runtime `message` event's alike (app/dialects/agent_runtime.py)."""
    return BLOCK_SEPARATOR.join(text for text in texts if text.strip())
