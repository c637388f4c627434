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
