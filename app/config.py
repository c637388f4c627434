"""Settings, read once from the environment when the app is built (never at import).

pydantic-settings reads and types them (docs/decisions.md, 154): each field is the
variable of its name in capitals (LOG_LEVEL for log_level), an empty variable means
its default, and the bad ones are refused together in one ConfigError naming each.
Every variable here is listed in the README's configuration table; keep the two in step.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    StringConstraints,
    ValidationError,
    model_validator,
)
from pydantic_settings import BaseSettings, EnvSettingsSource, NoDecode, SettingsConfigDict
from pydantic_settings.sources.utils import parse_env_vars

PASSWORD_MIN_LENGTH = 8  # every account's (app/auth/passwords.py), the admin's from the environment too
EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+$"  # what sign-up and login take (app/api/auth.py), AUTH_ADMIN_EMAIL too


class ConfigError(ValueError):
    """An environment variable holds a value the server cannot use."""


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


class OAuthClient(BaseModel):
    """An enabled OAuth provider: its endpoints, and our client at it."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    client_id: str
    client_secret: SecretStr
    authorize_url: str
    token_url: str
    userinfo_url: str
    scope: str
    emails_url: str | None = None  # GitHub: where a private email is found


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


def reveal(secret: SecretStr | None) -> str | None:
    """A secret setting's text, where it is used (None: unset)."""
    return None if secret is None else secret.get_secret_value()


def _host_port(raw: str) -> str:
    host, _, port = raw.rpartition(":")
    if raw and not (host and port.isdigit() and 0 < int(port) < 65536):
        raise ValueError("must be host:port")
    return raw


def _bind(raw: str) -> str:
    """host:port, unix:path or fd://n as Hypercorn takes them; a host alone would quietly
    listen on Hypercorn's default port (8000)."""
    if raw.startswith(("unix:", "fd://")):
        return raw
    host, _, port = raw.rpartition(":")
    if not (host and port.isdigit()):
        raise ValueError("must be host:port (e.g. 127.0.0.1:9000), unix:/path or fd://n")
    return raw


def _origins(values: list[str]) -> list[str]:
    """CORS_ORIGINS: what a browser sends as Origin (scheme://host[:port]), or `*`. A
    trailing `/` is dropped; anything else that no Origin can equal is refused, rather than
    quietly never matching (no CORS headers, /ws answering 403)."""
    origins = []
    for value in values:
        origin = value if value == "*" else value.rstrip("/")
        if origin != "*" and not re.fullmatch(r"https?://[^/?#\s]+", origin):
            raise ValueError(f"must be origins like https://app.example.com (scheme://host[:port], no path) "
                             f"or *, not {value!r}")
        origins.append(origin)
    return origins


def _comma_list(raw: Any) -> Any:
    return [item.strip() for item in raw.split(",") if item.strip()] if isinstance(raw, str) else raw


def _folded(fold):
    """A mode's spelling does not matter: LOG_LEVEL=debug, EVENT_LOOP=AsyncIO, RUNNER_MODE=in-process."""
    return BeforeValidator(lambda raw: fold(raw) if isinstance(raw, str) else raw)


Seconds = Annotated[float, Field(ge=0)]
# A limit on a wait: 0 would fail everything it limits at once (inf: no limit).
Timeout = Annotated[float, Field(gt=0)]
Count = Annotated[int, Field(ge=0)]
ModelId = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
MAX_APPROVAL_WAIT_SECONDS = 10 * 365 * 24 * 3600  # later than this is "never" (and past what a datetime holds)


def _approval_wait(value: float | None) -> float | None:
    """0 (or unset, or inf): a waiting tool call waits until answered."""
    if not value or value == float("inf"):
        return None
    if value > MAX_APPROVAL_WAIT_SECONDS:
        raise ValueError(f"must be at most {MAX_APPROVAL_WAIT_SECONDS} (10 years); 0 or unset: no limit")
    return value


API_KEY_RULE = "an API key is printable ASCII, with no spaces, line breaks or other characters inside it"


def bad_api_key(key: str) -> bool:
    """A provider key is sent in an HTTP header; anything else would only fail every model
    call, as a network error that never reached the provider (app/api/llm.py too)."""
    return any(not "!" <= c <= "~" for c in key)


def _provider_key(value: SecretStr | None) -> SecretStr | None:
    """OPENAI_API_KEY / ANTHROPIC_API_KEY, as the API takes a key: trimmed, blank = none."""
    key = value.get_secret_value().strip() if value is not None else ""
    if bad_api_key(key):
        raise ValueError(f"must be one: {API_KEY_RULE}")
    return SecretStr(key) if key else None


def _provider_base_url(value: str | None) -> str | None:
    """OPENAI_BASE_URL / ANTHROPIC_BASE_URL, as the API takes a base_url (§3.10)."""
    url = (value or "").strip()
    if not url:
        return None
    if not re.fullmatch(r"https?://[^/?#\s]+(/[^?#\s]*)?", url):
        raise ValueError("must be an http(s) URL without a query or fragment, e.g. https://api.example.com/v1")
    return url.rstrip("/")


