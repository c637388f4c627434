"""Against a real `python -m app serve` (Hypercorn) process on a free loopback port."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

WALKTHROUGH = Path(__file__).parent / "data" / "walkthrough.sh"


def _run_walkthrough(base_url: str) -> str:
    env = {**os.environ, "BASE_URL": base_url, "WALKTHROUGH_WAIT": "0.2"}
    done = subprocess.run(["bash", str(WALKTHROUGH)], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.skipif(not (shutil.which("curl") and shutil.which("jq")), reason="the seed's walkthrough needs curl and jq")
def test_seed_walkthrough_verbatim(live_server):
    out = _run_walkthrough(live_server.url)
    assert re.search(r"Created agent: [0-9a-f-]{36}", out)
    assert re.search(r"Created session: [0-9a-f-]{36}", out)
    assert re.search(r"Sent message: [0-9a-f-]{36}", out)
    assert '"user: Hello! What can you help me with?"' in out


def _walkthrough_with_httpx(base: str) -> None:
    with httpx.Client(base_url=base, timeout=10) as http:
        assert http.get("/health").json()["runner_mode"] == "InProcess"
        agent = http.post("/v1/agents", json={"name": "Assistant", "system_prompt": "You are helpful."}).json()
        session = http.post(f"/v1/agents/{agent['id']}/sessions", json={"title": "Test Chat"})
        assert session.status_code == 201
        sid = session.json()["id"]
        message = http.post(f"/v1/sessions/{sid}/messages", json={"role": "user", "content": {"text": "Hi"}})
        assert message.status_code == 201 and message.json()["sequence"] == 1
        listing = http.get(f"/v1/agents/{agent['id']}/sessions/{sid}/messages").json()
        assert listing["data"][0]["content"] == {"text": "Hi"}
        missing = http.get("/v1/nowhere")
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
        assert missing.headers["x-request-id"]
        assert http.get("/swagger-ui/").status_code == 200
        assert http.get("/api-doc/openapi.json").json()["openapi"].startswith("3.1")


async def _concurrent_messages(base: str, count: int = 30) -> list[int]:
    async with httpx.AsyncClient(base_url=base, timeout=10) as http:
        agent = (await http.post("/v1/agents", json={"name": "c", "system_prompt": "p"})).json()
        sid = (await http.post("/v1/sessions", json={"agent_id": agent["id"]})).json()["id"]
        responses = await asyncio.gather(*[
            http.post(f"/v1/sessions/{sid}/messages", json={"content": f"m{i}"}) for i in range(count)
        ])
        assert all(r.status_code == 201 for r in responses), [r.text for r in responses if r.status_code != 201]
        return sorted(r.json()["sequence"] for r in responses)


def test_real_server_on_sqlite(live_server):
    _walkthrough_with_httpx(live_server.url)
    assert asyncio.run(_concurrent_messages(live_server.url)) == list(range(1, 31))
    assert (Path(live_server.env["DATA_DIR"]) / "runtime.sqlite3").exists()


def test_real_server_on_postgres(live_server_factory, postgres_url):
    server = live_server_factory({"DATABASE_URL": postgres_url})
    _walkthrough_with_httpx(server.url)
    assert asyncio.run(_concurrent_messages(server.url)) == list(range(1, 31))
