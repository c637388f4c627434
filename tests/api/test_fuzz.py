"""A bounded schemathesis run over our own OpenAPI document against a real server
process: every operation, valid and invalid data, and not one 5xx.

The seed is fixed so a failure reproduces (the output names the request and a curl line);
FUZZ_SEED picks another, FUZZ_EXAMPLES another budget. Routes that stream forever (SSE)
are left out: a generated request would wait on them until its timeout.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from app.auth.principal import SCOPES

SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
STREAMING = r"/sse$|/stream$|/events$|^/v1/events$"


ADMIN = {"AUTH_MODE": "full", "AUTH_ADMIN_EMAIL": "admin@example.com", "AUTH_ADMIN_PASSWORD": "fuzz-admin-password"}


@pytest.fixture(params=["sqlite-auth-none", "postgres-auth-full"])
def seeded_server(request, live_server_factory):
    """A server holding one of each resource, so generated ids sometimes hit real rows.
    With authentication on, requests carry an admin's API key (the auth routes
    themselves take generated credentials). The two runs cover both databases: what one
    stores, the other may refuse (NUL, on PostgreSQL)."""
    env = {"LOG_LEVEL": "WARNING", "RATE_LIMIT_ENABLED": "false"}
    if request.param.startswith("postgres"):
        env |= {"DATABASE_URL": request.getfixturevalue("pg_copy"), "AUTO_MIGRATE": "false"}
    server = live_server_factory({**env, **(ADMIN if request.param.endswith("auth-full") else {})})
    with httpx.Client(base_url=server.url) as client:
        if request.param.endswith("auth-full"):
            login = client.post("/v1/auth/login", json={"email": ADMIN["AUTH_ADMIN_EMAIL"],
                                                         "password": ADMIN["AUTH_ADMIN_PASSWORD"]}).json()
            key = client.post("/v1/auth/api-keys", json={"name": "fuzz", "scopes": sorted(SCOPES)},
                              headers={"Authorization": f"Bearer {login['access_token']}"}).json()
            client.headers["Authorization"] = f"Bearer {key['key']}"
        agent = client.post("/v1/agents", json={"name": "fuzz", "system_prompt": "p"}).json()
        client.post("/v1/sessions", json={"agent_id": agent["id"]})
        client.post("/sessions", json={"session_id": "fuzz-1", "session_name": "x"})
        client.post("/v1/pipelines", json={"name": "fuzz", "steps": [{"name": "a", "agent": "fuzz"}]})
        server.headers = dict(client.headers) if request.param.endswith("auth-full") else {}
    return server


def test_no_operation_answers_5xx(seeded_server, tmp_path):
    if not SCHEMATHESIS.exists():
        pytest.fail(f"{SCHEMATHESIS} is missing: pip install -e '.[test]'")
    command = [
        str(SCHEMATHESIS), "run", f"{seeded_server.url}/api-doc/openapi.json",
        "--checks", "not_a_server_error",
        "--max-examples", os.environ.get("FUZZ_EXAMPLES", "10"),
        "--seed", os.environ.get("FUZZ_SEED", "20261129"),
        "--phases", "examples,coverage,fuzzing",
        "--exclude-path-regex", STREAMING,
        "--request-timeout", "10",
        "--workers", "2",
        "--no-color",
        *(arg for name in ("Authorization",) if name in seeded_server.headers
          for arg in ("-H", f"{name}: {seeded_server.headers[name]}")),
    ]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    output = result.stdout + result.stderr
    server_errors = [line for line in seeded_server.log().splitlines() if "unhandled error" in line]
    assert result.returncode == 0, f"schemathesis found failures:\n{output[-20000:]}\nserver log:\n" + "\n".join(server_errors)
    assert not server_errors, "\n".join(server_errors)
