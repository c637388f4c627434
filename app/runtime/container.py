"""The runtime's long-lived parts, built once per app and shared by the routes:
event bus and log, provider clients, and the turn runner."""

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
from app.runtime.runner import TurnRunner, fail_interrupted_sessions
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
    runner: TurnRunner
    hub: WebSocketHub
    metrics: Metrics

    @classmethod
    def build(cls, settings: Settings, box: SecretBox) -> Runtime:
        bus = EventBus(settings.subscriber_queue_size)
        events = EventLog(bus)
        clients = ProviderClients(settings, box)
        feed = LiveFeed()
        hub = WebSocketHub(bus, feed, settings.subscriber_queue_size)
        metrics = Metrics()
        models = ModelResolver()
        runner = TurnRunner(TurnDeps(settings, events, clients, metrics, models))
        metrics.watch(active_turns=lambda: runner.active_sessions,
                      sse=lambda: bus.subscriber_count() - bus.subscriber_count(ALL_SESSIONS),
                      ws=lambda: len(hub.connections))
        return cls(settings, box, bus, events, clients, models, runner, hub, metrics)

    async def start(self) -> None:
        self.hub.start()
        await fail_interrupted_sessions(self.runner.deps)
        await fail_interrupted_runs()
        await self._providers_from_environment()

    async def stop(self) -> None:
        await stop_runs(self)  # before the runner: a run's steps are turns
        await self.runner.shutdown()
        await self.hub.stop()
        await self.clients.close()

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


def current_runtime() -> Runtime:
    return current_app.extensions["runtime"]
