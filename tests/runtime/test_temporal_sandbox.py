"""The worker's workflow sandbox (app/runtime/temporal/worker.py `workflow_runner`).

A library object can be garbage-collected on a workflow thread while a workflow task runs.
redis-py's connection pool imports `redis.observability.recorder` in its `__del__`. In the
sandbox, that import loaded the whole `redis` package again, with hiredis, cryptography and
opentelemetry. It cost time and memory in that workflow task, and it raised a warning.
"""

from __future__ import annotations

import uuid
import warnings

from temporalio.client import Client
from temporalio.worker import Worker

from app.runtime.temporal.worker import workflow_runner
from tests.runtime.sandbox_held import HELD
from tests.runtime.sandbox_workflow import DropHeldObjects


async def test_a_redis_pool_finalized_during_a_workflow_task_imports_nothing(temporal_server, redis_url):
    import redis.asyncio as redis

    pool = redis.ConnectionPool.from_url(redis_url)
    await pool.release(await pool.get_connection())
    await pool.disconnect()
    assert pool._available_connections  # what makes its __del__ import the recorder
    HELD.append(pool)
    del pool

    client = await Client.connect(temporal_server.address)
    queue = f"test-{uuid.uuid4().hex[:16]}"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        async with Worker(client, task_queue=queue, workflows=[DropHeldObjects], workflow_runner=workflow_runner()):
            dropped = await client.execute_workflow(DropHeldObjects.run, id=f"drop-{uuid.uuid4()}", task_queue=queue)
    assert dropped == 1
    assert [str(w.message) for w in caught if "workflow load" in str(w.message)] == []
