"""The Temporal worker that runs session and pipeline-run workflows and their
activities, as `python -m app worker` starts it (app/wiring.py `run_worker`).
"""

from __future__ import annotations

import os
import socket
from datetime import timedelta

from temporalio.client import Client
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from app.config import Settings
from app.runtime.providers import import_sdks
from app.runtime.temporal.activities import DatabaseFailures, TurnActivities
from app.runtime.temporal.ends import FallbackEnds
from app.runtime.temporal.pipeline_activities import FindAgent, PipelineActivities
from app.runtime.temporal.pipelines import PipelineRunWorkflow
from app.runtime.temporal.workflows import SessionWorkflow
from app.runtime.turn import TurnDeps

# A cancel reaches a running activity with its next heartbeat: send them at least this
# often (Temporal's default would wait up to 80 % of the heartbeat timeout).
HEARTBEAT_THROTTLE = timedelta(milliseconds=300)
# On SIGTERM, running activities get this long to finish; the rest are retried on
# another worker (a rolling restart loses no turn, only repeats a model call).
GRACEFUL_SHUTDOWN = timedelta(seconds=10)
# A workflow's next task waits this long for the worker that ran its last one (which
# holds it in cache) before any worker may take it: short, so a dead worker costs little.
STICKY_TIMEOUT = timedelta(seconds=2)


# Libraries the activities use and workflows never do. Their objects live outside the
# sandbox, and the garbage collector may finalize one on a workflow thread during a workflow
# task. redis-py's connection pool imports a module in `__del__`: without passthrough, the
# sandbox then loaded the whole `redis` package again inside that task and warned (issue 10,
# tests/runtime/test_temporal_sandbox.py). Passed through, they come from the worker's own imports.
HOST_LIBRARIES = ("redis", "asyncpg", "httpx", "openai", "anthropic")


def workflow_runner() -> SandboxedWorkflowRunner:
    """Temporal's sandbox, with its default restrictions and HOST_LIBRARIES passed through."""
    return SandboxedWorkflowRunner(restrictions=SandboxRestrictions.default.with_passthrough_modules(*HOST_LIBRARIES))


def build_worker(client: Client, settings: Settings, deps: TurnDeps, find_agent: FindAgent) -> Worker:
    """The worker for session and pipeline-run workflows; `find_agent` looks an active
    agent up by id or name (the storage's rule, given by app/wiring.py)."""
    # The SDKs are loaded before any workflow runs: an import on an activity's thread
    # while the workflow sandbox validates or runs a workflow (it swaps the import
    # machinery on its own threads) failed inside temporalio's sandbox importer.
    import_sdks()
    return Worker(
        client, task_queue=settings.temporal_task_queue, identity=f"{os.getpid()}@{socket.gethostname()}",
        workflows=[SessionWorkflow, PipelineRunWorkflow], workflow_runner=workflow_runner(),
        activities=[*TurnActivities(deps).all(), *PipelineActivities(deps.events, find_agent).all(),
                    *FallbackEnds(deps.events, deps.metrics).all()],
        interceptors=[DatabaseFailures()],
        max_heartbeat_throttle_interval=HEARTBEAT_THROTTLE, default_heartbeat_throttle_interval=HEARTBEAT_THROTTLE,
        sticky_queue_schedule_to_start_timeout=STICKY_TIMEOUT, graceful_shutdown_timeout=GRACEFUL_SHUTDOWN)
