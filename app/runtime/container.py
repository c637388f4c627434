"""The runtime's long-lived parts, built once per app and shared by the routes:
event bus and log, provider clients, and the turn runner.

The one place where the runner mode picks its parts: in process, an in-memory bus and
a runner that runs turns here; in temporal mode, the Redis bus and a runner that hands
turns to Temporal workers (app/runtime/temporal)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from quart import current_app

from app.config import Settings
from app.events.bus import ALL_SESSIONS, EventBus
from app.events.log import EventLog
from app.events.ws import WebSocketHub
from app.metrics import Metrics
from app.models import LlmModel, LlmProvider
from app.runtime.providers import ProviderClients
from app.runtime.resolution import ModelResolver
from app.runtime.runner import Runner, TurnRunner
from app.runtime.turn import TurnDeps
from app.secrets import SecretBox, mask_secret
from app.services.agent_runtime import LiveFeed
from app.services.pipeline_runs import fail_interrupted_runs, stop_runs

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

    @classmethod
    def build(cls, settings: Settings, box: SecretBox) -> Runtime:
        bus = build_bus(settings)
        events = build_event_log(settings, bus)
        clients = ProviderClients(settings, box)
        feed = LiveFeed()
        hub = WebSocketHub(bus, feed, settings.subscriber_queue_size)
        metrics = Metrics()
        models = ModelResolver()
        bus.on_control(MODELS_CHANGED, lambda _: models.forget())
        if settings.temporal:
            from app.runtime.temporal.runner import TemporalRunner  # only this mode needs temporalio

            runner = TemporalRunner(settings, bus)
        else:
            runner = TurnRunner(TurnDeps(settings, events, clients, metrics, models))
        metrics.watch(active_turns=lambda: runner.active_sessions,
                      sse=lambda: bus.subscriber_count() - bus.subscriber_count(ALL_SESSIONS),
                      ws=lambda: len(hub.connections))
        return cls(settings, box, bus, events, clients, models, runner, hub, metrics)

    async def start(self) -> None:
        await self.bus.start()
        self.hub.start()
        await self.runner.start()
        if not self.settings.temporal:  # in temporal mode other processes' runs are not ours to fail
            await fail_interrupted_runs()
        await self._providers_from_environment()

    async def stop(self) -> None:
        await stop_runs(self)  # before the runner: a run's steps are turns
        await self.runner.shutdown()
        await self.hub.stop()
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
        candidates = [("openai", "OpenAI", s.openai_api_key, s.openai_base_url, s.openai_model),
                      ("anthropic", "Anthropic", s.anthropic_api_key, s.anthropic_base_url, s.anthropic_model)]
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


def current_runtime() -> Runtime:
    return current_app.extensions["runtime"]
