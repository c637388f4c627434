"""Debian's chromium driven by Playwright (Playwright's own browser download cannot work
here): what every dashboard test module needs. `make test` installs chromium with
apt-get (`make system-deps`)."""

from __future__ import annotations

from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync"]
TIMEOUT = 10_000  # ms, for every expect


def playwright_or_skip():
    """Playwright's sync API with `expect` waiting TIMEOUT; skips the calling module when
    chromium or Playwright is missing. Call it at module level."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} does not exist (apt-get install chromium)", allow_module_level=True)
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e '.[test]')")
    sync_api.expect.set_options(timeout=TIMEOUT)
    return sync_api
