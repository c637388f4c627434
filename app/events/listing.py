"""A list of a session's events as one JSON document, written while it is read.

`GET /sessions/{id}/events` has no cap (docs/api.md §23): built whole, its answer cost
several times the log's size (every event decoded, shaped with its data in it twice,
then encoded in one piece), and a few concurrent ones of a long log took the server to
gigabytes. Here the document is written in the log's byte-bounded batches, the ones
replays use (EventLog.batches), so a request holds about one batch however long the
log; a client that stops reading holds it only until SEND_TIMEOUT_SECONDS cuts it off
(app/hypercorn_fixes.py). A short answer of small events is still sent in one piece
(PAGE). The bytes are those of `dumpb({key: [...]})` and the JSON
provider's newline (app/api/responses.py): each batch is one orjson call over its
items, whose output within a list is the same as within the whole list.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Collection
from typing import Any

from app.events.log import EventLog, LoggedEvent
from app.events.sse import BATCH_BYTES, REPLAY_BATCH
from app.json_encoding import dumpb
from app.models import raw_sql

WRITE_BYTES = 256 * 1024  # the most written at once (a batch of large events is MBs of JSON)
# A first read of up to PAGE events of up to BATCH_BYTES / PAGE each (10 KB: most hook
# events) answers most requests in one piece, for what the page query cost before;
# sizing every batch exactly (EventLog.read_batch) cost a page of 100 a fifth more CPU.
PAGE = 100


async def event_document(key: str, session_id: str, after: int, limit: int | None,
                         shape: Callable[[LoggedEvent], Any], keep: Callable[[LoggedEvent], bool] | None = None,
                         types: Collection[str] | None = None) -> bytes | AsyncIterator[bytes]:
    """`{key: [shape(e), ...]}` and a newline, for the session's events after `after`
    (of `types`, and those `keep` keeps), `limit` of them when there are that many.

    The bytes when a page of small events holds the whole answer: sent in one piece, as
    any small answer. Otherwise a stream of them; either way the log has been read once
    here, so that what must be a status (the database down) is one before the first byte.
    Without a limit, the stream ends at the last event stored when it began: a client
    reading slowly while the session runs gets what there was, not a feed that may never
    end."""
    head = b"{" + dumpb(key) + b":["
    asked = PAGE + 1 if limit is None else min(limit, PAGE)  # one more: a list of PAGE is whole
    page = await EventLog.read_small(session_id, after, asked, BATCH_BYTES // PAGE, types)
    if page is not None:
        kept = _kept(page, keep, None, limit)
        if len(page) < asked or len(kept) == limit:  # all there is, or all that was asked for
            return b"".join((head, _items(kept, shape), b"]}\n"))
    last = None if limit is not None else await raw_sql.event_total(session_id)
    rest = EventLog.batches(session_id, page[-1].sequence if page else after, min(limit or REPLAY_BATCH, REPLAY_BATCH),
                            BATCH_BYTES, types)
    return _written(head, _then(page, rest), last, limit, shape, keep)


def _kept(batch: list[LoggedEvent], keep: Callable[[LoggedEvent], bool] | None, last: int | None,
          room: int | None) -> list[LoggedEvent]:
    """The events of a batch that go in the list: up to `last`, those `keep` keeps, `room` of them."""
    if last is not None and batch and batch[-1].sequence > last:
        batch = [e for e in batch if e.sequence <= last]
    kept = batch if keep is None else [e for e in batch if keep(e)]
    return kept if room is None else kept[:room]


def _items(kept: list[LoggedEvent], shape: Callable[[LoggedEvent], Any]) -> memoryview:
    """The events shaped and encoded as the items of a JSON list, without its brackets
    (not copied for that): one orjson call, whose output within a list is the same as
    within the whole list."""
    return memoryview(dumpb([shape(e) for e in kept]))[1:-1]


async def _then(first: list[LoggedEvent] | None,
                rest: AsyncGenerator[list[LoggedEvent], None]) -> AsyncGenerator[list[LoggedEvent], None]:
    async with contextlib.aclosing(rest):
        if first:
            yield first
        async for batch in rest:
            yield batch


async def _written(head: bytes, batches: AsyncGenerator[list[LoggedEvent], None], last: int | None, limit: int | None,
                   shape: Callable[[LoggedEvent], Any], keep: Callable[[LoggedEvent], bool] | None) -> AsyncIterator[bytes]:
    opening, count = head, 0
    async with contextlib.aclosing(batches):  # left early (a limit reached, a client gone): its read ends too
        async for batch in batches:
            kept = _kept(batch, keep, last, None if limit is None else limit - count)
            if kept:
                # Written in pieces, after a comma when items came before: each write is
                # copied on its way out (Hypercorn, h11's chunk framing, the transport's
                # buffer), and a batch of large events is MBs of JSON.
                encoded = _items(kept, shape)
                yield opening + encoded[:WRITE_BYTES]
                for start in range(WRITE_BYTES, len(encoded), WRITE_BYTES):
                    yield bytes(encoded[start:start + WRITE_BYTES])
                opening, count = b",", count + len(kept)
            if count == limit or (last is not None and batch[-1].sequence >= last):
                break
    yield (b"" if count else opening) + b"]}\n"
