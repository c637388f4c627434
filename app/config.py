"""Settings, read once from the environment when the app is built.

Every variable here is listed in the README's configuration table; keep the two in step.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path


class ConfigError(ValueError):
    """An environment variable holds a value the server cannot use."""


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, got {value}")
    return value


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    if value < 0:
        raise ConfigError(f"{name} must be >= 0, got {value}")
    return value


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in ("1", "true", "yes", "on"):
        return True
    if raw.lower() in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r}")


# Well-known OAuth endpoints; each can be overridden (tests point them at a fake provider).
OAUTH_DEFAULTS = {
    "google": {"authorize_url": "https://accounts.google.com/o/oauth2/v2/auth",
               "token_url": "https://oauth2.googleapis.com/token",
               "userinfo_url": "https://openidconnect.googleapis.com/v1/userinfo",
               "scope": "openid email profile"},
    "github": {"authorize_url": "https://github.com/login/oauth/authorize",
               "token_url": "https://github.com/login/oauth/access_token",
               "userinfo_url": "https://api.github.com/user",
               "emails_url": "https://api.github.com/user/emails",
               "scope": "read:user user:email"},
}


def _oauth(env: Mapping[str, str]) -> dict[str, dict[str, str]]:
    """Providers with OAUTH_<NAME>_CLIENT_ID and _CLIENT_SECRET set are enabled."""
    enabled = {}
    for name, defaults in OAUTH_DEFAULTS.items():
        prefix = f"OAUTH_{name.upper()}_"
        if env.get(prefix + "CLIENT_ID") and env.get(prefix + "CLIENT_SECRET"):
            enabled[name] = {key: env.get(prefix + key.upper()) or value for key, value in defaults.items()}
            enabled[name]["client_id"] = env[prefix + "CLIENT_ID"]
            enabled[name]["client_secret"] = env[prefix + "CLIENT_SECRET"]
    return enabled


def _host_port(env: Mapping[str, str], name: str) -> str:
    raw = env.get(name) or ""
    host, _, port = raw.rpartition(":")
    if raw and not (host and port.isdigit() and 0 < int(port) < 65536):
        raise ConfigError(f"{name} must be host:port, got {raw!r}")
    return raw


def _list(env: Mapping[str, str], name: str) -> list[str]:
    return [item.strip() for item in env.get(name, "").split(",") if item.strip()]


@dataclass(frozen=True)
class Settings:
    data_dir: Path = Path("data")
    database_url: str = ""  # empty means: SQLite file in data_dir
    # Longest one database call may take (connecting, waiting for a pooled connection or
    # a lock, the statement itself) before the API answers 503 database_unavailable.
    database_timeout_seconds: float = 5.0
    bind: str = "0.0.0.0:9000"
    event_loop: str = "uvloop"  # uvloop | asyncio (python -m app serve)
    cors_origins: list[str] = field(default_factory=list)
    secrets_key: str | None = None
    log_level: str = "INFO"
    access_log: bool = True  # one line per request (Hypercorn's access log, with the request id)
    # How long a stopping server waits for open requests (Hypercorn's graceful_timeout);
    # None: hypercorn.toml's value.
    graceful_timeout_seconds: float | None = None
    max_body_bytes: int = 1024 * 1024
    auto_migrate: bool = True
    # Where turns run: "inprocess" (this process; SQLite or PostgreSQL) or "temporal"
    # (Temporal workflows on `python -m app worker` processes; PostgreSQL and Redis).
    runner_mode: str = "inprocess"
    temporal_address: str = "127.0.0.1:7233"
    temporal_namespace: str = "default"
    temporal_task_queue: str = "agent-turns"
    redis_url: str = ""  # live events between processes; required in temporal mode
    workers: int = 1  # Hypercorn worker processes of `serve` (more than one: temporal mode)
    worker_metrics_bind: str = ""  # host:port where `python -m app worker` serves Prometheus metrics
    # The agent loop (runtime).
    llm_timeout_seconds: float = 60.0
    llm_max_retries: int = 2
    max_iterations: int = 10
    tool_timeout_seconds: float = 30.0
    # A tool call waiting for an approval or a client's result is answered for them
    # after this long (denied / an error result); None: it waits until answered.
    approval_timeout_seconds: float | None = None
    # Longest an MCP server may take to start, initialize and list its tools (app/runtime/mcp/).
    mcp_connect_timeout_seconds: float = 10.0
    # Live delivery (SSE / WebSocket).
    sse_heartbeat_seconds: float = 15.0
    sse_retry_ms: int = 2000
    subscriber_queue_size: int = 1000
    delta_flush_ms: int = 50
    delta_flush_ms_per_1000_subscribers: int = 150
    # Authentication (app/auth).
    auth_mode: str = "none"  # none | admin | full
    auth_admin_email: str | None = None
    auth_admin_password: str | None = None
    auth_signup_enabled: bool = True  # full mode only
    jwt_secret: str | None = None
    access_token_ttl_seconds: int = 900
    refresh_token_ttl_seconds: int = 30 * 24 * 3600
    cookie_secure: bool = False
    rate_limit_enabled: bool = True
    oauth: dict[str, dict[str, str]] = field(default_factory=dict)  # provider -> endpoints and client
    oauth_redirect_base_url: str | None = None
    # First-start providers (created only when no provider exists yet).
    openai_api_key: str | None = None
    openai_base_url: str | None = None
    openai_model: str = "gpt-4o-mini"
    anthropic_api_key: str | None = None
    anthropic_base_url: str | None = None
    anthropic_model: str = "claude-sonnet-4-5"

    @property
    def temporal(self) -> bool:
        return self.runner_mode == "temporal"

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite://{self.data_dir / 'runtime.sqlite3'}"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        log_level = env.get("LOG_LEVEL", "INFO").upper()
        if log_level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ConfigError(f"LOG_LEVEL must be DEBUG, INFO, WARNING, ERROR or CRITICAL, got {log_level!r}")
        event_loop = (env.get("EVENT_LOOP") or "uvloop").lower()
        if event_loop not in ("uvloop", "asyncio"):
            raise ConfigError(f"EVENT_LOOP must be uvloop or asyncio, got {event_loop!r}")
        auth_mode = (env.get("AUTH_MODE") or "none").lower()
        if auth_mode not in ("none", "admin", "full"):
            raise ConfigError(f"AUTH_MODE must be none, admin or full, got {auth_mode!r}")
        if auth_mode == "admin" and not (env.get("AUTH_ADMIN_EMAIL") and env.get("AUTH_ADMIN_PASSWORD")):
            raise ConfigError("AUTH_MODE=admin needs AUTH_ADMIN_EMAIL and AUTH_ADMIN_PASSWORD")
        runner_mode = (env.get("RUNNER_MODE") or "inprocess").lower().replace("-", "").replace("_", "")
        if runner_mode not in ("inprocess", "temporal"):
            raise ConfigError(f"RUNNER_MODE must be inprocess or temporal, got {env.get('RUNNER_MODE')!r}")
        workers = _int(env, "WORKERS", 1, minimum=1)
        database_url = env.get("DATABASE_URL", "")
        database_timeout = _float(env, "DATABASE_TIMEOUT_SECONDS", 5.0)
        if not (database_timeout > 0 and math.isfinite(database_timeout)):  # 0 would fail every call
            raise ConfigError(f"DATABASE_TIMEOUT_SECONDS must be a number of seconds > 0, got {database_timeout:g}")
        redis_url = env.get("REDIS_URL", "")
        if runner_mode == "temporal":
            if not database_url.startswith(("postgres://", "postgresql://", "asyncpg://")):
                raise ConfigError("RUNNER_MODE=temporal needs PostgreSQL: set DATABASE_URL=postgres://... "
                                  "(SQLite cannot be shared by API and worker processes)")
            if not redis_url:
                raise ConfigError("RUNNER_MODE=temporal needs REDIS_URL (e.g. redis://127.0.0.1:6379/0) "
                                  "to carry live events between processes")
        elif workers > 1:
            raise ConfigError("WORKERS > 1 needs RUNNER_MODE=temporal: in-process turns and live events "
                              "live in one process")
        return cls(
            runner_mode=runner_mode,
            temporal_address=env.get("TEMPORAL_ADDRESS") or "127.0.0.1:7233",
            temporal_namespace=env.get("TEMPORAL_NAMESPACE") or "default",
            temporal_task_queue=env.get("TEMPORAL_TASK_QUEUE") or "agent-turns",
            redis_url=redis_url,
            workers=workers,
            worker_metrics_bind=_host_port(env, "WORKER_METRICS_BIND"),
            auth_mode=auth_mode,
            auth_admin_email=env.get("AUTH_ADMIN_EMAIL") or None,
            auth_admin_password=env.get("AUTH_ADMIN_PASSWORD") or None,
            auth_signup_enabled=_bool(env, "AUTH_SIGNUP_ENABLED", True),
            jwt_secret=env.get("JWT_SECRET") or None,
            access_token_ttl_seconds=_int(env, "ACCESS_TOKEN_TTL_SECONDS", 900, minimum=1),
            refresh_token_ttl_seconds=_int(env, "REFRESH_TOKEN_TTL_SECONDS", 30 * 24 * 3600, minimum=1),
            cookie_secure=_bool(env, "COOKIE_SECURE", False),
            rate_limit_enabled=_bool(env, "RATE_LIMIT_ENABLED", True),
            oauth=_oauth(env),
            oauth_redirect_base_url=env.get("OAUTH_REDIRECT_BASE_URL") or None,
            data_dir=Path(env.get("DATA_DIR") or "data"),
            database_url=database_url,
            database_timeout_seconds=database_timeout,
            bind=env.get("BIND") or "0.0.0.0:9000",
            event_loop=event_loop,
            cors_origins=_list(env, "CORS_ORIGINS"),
            secrets_key=env.get("SECRETS_KEY") or None,
            log_level=log_level,
            access_log=_bool(env, "ACCESS_LOG", True),
            graceful_timeout_seconds=(_float(env, "GRACEFUL_TIMEOUT_SECONDS", 0.0)
                                      if env.get("GRACEFUL_TIMEOUT_SECONDS") else None),
            max_body_bytes=_int(env, "MAX_BODY_BYTES", 1024 * 1024, minimum=1024),
            auto_migrate=_bool(env, "AUTO_MIGRATE", True),
            llm_timeout_seconds=_float(env, "LLM_TIMEOUT_SECONDS", 60.0),
            llm_max_retries=_int(env, "LLM_MAX_RETRIES", 2),
            max_iterations=_int(env, "MAX_ITERATIONS", 10, minimum=1),
            tool_timeout_seconds=_float(env, "TOOL_TIMEOUT_SECONDS", 30.0),
            approval_timeout_seconds=_float(env, "APPROVAL_TIMEOUT_SECONDS", 0.0) or None,
            mcp_connect_timeout_seconds=_float(env, "MCP_CONNECT_TIMEOUT_SECONDS", 10.0),
            sse_heartbeat_seconds=_float(env, "SSE_HEARTBEAT_SECONDS", 15.0),
            sse_retry_ms=_int(env, "SSE_RETRY_MS", 2000),
            subscriber_queue_size=_int(env, "SUBSCRIBER_QUEUE_SIZE", 1000, minimum=1),
            delta_flush_ms=_int(env, "DELTA_FLUSH_MS", 50),
            delta_flush_ms_per_1000_subscribers=_int(env, "DELTA_FLUSH_MS_PER_1000_SUBSCRIBERS", 150),
            openai_api_key=env.get("OPENAI_API_KEY") or None,
            openai_base_url=env.get("OPENAI_BASE_URL") or None,
            openai_model=env.get("OPENAI_MODEL") or "gpt-4o-mini",
            anthropic_api_key=env.get("ANTHROPIC_API_KEY") or None,
            anthropic_base_url=env.get("ANTHROPIC_BASE_URL") or None,
            anthropic_model=env.get("ANTHROPIC_MODEL") or "claude-sonnet-4-5",
        )
