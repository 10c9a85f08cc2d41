"""Headless Chromium for the browser tests: Debian's /usr/bin/chromium driven by Playwright
(the project never downloads a browser of its own)."""
from __future__ import annotations

import pytest

from tests import inbox_helpers as h
from tests.conftest import release_db

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


@pytest.fixture
def world(ctx, admin, telegram_api, start_server):
    """Two telegram channels (Support, Sales), three agents, and a running server."""
    support, sales = h.channels(telegram_api)
    h.agent("anna@example.com", "Anna Agent", ["Support"])
    h.agent("boris@example.com", "Boris Agent", ["Support"])
    h.agent("sam@example.com", "Sam Sales", ["Sales"])
    h.reset_login_limit()
    release_db()
    server = start_server()
    return {"server": server, "support": support, "sales": sales, "telegram": telegram_api}
