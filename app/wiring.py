"""The one place where the parts are put together, for both kinds of process.

- An API process (`serve`): `Runtime`, the long-lived parts shared by the routes (event
  bus and log, provider clients, the turn runner, the /ws hub, metrics). The runner mode
  picks them: in process, an in-memory bus and a runner that runs turns here; in
  temporal mode, the Redis bus and a runner that hands turns to Temporal workers.
- A worker process (`python -m app worker`, temporal mode): `run_worker`.

app/runtime and app/events know nothing of app/services; what they need from it (the
/ws feed's shapes, pipeline runs' start-up and shutdown, how an agent is found) is
handed to them here."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from quart import Quart, current_app

from app.config import Settings, reveal
from app.db import close_db, open_db
from app.events.bus import ALL_SESSIONS, EventBus
from app.events.log import EventLog
from app.events.ws import WebSocketHub
from app.metrics import Metrics
from app.models import LlmModel, LlmProvider
from app.runtime.mcp import McpPool
from app.runtime.providers import ProviderClients, import_sdks_in_background
from app.runtime.resolution import ModelResolver
from app.runtime.runner import Runner, TurnRunner
from app.runtime.toolbox import Toolbox
from app.runtime.turn import TurnDeps
from app.secrets import SecretBox, mask_secret
from app.services.agent_runtime import LiveFeed
from app.services.pipeline_runs import fail_interrupted_runs
from app.tasks import BackgroundTasks

if TYPE_CHECKING:
    from app.runtime.temporal.runner import TemporalRunner

log = logging.getLogger("app.runtime")


@dataclass
class Runtime:
    settings: Settings
    box: SecretBox
    bus: EventBus
    events: EventLog
    clients: ProviderClients
    models: ModelResolver
    runner: Runner
    hub: WebSocketHub
    metrics: Metrics
    mcp: McpPool  # this process's MCP sessions (app/runtime/mcp/)
    tasks: BackgroundTasks  # the tasks nothing else awaits (pipeline runs, closing old clients)

    @classmethod
    def build(cls, settings: Settings, box: SecretBox) -> Runtime:
        bus = build_bus(settings)
        events = build_event_log(settings, bus)
        tasks = BackgroundTasks()
        clients = ProviderClients(settings, box, tasks)
        mcp = McpPool(settings, box)
        feed = LiveFeed()
        hub = WebSocketHub(bus, feed, settings.subscriber_queue_size)
        metrics = Metrics()
        models = ModelResolver()
        bus.on_control(MODELS_CHANGED, lambda _: models.forget())
        runner: Runner
        if settings.temporal:
            from app.runtime.temporal.runner import TemporalRunner  # only this mode needs temporalio

            runner = TemporalRunner(settings, bus)
        else:
            runner = TurnRunner(TurnDeps(settings, events, clients, metrics, models, Toolbox(mcp)))
        metrics.watch(active_turns=lambda: runner.active_sessions,
                      sse=lambda: bus.subscriber_count() - bus.subscriber_count(ALL_SESSIONS),
                      ws=lambda: len(hub.connections))
        return cls(settings, box, bus, events, clients, models, runner, hub, metrics,
                   mcp, tasks)

    async def start(self) -> None:
        await self.bus.start()
        self.hub.start()
        await self.runner.start()
        if not self.settings.temporal:  # in temporal mode other processes' runs are not ours to fail
            await fail_interrupted_runs()
        await self._providers_from_environment()
        if not self.settings.temporal:  # there, turns (and their SDK calls) run on the workers
            import_sdks_in_background()

    @property
    def temporal_runner(self) -> TemporalRunner:
        """The runner in temporal mode, which also runs pipeline runs and has a Temporal client."""
        from app.runtime.temporal.runner import TemporalRunner

        assert isinstance(self.runner, TemporalRunner), "not in temporal mode"
        return self.runner

    def end_streams(self) -> None:
        """Shutdown has begun: end SSE streams and /ws feeds now, so the server stops
        without waiting out Hypercorn's graceful timeout for clients that never hang up."""
        self.bus.end_all_streams()
        self.hub.close_all()

    async def begin_stop(self) -> None:
        """Shutdown has begun (one-process `serve`): stop the pipeline runs and turns this
        process runs now, while their callers' requests may still be answered (an AgentSpec
        invoke: 409 `cancelled`; a /stream: its `error` frame), rather than once the
        server's graceful timeout has cut those requests off. Then end the streams."""
        await self.tasks.stop()
        await self.runner.shutdown()
        self.end_streams()

    async def stop(self) -> None:
        await self.tasks.stop()  # before the runner: pipeline runs' steps are turns
        await self.runner.shutdown()
        await self.hub.stop()
        await self.mcp.close()  # after the runner: no turn calls a tool any more
        await self.clients.close()
        await self.bus.stop()

    def models_changed(self) -> None:
        """Providers or models were written: every process's model cache forgets."""
        self.bus.publish_control(MODELS_CHANGED)

    async def _providers_from_environment(self) -> None:
        """OPENAI_API_KEY / ANTHROPIC_API_KEY give a working default on first start."""
        if await LlmProvider.exists():
            return
        s = self.settings
        candidates = [("openai", "OpenAI", reveal(s.openai_api_key), s.openai_base_url, s.openai_model),
                      ("anthropic", "Anthropic", reveal(s.anthropic_api_key), s.anthropic_base_url, s.anthropic_model)]
        first = True
        for kind, name, key, base_url, model_id in candidates:
            if not key:
                continue
            provider = await LlmProvider.create(
                name=name, provider_type=kind, base_url=base_url, is_default=first,
                api_key_encrypted=self.box.encrypt(key), api_key_hint=mask_secret(key))
            await LlmModel.create(provider=provider, model_id=model_id, is_default=True)
            log.info("created %s provider from the environment (model %s)", name, model_id)
            first = False


