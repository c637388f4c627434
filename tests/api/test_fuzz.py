"""A bounded schemathesis run over our own OpenAPI document against a real server
process: every operation, valid and invalid data, and not one 5xx.

The seed is fixed so a failure reproduces (the output names the request and a curl line);
FUZZ_SEED picks another, FUZZ_EXAMPLES another budget. Routes that stream forever (SSE)
are left out: a generated request would wait on them until its timeout.
"""

from __future__ import annotations

import os

import pytest

from tests.schemathesis_run import ADMIN, assert_clean_run, seed

STREAMING = r"/sse$|/stream$|/events$|^/v1/events$"


@pytest.fixture(params=["sqlite-auth-none", "postgres-auth-full"])
def seeded_server(request, live_server_factory):
    """With authentication on, requests carry an admin's API key (the auth routes
    themselves take generated credentials). The two runs cover both databases: what one
    stores, the other may refuse (NUL, on PostgreSQL)."""
    env = {"LOG_LEVEL": "WARNING", "RATE_LIMIT_ENABLED": "false"}
    if request.param.startswith("postgres"):
        env |= {"DATABASE_URL": request.getfixturevalue("pg_copy"), "AUTO_MIGRATE": "false"}
    admin = request.param.endswith("auth-full")
    server = live_server_factory({**env, **(ADMIN if admin else {})})
    server.headers = seed(server, "fuzz", admin)
    return server


def test_no_operation_answers_5xx(seeded_server, tmp_path):
    assert_clean_run(seeded_server, seeded_server.headers, tmp_path, checks="not_a_server_error",
                     exclude_paths=STREAMING, examples=os.environ.get("FUZZ_EXAMPLES", "10"),
                     seed_value="20261129")
