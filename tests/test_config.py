"""Settings come from the environment, with defaults, and bad values are refused clearly."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.config import ConfigError, Settings


def test_defaults():
    settings = Settings.from_env({})
    assert settings.bind == "0.0.0.0:9000" and settings.data_dir == Path("data")
    assert settings.effective_database_url == "sqlite://data/runtime.sqlite3"
    assert settings.cors_origins == [] and settings.max_body_bytes == 1024 * 1024
    assert settings.log_level == "INFO" and settings.secrets_key is None
    assert settings.event_loop == "uvloop"


def test_values_from_env():
    settings = Settings.from_env({
        "DATABASE_URL": "postgres://u@h:5432/db", "BIND": "127.0.0.1:1", "CORS_ORIGINS": "http://a, http://b",
        "SECRETS_KEY": "k", "LOG_LEVEL": "debug", "MAX_BODY_BYTES": "2048", "DATA_DIR": "/tmp/x",
        "EVENT_LOOP": "AsyncIO",
    })
    assert settings.effective_database_url == "postgres://u@h:5432/db" and settings.bind == "127.0.0.1:1"
    assert settings.cors_origins == ["http://a", "http://b"] and settings.log_level == "DEBUG"
    assert settings.max_body_bytes == 2048 and settings.secrets_key == "k"
    assert settings.event_loop == "asyncio"


@pytest.mark.parametrize("env", [{"MAX_BODY_BYTES": "lots"}, {"MAX_BODY_BYTES": "10"}, {"LOG_LEVEL": "loud"},
                                 {"EVENT_LOOP": "trio"}])
def test_bad_values_are_refused(env):
    with pytest.raises(ConfigError):
        Settings.from_env(env)


TEMPORAL = {"RUNNER_MODE": "temporal", "DATABASE_URL": "postgres://u@h:5432/db", "REDIS_URL": "redis://h:6379/0"}


def test_temporal_mode_settings():
    settings = Settings.from_env({**TEMPORAL, "TEMPORAL_ADDRESS": "t:7233", "TEMPORAL_NAMESPACE": "agents",
                                  "TEMPORAL_TASK_QUEUE": "q", "WORKERS": "3", "WORKER_METRICS_BIND": "0.0.0.0:9100"})
    assert settings.worker_metrics_bind == "0.0.0.0:9100"
    assert settings.temporal and settings.runner_mode == "temporal" and settings.workers == 3
    assert (settings.temporal_address, settings.temporal_namespace, settings.temporal_task_queue) == ("t:7233", "agents", "q")
    defaults = Settings.from_env({})
    assert not defaults.temporal and defaults.workers == 1 and defaults.temporal_address == "127.0.0.1:7233"
    assert Settings.from_env({"RUNNER_MODE": "InProcess"}).runner_mode == "inprocess"


@pytest.mark.parametrize("env, says", [
    ({**TEMPORAL, "DATABASE_URL": ""}, "needs PostgreSQL"),  # SQLite cannot be shared by processes
    ({**TEMPORAL, "DATABASE_URL": "sqlite:///tmp/x.db"}, "needs PostgreSQL"),
    ({**TEMPORAL, "REDIS_URL": ""}, "needs REDIS_URL"),
    ({"WORKERS": "2"}, "WORKERS > 1 needs RUNNER_MODE=temporal"),
    ({"RUNNER_MODE": "celery"}, "RUNNER_MODE must be"),
    ({**TEMPORAL, "WORKERS": "0"}, "WORKERS must be >= 1"),
    ({**TEMPORAL, "WORKER_METRICS_BIND": "9100"}, "WORKER_METRICS_BIND must be host:port"),
])
def test_temporal_mode_refuses_what_cannot_work(env, says):
    with pytest.raises(ConfigError, match=says):
        Settings.from_env(env)
