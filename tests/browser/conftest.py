"""Headless Chromium for the browser tests: Debian's /usr/bin/chromium driven by Playwright
(the project never downloads a browser of its own)."""
from __future__ import annotations

import pytest

# background networking off: this machine's closed network refuses those connections
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--no-first-run", "--disable-sync"]


@pytest.fixture
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path="/usr/bin/chromium", args=LAUNCH_ARGS)
        yield chromium
        chromium.close()
