"""What the dashboard tests share: the browser (one per module), a server whose default
provider is the fake LLM (a module may define its own `server`), and a REST client to it."""

from __future__ import annotations

import httpx
import pytest

from tests.browser.chromium import CHROMIUM, LAUNCH_ARGS, playwright_or_skip
from tests.helpers import FAKE_KEY


@pytest.fixture(scope="module")
def browser():
    sync_api = playwright_or_skip()
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=LAUNCH_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def server(live_server_factory, fake_llm):
    return live_server_factory({"OPENAI_API_KEY": FAKE_KEY, "OPENAI_BASE_URL": fake_llm.openai_base_url,
                                "OPENAI_MODEL": "fake-model"})


@pytest.fixture
def rest(server):
    with httpx.Client(base_url=server.url, timeout=10) as client:
        yield client
