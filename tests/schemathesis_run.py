"""Running schemathesis (from PyPI) against a real server process: the seeding and the run
that tests/api/test_fuzz.py and tests/api/test_openapi_conformance.py share.

Seeds are fixed so a failure reproduces (the output names the request and a curl line);
FUZZ_SEED picks another. Streams (SSE) are left out by the callers: a generated request
would wait on them until its timeout.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from app.auth.principal import SCOPES
from tests.live_server import LiveServer

SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
# Narrow exceptions, one operation and one check each (schemathesis.toml [[operations]];
# by operation id, since filters within one entry are or'ed, not and'ed).
OPERATION_EXCEPTIONS = """
# Running a turn needs an LLM model, and these servers have none: the turns AgentSpec's
# routes start answer 503 no_model_configured (documented), the server working as meant.
[[operations]]
include-operation-id = ["post_invoke", "post_continue_session"]
checks.not_a_server_error.expected-statuses = ["2xx", "3xx", "4xx", "503"]

# Listing an MCP server's tools reaches the server: the ones generated requests register
# (made-up hosts and commands) cannot be reached, a documented 502 mcp_unavailable.
[[operations]]
include-operation-id = ["get_list_mcp_server_tools"]
checks.not_a_server_error.expected-statuses = ["2xx", "3xx", "4xx", "502"]
"""
ADMIN = {"AUTH_MODE": "full", "AUTH_ADMIN_EMAIL": "admin@example.com", "AUTH_ADMIN_PASSWORD": "schemathesis-password"}


def seed(server: LiveServer, name: str, admin: bool) -> dict[str, str]:
    """One of each resource, so generated ids sometimes hit real rows; with `admin`, the
    headers of an admin API key with every scope (the server runs with ADMIN)."""
    with httpx.Client(base_url=server.url) as client:
        if admin:
            login = client.post("/v1/auth/login", json={"email": ADMIN["AUTH_ADMIN_EMAIL"],
                                                         "password": ADMIN["AUTH_ADMIN_PASSWORD"]}).json()
            key = client.post("/v1/auth/api-keys", json={"name": name, "scopes": sorted(SCOPES)},
                              headers={"Authorization": f"Bearer {login['access_token']}"}).json()
            client.headers["Authorization"] = f"Bearer {key['key']}"
        agent = client.post("/v1/agents", json={"name": name, "system_prompt": "p"}).json()
        client.post("/v1/sessions", json={"agent_id": agent["id"]})
        client.post("/sessions", json={"session_id": f"{name}-1", "session_name": "x"})
        client.post("/events", json={"event_type": "message", "session_id": f"{name}-1", "session_name": "x",
                                     "timestamp": "2026-01-01T00:00:00Z", "role": "assistant", "content": "hi"})
        client.post("/v1/pipelines", json={"name": name, "steps": [{"name": "a", "agent": name}]})
        return {"Authorization": client.headers["Authorization"]} if admin else {}


def assert_clean_run(server: LiveServer, headers: dict[str, str], tmp_path: Path, *, checks: str,
                     exclude_paths: str, examples: str, seed_value: str) -> None:
    """Run schemathesis over the server's own document; fail on any failure it reports and
    on any "unhandled error" in the server's log."""
    if not SCHEMATHESIS.exists():
        pytest.fail(f"{SCHEMATHESIS} is missing: pip install -e '.[test]'")
    (tmp_path / "schemathesis.toml").write_text(OPERATION_EXCEPTIONS)
    command = [
        str(SCHEMATHESIS), "--config-file", str(tmp_path / "schemathesis.toml"), "run", f"{server.url}/api-doc/openapi.json",
        "--checks", checks, "--max-examples", examples,
        "--seed", os.environ.get("FUZZ_SEED", seed_value),
        "--phases", "examples,coverage,fuzzing", "--exclude-path-regex", exclude_paths,
        "--request-timeout", "10", "--no-color",
        # One worker: generation in two threads hits CPython 3.11's thread-unsafe AST depth
        # counter inside hypothesis ("AST constructor recursion depth mismatch").
        "--workers", "1",
        *(arg for name, value in headers.items() for arg in ("-H", f"{name}: {value}")),
    ]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    output = result.stdout + result.stderr
    server_errors = [line for line in server.log().splitlines() if "unhandled error" in line]
    assert result.returncode == 0, f"schemathesis found failures:\n{output[-20000:]}\nserver log:\n" + "\n".join(server_errors)
    assert not server_errors, "\n".join(server_errors)