def _email(value: str | None) -> str | None:
    """The admin's email: what they sign in with, so it must be one the login accepts."""
    if value is None:
        return None
    value = value.strip()
    if not re.match(EMAIL_PATTERN, value):
        raise ValueError("must be an email address (name@example.com)")
    return value
LogLevel = Annotated[Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"], _folded(str.upper)]
EventLoop = Annotated[Literal["uvloop", "asyncio"], _folded(str.lower)]
AuthMode = Annotated[Literal["none", "admin", "full"], _folded(str.lower)]
RunnerMode = Annotated[Literal["inprocess", "temporal"],
                       _folded(lambda raw: raw.lower().replace("-", "").replace("_", ""))]


class Settings(BaseSettings):
    """Immutable; `settings.replace(name=value)` is a validated copy with changes (tests).
    `Settings(...)` is the defaults and what it is given; only `from_env` reads variables."""

    model_config = SettingsConfigDict(frozen=True, extra="forbid", case_sensitive=False, env_ignore_empty=True)

    data_dir: Path = Path("data")
    database_url: str = ""  # empty means: SQLite file in data_dir
    # Longest one database call may take (connecting, waiting for a pooled connection or
    # a lock, the statement itself) before the API answers 503 database_unavailable.
    # 0 would fail every call.
    database_timeout_seconds: Annotated[float, Field(gt=0, allow_inf_nan=False)] = 5.0
    bind: Annotated[str, AfterValidator(_bind)] = "0.0.0.0:9000"
    event_loop: EventLoop = "uvloop"  # python -m app serve
    cors_origins: Annotated[list[str], NoDecode, BeforeValidator(_comma_list), AfterValidator(_origins)] = []
    secrets_key: SecretStr | None = None
    log_level: LogLevel = "INFO"
    access_log: bool = True  # one line per request (Hypercorn's access log, with the request id)
    # How long a stopping server waits for open requests (Hypercorn's graceful_timeout);
    # None: hypercorn.toml's value.
    graceful_timeout_seconds: Seconds | None = None
    max_body_bytes: Annotated[int, Field(ge=1024)] = 1024 * 1024
    auto_migrate: bool = True
    # Where turns run: "inprocess" (this process; SQLite or PostgreSQL) or "temporal"
    # (Temporal workflows on `python -m app worker` processes; PostgreSQL and Redis).
    runner_mode: RunnerMode = "inprocess"
    temporal_address: str = "127.0.0.1:7233"
    temporal_namespace: str = "default"
    temporal_task_queue: str = "agent-turns"
    redis_url: str = ""  # live events between processes; required in temporal mode
    workers: Annotated[int, Field(ge=1)] = 1  # Hypercorn worker processes of `serve` (more than one: temporal mode)
    # host:port where `python -m app worker` serves Prometheus metrics; empty: none.
    worker_metrics_bind: Annotated[str, AfterValidator(_host_port)] = ""
    # The agent loop (runtime).
    llm_timeout_seconds: Timeout = 60.0
    llm_max_retries: Count = 2
    max_iterations: Annotated[int, Field(ge=1)] = 10
    tool_timeout_seconds: Timeout = 30.0
    # A tool call waiting for an approval or a client's result is answered for them
    # after this long (denied / an error result); None (or 0): it waits until answered.
    approval_timeout_seconds: Annotated[Seconds | None, AfterValidator(_approval_wait)] = None
    # Longest an MCP server may take to start, initialize and list its tools (app/runtime/mcp/).
    mcp_connect_timeout_seconds: Timeout = 10.0
    # How long a server that did not answer within the connect timeout counts as down before
    # it is tried again (turns go without its tools meanwhile, without waiting); 0: at every use.
    mcp_retry_seconds: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 30.0
    # Live delivery (SSE / WebSocket).
    sse_heartbeat_seconds: Annotated[float, Field(gt=0, allow_inf_nan=False)] = 15.0  # 0 would spin
    sse_retry_ms: Count = 2000
    subscriber_queue_size: Annotated[int, Field(ge=1)] = 1000
    # A client that takes nothing of what is sent to it for this long is cut off
    # (app/hypercorn_fixes.py); inf: never.
    send_timeout_seconds: Timeout = 30.0
    delta_flush_ms: Annotated[int, Field(ge=0, le=1000)] = 50  # the merge window is capped at 1 s (app/runtime/deltas.py)
    delta_flush_ms_per_1000_subscribers: Count = 150
    # Authentication (app/auth).
    auth_mode: AuthMode = "none"
    auth_admin_email: Annotated[str | None, AfterValidator(_email)] = None
    auth_admin_password: SecretStr | None = None
    auth_signup_enabled: bool = True  # full mode only
    jwt_secret: SecretStr | None = None
    access_token_ttl_seconds: Annotated[int, Field(ge=1)] = 900
    refresh_token_ttl_seconds: Annotated[int, Field(ge=1)] = 30 * 24 * 3600
    cookie_secure: bool = False
    rate_limit_enabled: bool = True
    # provider -> endpoints and client, from OAUTH_<NAME>_* (see _oauth).
    oauth: Annotated[dict[str, OAuthClient], NoDecode] = {}
    oauth_redirect_base_url: str | None = None
    # First-start providers (created only when no provider exists yet).
    openai_api_key: Annotated[SecretStr | None, AfterValidator(_provider_key)] = None
    openai_base_url: Annotated[str | None, AfterValidator(_provider_base_url)] = None
    openai_model: ModelId = "gpt-4o-mini"
    anthropic_api_key: Annotated[SecretStr | None, AfterValidator(_provider_key)] = None
    anthropic_base_url: Annotated[str | None, AfterValidator(_provider_base_url)] = None
    anthropic_model: ModelId = "claude-sonnet-4-5"

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, env_settings, dotenv_settings,
                                   file_secret_settings):
        return (init_settings,)  # the environment only through from_env: tests build settings of their own

    @model_validator(mode="after")
    def _modes_have_what_they_need(self) -> Settings:
        problems = []
        if self.auth_mode == "admin" and not (self.auth_admin_email and self.auth_admin_password):
            problems.append("AUTH_MODE=admin needs AUTH_ADMIN_EMAIL and AUTH_ADMIN_PASSWORD")
        password = self.auth_admin_password.get_secret_value() if self.auth_admin_password else ""
        if self.auth_mode != "none" and password and len(password) < PASSWORD_MIN_LENGTH:
            problems.append(f"AUTH_ADMIN_PASSWORD must be at least {PASSWORD_MIN_LENGTH} characters "
                            "(as for any account)")
        if self.runner_mode == "temporal":
            if not self.database_url.startswith(("postgres://", "postgresql://", "asyncpg://")):
                problems.append("RUNNER_MODE=temporal needs PostgreSQL: set DATABASE_URL=postgres://... "
                                "(SQLite cannot be shared by API and worker processes)")
            if not self.redis_url:
                problems.append("RUNNER_MODE=temporal needs REDIS_URL (e.g. redis://127.0.0.1:6379/0) "
                                "to carry live events between processes")
        elif self.workers > 1:
            problems.append("WORKERS > 1 needs RUNNER_MODE=temporal: in-process turns and live events "
                            "live in one process")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def temporal(self) -> bool:
        return self.runner_mode == "temporal"

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite://{self.data_dir / 'runtime.sqlite3'}"

    def replace(self, **changes: Any) -> Settings:
        """A copy with these fields changed, validated as the constructor validates
        (so a plain string given for a secret becomes a SecretStr)."""
        return type(self)(**{**{name: getattr(self, name) for name in type(self).model_fields}, **changes})

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """The settings of these variables (default: this process's environment). A
        ConfigError names every bad variable, with what it must be."""
        env = os.environ if env is None else env
        values = _Environment(cls, env)()
        values["oauth"] = _oauth(env)
        try:
            return cls(**values)
        except ValidationError as exc:
            raise ConfigError(_describe(exc)) from None


