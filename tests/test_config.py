"""Settings come from the environment, with defaults, and bad values are refused clearly."""

from __future__ import annotations

import os
import subprocess
import sys
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
    assert settings.max_body_bytes == 2048 and settings.secrets_key.get_secret_value() == "k"
    assert settings.event_loop == "asyncio"


@pytest.mark.parametrize("env", [{"MAX_BODY_BYTES": "lots"}, {"MAX_BODY_BYTES": "10"}, {"LOG_LEVEL": "loud"},
                                 {"EVENT_LOOP": "trio"}])
def test_bad_values_are_refused(env):
    with pytest.raises(ConfigError):
        Settings.from_env(env)


# Reported by a helper following the README's settings table: each was accepted, then
# every model call, tool call or MCP server failed (0), every waiting turn failed with
# internal_error (an expiry past what a datetime holds), an idle SSE stream sent ~18,000
# keepalives a second, or admin mode started with an admin nobody could sign in as.
@pytest.mark.parametrize("env, says", [
    ({"LLM_TIMEOUT_SECONDS": "0"}, "LLM_TIMEOUT_SECONDS must be a number > 0, got '0'"),
    ({"TOOL_TIMEOUT_SECONDS": "0"}, "TOOL_TIMEOUT_SECONDS must be a number > 0"),
    ({"MCP_CONNECT_TIMEOUT_SECONDS": "0"}, "MCP_CONNECT_TIMEOUT_SECONDS must be a number > 0"),
    ({"SSE_HEARTBEAT_SECONDS": "0"}, "SSE_HEARTBEAT_SECONDS must be a number > 0"),
    ({"APPROVAL_TIMEOUT_SECONDS": "1e12"}, "APPROVAL_TIMEOUT_SECONDS must be at most 315360000"),
    ({"AUTH_MODE": "admin", "AUTH_ADMIN_EMAIL": "not-an-email", "AUTH_ADMIN_PASSWORD": "long enough"},
     "AUTH_ADMIN_EMAIL must be an email address"),
    # First-start providers skipped the API's checks: each was stored, then every turn failed
    # as "cannot reach … Connection error" (a bad URL, a key a header cannot carry).
    ({"OPENAI_BASE_URL": "not a url"}, "OPENAI_BASE_URL must be an http\\(s\\) URL"),
    ({"ANTHROPIC_BASE_URL": "http://h:1/v1?x=1"}, "ANTHROPIC_BASE_URL must be an http\\(s\\) URL without a query"),
    ({"OPENAI_API_KEY": "sk-abc 123"}, "OPENAI_API_KEY must be one: an API key is printable ASCII"),
    ({"OPENAI_MODEL": "  "}, "OPENAI_MODEL"),
    ({"BIND": "127.0.0.1"}, "BIND must be host:port"),  # it listened on Hypercorn's 8000
    ({"DELTA_FLUSH_MS": "5000"}, "DELTA_FLUSH_MS"),  # quietly 1000 (the window's cap)
    # Accepted, then never matched: no CORS headers, and /ws answered 403.
    ({"CORS_ORIGINS": "https://a.example, junk"}, "CORS_ORIGINS must be origins like"),
    ({"CORS_ORIGINS": "https://a.example/app"}, "not 'https://a.example/app'"),
])
def test_settings_that_would_break_what_they_set_are_refused(env, says):
    with pytest.raises(ConfigError, match=says):
        Settings.from_env(env)


def test_settings_that_mean_no_limit_or_need_a_trim():
    assert Settings.from_env({"APPROVAL_TIMEOUT_SECONDS": "inf"}).approval_timeout_seconds is None  # as 0: none
    assert Settings.from_env({"APPROVAL_TIMEOUT_SECONDS": "600"}).approval_timeout_seconds == 600
    assert Settings.from_env({"LLM_TIMEOUT_SECONDS": "inf"}).llm_timeout_seconds == float("inf")
    settings = Settings.from_env({"AUTH_MODE": "admin", "AUTH_ADMIN_EMAIL": " Admin@Example.com ",
                                  "AUTH_ADMIN_PASSWORD": "long enough"})
    assert settings.auth_admin_email == "Admin@Example.com"
    settings = Settings.from_env({"OPENAI_API_KEY": " sk-abc-123\n", "OPENAI_BASE_URL": "http://127.0.0.1:1/v1/",
                                  "ANTHROPIC_API_KEY": "   "})
    assert settings.openai_api_key.get_secret_value() == "sk-abc-123" and settings.openai_base_url == "http://127.0.0.1:1/v1"
    assert settings.anthropic_api_key is None  # blank: no key, so no provider made from it
    origins = Settings.from_env({"CORS_ORIGINS": "https://a.example/, http://127.0.0.1:5173, *"}).cors_origins
    assert origins == ["https://a.example", "http://127.0.0.1:5173", "*"]  # an origin has no trailing /


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


def test_every_bad_variable_is_named_in_one_error():
    with pytest.raises(ConfigError) as refused:
        Settings.from_env({"LOG_LEVEL": "loud", "WORKERS": "0", "MAX_BODY_BYTES": "lots", "ACCESS_LOG": "maybe",
                           "APPROVAL_TIMEOUT_SECONDS": "-1", "AUTH_MODE": "some"})
    message = str(refused.value)
    for says in ("LOG_LEVEL must be DEBUG, INFO, WARNING, ERROR or CRITICAL, got 'LOUD'", "WORKERS must be >= 1",
                 "MAX_BODY_BYTES must be an integer, got 'lots'", "ACCESS_LOG must be true or false, got 'maybe'",
                 "APPROVAL_TIMEOUT_SECONDS must be >= 0", "AUTH_MODE must be none, admin or full, got 'some'"):
        assert says in message
    assert "\n" not in message  # `python -m app` prints it as one line


def test_secrets_are_kept_out_of_sight():
    settings = Settings.from_env({"SECRETS_KEY": "s3cret-key", "OAUTH_GOOGLE_CLIENT_ID": "id",
                                  "OAUTH_GOOGLE_CLIENT_SECRET": "s3cret-client", "OAUTH_GOOGLE_SCOPE": "openid"})
    assert "s3cret" not in repr(settings) and "s3cret" not in str(settings.model_dump())
    google = settings.oauth["google"]
    assert google.client_secret.get_secret_value() == "s3cret-client" and google.scope == "openid"
    assert google.token_url == "https://oauth2.googleapis.com/token" and "github" not in settings.oauth


def test_settings_are_immutable_and_replace_validates():
    settings = Settings()
    with pytest.raises(ValueError):
        settings.log_level = "DEBUG"
    changed = settings.replace(auth_mode="Admin", auth_admin_email="a@example.com", auth_admin_password="pw-long-enough")
    assert changed.auth_mode == "admin" and changed.auth_admin_password.get_secret_value() == "pw-long-enough"
    assert settings.auth_mode == "none"
    with pytest.raises(ValueError, match="AUTH_MODE=admin needs"):
        settings.replace(auth_mode="admin")
    # Reported: a 5-character admin password was taken, where sign-up asks for 8.
    with pytest.raises(ValueError, match="AUTH_ADMIN_PASSWORD must be at least 8 characters"):
        settings.replace(auth_mode="full", auth_admin_email="a@example.com", auth_admin_password="short")


def test_importing_the_app_reads_no_environment():
    """create_app(settings) is given its settings: a bad variable must not stop the import."""
    env = {**os.environ, "LOG_LEVEL": "loud", "WORKERS": "many"}
    done = subprocess.run([sys.executable, "-c", "import app.main, app.db, app.__main__"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
