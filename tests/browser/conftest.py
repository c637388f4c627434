"""The browser every dashboard test module shares (one per module)."""

from __future__ import annotations

import pytest

from tests.browser.chromium import CHROMIUM, LAUNCH_ARGS, playwright_or_skip


@pytest.fixture(scope="module")
def browser():
    sync_api = playwright_or_skip()
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=LAUNCH_ARGS)
        yield browser
        browser.close()