class _Environment(EnvSettingsSource):
    """pydantic-settings' environment source over a mapping of our choice (os.environ
    unless a test gives its own)."""

    def __init__(self, settings_cls: type[BaseSettings], env: Mapping[str, str]):
        self._env = env
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return parse_env_vars(self._env, self.case_sensitive, self.env_ignore_empty, self.env_parse_none_str)


_SECRETS = {"secrets_key", "auth_admin_password", "jwt_secret", "openai_api_key", "anthropic_api_key"}

# What a variable must be, by pydantic's error type (with the error's context).
_EXPECTED = {
    "int_parsing": lambda ctx: "an integer",
    "int_from_float": lambda ctx: "an integer",
    "float_parsing": lambda ctx: "a number",
    "finite_number": lambda ctx: "a finite number",
    "bool_parsing": lambda ctx: "true or false",
    "greater_than_equal": lambda ctx: f">= {ctx['ge']}",
    "greater_than": lambda ctx: f"a number > {ctx['gt']:g}",
    "literal_error": lambda ctx: ctx["expected"].replace("'", ""),
}


def _describe(exc: ValidationError) -> str:
    """One line naming each bad variable: "LOG_LEVEL must be DEBUG, ..., got 'loud'; ..."."""
    problems = []
    for error in exc.errors(include_url=False):
        if error["type"] == "none_required":  # the None branch of an optional setting: not news
            continue
        ctx = error.get("ctx") or {}
        if not error["loc"]:  # a rule across variables (_modes_have_what_they_need)
            problems.append(str(ctx.get("error", error["msg"])))
            continue
        field = str(error["loc"][0])
        name = "OAUTH_*" if field == "oauth" else field.upper()
        if error["type"] in _EXPECTED:
            expected = "must be " + _EXPECTED[error["type"]](ctx)
        elif error["type"] == "value_error":
            expected = str(ctx.get("error", error["msg"]))
        else:
            expected = error["msg"].lower()
        got = "" if field in _SECRETS or field == "oauth" else f", got {error['input']!r}"
        problems.append(f"{name} {expected}{got}")
    return "; ".join(dict.fromkeys(problems))  # a union type reports one value twice
