"""`python -m app worker`: a Temporal worker process that runs session workflows and
their activities. Start any number, on any machine, with the same settings as the API
processes (DATABASE_URL, REDIS_URL, TEMPORAL_*, and SECRETS_KEY or a shared DATA_DIR so
provider keys can be decrypted).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from datetime import timedelta

from temporalio.client import Client
from temporalio.worker import Worker

from app.config import Settings
from app.db import close_db, open_db
from app.metrics import Metrics
from app.runtime.container import MODELS_CHANGED, build_bus, build_event_log
from app.runtime.providers import ProviderClients
from app.runtime.resolution import ModelResolver
from app.runtime.temporal.activities import TurnActivities
from app.runtime.temporal.pipeline_activities import PipelineActivities
from app.runtime.temporal.pipelines import PipelineRunWorkflow
from app.runtime.temporal.workflows import SessionWorkflow
from app.runtime.turn import TurnDeps
from app.secrets import SecretBox

log = logging.getLogger("app.worker")

# A cancel reaches a running activity with its next heartbeat: send them at least this
# often (Temporal's default would wait up to 80 % of the heartbeat timeout).
HEARTBEAT_THROTTLE = timedelta(milliseconds=300)
# On SIGTERM, running activities get this long to finish; the rest are retried on
# another worker (a rolling restart loses no turn, only repeats a model call).
GRACEFUL_SHUTDOWN = timedelta(seconds=10)
# A workflow's next task waits this long for the worker that ran its last one (which
# holds it in cache) before any worker may take it: short, so a dead worker costs little.
STICKY_TIMEOUT = timedelta(seconds=2)


def build_worker(client: Client, settings: Settings, deps: TurnDeps) -> Worker:
    return Worker(
        client, task_queue=settings.temporal_task_queue, workflows=[SessionWorkflow, PipelineRunWorkflow],
        activities=[*TurnActivities(deps).all(), *PipelineActivities(deps.events).all()], identity=f"{os.getpid()}@{socket.gethostname()}",
        max_heartbeat_throttle_interval=HEARTBEAT_THROTTLE, default_heartbeat_throttle_interval=HEARTBEAT_THROTTLE,
        sticky_queue_schedule_to_start_timeout=STICKY_TIMEOUT, graceful_shutdown_timeout=GRACEFUL_SHUTDOWN)


async def run_worker(settings: Settings, stop: asyncio.Event) -> None:
    box = SecretBox.from_settings(settings.secrets_key, settings.data_dir)
    await open_db(settings)
    bus = build_bus(settings)
    await bus.start()
    models = ModelResolver()
    bus.on_control(MODELS_CHANGED, lambda _: models.forget())
    clients = ProviderClients(settings, box)
    deps = TurnDeps(settings, build_event_log(settings, bus), clients, Metrics(), models)
    try:
        client = await Client.connect(settings.temporal_address, namespace=settings.temporal_namespace)
        async with build_worker(client, settings, deps) as worker:
            log.info("worker %s polling task queue %r at %s", worker.config()["identity"],
                     settings.temporal_task_queue, settings.temporal_address)
            await stop.wait()
            log.info("worker stopping")
    finally:
        await clients.close()
        await bus.stop()
        await close_db()
