"""The one owner of a process's background tasks: the ones nothing awaits to the end
(a pipeline run outlives the request that started it; an old provider client is closed
a while after it was replaced).

asyncio keeps only a weak reference to a task, so one nobody holds may be collected
before it ends; a failure nobody awaits is reported only as "exception was never
retrieved" when it is. Here each task is held until it ends, a failure is logged, and
`stop` cancels what still runs and waits for it (`Runtime.stop`, at shutdown).

Tasks that belong to one piece of work and are awaited by it (a turn's writes, a
step's tools) stay with that piece of work.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Hashable
from typing import Any, TypeVar

log = logging.getLogger("app.tasks")

T = TypeVar("T")

STOP_WAIT_SECONDS = 5.0


class BackgroundTasks:
    def __init__(self) -> None:
        self._tasks: dict[asyncio.Task, Hashable | None] = {}  # task -> its group

    def start(self, coro: Coroutine[Any, Any, T], *, name: str, group: Hashable | None = None) -> asyncio.Task[T]:
        """Run `coro` in a task held until it ends; `group` lets `stop` end some together."""
        task = asyncio.create_task(coro, name=name)
        self._tasks[task] = group
        task.add_done_callback(self._ended)
        return task

    def running(self, group: Hashable | None = None) -> list[asyncio.Task]:
        """The tasks still running (of one group, if given)."""
        return [t for t, g in self._tasks.items() if not t.done() and (group is None or g == group)]

    async def stop(self, group: Hashable | None = None, reason: str = "server shutting down",
                   timeout: float = STOP_WAIT_SECONDS) -> None:
        """Cancel the running tasks (of one group, if given) with `reason` as the
        cancellation's message, and wait up to `timeout` for them to wind down."""
        tasks = self.running(group)
        for task in tasks:
            task.cancel(reason)
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=timeout)
            for task in late:
                log.warning("background task %s did not stop within %g s", task.get_name(), timeout)

    def _ended(self, task: asyncio.Task) -> None:
        self._tasks.pop(task, None)
        if not task.cancelled() and task.exception() is not None:
            log.error("background task %s failed", task.get_name(), exc_info=task.exception())
