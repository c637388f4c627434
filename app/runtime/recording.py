"""Recording a turn's end while the database is unavailable (in-process runner).

In process nothing else would ever end such a turn before the next restart: the session
would stay `running`, and its SSE clients would wait for a terminal event that never
comes. So the runner's task keeps at it (the session's next turns wait in its queue
meanwhile), and the end is published as soon as the database is back. A Temporal worker
does not loop here: Temporal retries its activity.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from app.db import DatabaseUnavailable

log = logging.getLogger("app.runtime.turn")

# Tried again after these delays (doubling, then every MAX seconds) until the database
# takes it.
RETRY_FIRST_DELAY = 0.2
RETRY_MAX_DELAY = 5.0


async def record_until_stored(record: Callable[[], Awaitable[None]], again: Callable[[], Awaitable[None]], *,
                              session_id: str, last_try_seconds: float,
                              on_first_failure: Callable[[], None]) -> None:
    """record(); when the database will not take it, again() (which must be safe to run
    after a record() that failed part way) until it does."""
    try:
        await record()
        return
    except DatabaseUnavailable as exc:
        error = exc
    on_first_failure()
    delay = RETRY_FIRST_DELAY
    while True:
        log.warning("session %s: cannot record the end of the turn yet (%s); trying again in %.1f s",
                    session_id, error.reason, delay)
        try:
            await asyncio.sleep(delay)
        except asyncio.CancelledError:
            # A cancel, a delete or shutdown: one last try, so that a database that is back
            # by now still gets the turn's end; else the restart check does it. Bounded, as
            # the canceller waits for this task only so long.
            try:
                async with asyncio.timeout(last_try_seconds):
                    await again()
            except Exception:
                log.warning("session %s: the end of the turn is not recorded; the session stays running "
                            "until the next restart marks it failed", session_id)
            raise
        try:
            await again()
            log.info("session %s: the end of the turn is recorded, the database is back", session_id)
            return
        except DatabaseUnavailable as exc:
            error = exc
        delay = min(delay * 2, RETRY_MAX_DELAY)