MODELS_CHANGED = "models_changed"


def build_bus(settings: Settings) -> EventBus:
    if settings.redis_url:
        from app.events.redis_bus import RedisEventBus

        return RedisEventBus(settings.redis_url, settings.subscriber_queue_size)
    return EventBus(settings.subscriber_queue_size)


def build_event_log(settings: Settings, bus: EventBus) -> EventLog:
    return EventLog(bus, on_postgres=not settings.effective_database_url.startswith("sqlite"),
                    single_writer=not settings.temporal)


def current_runtime(app: Quart | None = None) -> Runtime:
    """The one way to the app's state (its settings are `.settings`): of the app serving
    this request, or of `app` (tests, outside a request)."""
    return (app or current_app).extensions["runtime"]


async def run_worker(settings: Settings, stop: asyncio.Event) -> None:
    """A Temporal worker process until `stop` is set. Start any number, on any machine,
    with the API processes' settings (DATABASE_URL, REDIS_URL, TEMPORAL_*, and
    SECRETS_KEY or a shared DATA_DIR, so provider keys can be decrypted)."""
    from temporalio.client import Client

    from app.runtime.temporal.worker import build_worker
    from app.services.agents import get_active_agent

    box = SecretBox.from_settings(reveal(settings.secrets_key), settings.data_dir)
    await open_db(settings)
    bus = build_bus(settings)
    await bus.start()
    models = ModelResolver()
    bus.on_control(MODELS_CHANGED, lambda _: models.forget())
    tasks = BackgroundTasks()
    clients = ProviderClients(settings, box, tasks)
    mcp = McpPool(settings, box)  # this worker's MCP sessions: hand it to the turns' Toolbox
    deps = TurnDeps(settings, build_event_log(settings, bus), clients, Metrics(), models, Toolbox(mcp))
    metrics_server = _serve_metrics(settings.worker_metrics_bind, deps.metrics) if settings.worker_metrics_bind else None
    try:
        client = await Client.connect(settings.temporal_address, namespace=settings.temporal_namespace)
        async with build_worker(client, settings, deps, get_active_agent) as worker:
            log.info("worker %s polling task queue %r at %s", worker.config()["identity"],
                     settings.temporal_task_queue, settings.temporal_address)
            await stop.wait()
            log.info("worker stopping")
    finally:
        if metrics_server is not None:
            metrics_server.shutdown()
        await mcp.close()
        await tasks.stop()
        await clients.close()
        await bus.stop()
        await close_db()


def _serve_metrics(bind: str, metrics: Metrics):
    """The worker's own counters (turns, tokens, tool calls, errors: the API processes
    do not see them) as Prometheus text at http://<bind>/metrics, from a thread."""
    from prometheus_client import start_http_server

    host, _, port = bind.rpartition(":")
    server, _ = start_http_server(int(port), addr=host.strip("[]"), registry=metrics.registry)
    log.info("worker metrics at http://%s/metrics", bind)
    return server
