"""Outside bots in Chromium (issue 18): the admin registers a bot on /settings/bots (a bad
URL said next to the field; the token and secret shown once); a customer's message is then
held by the bot ("Answered by bot" in the thread's actions bar); the bot hands off through
the API and the bar offers "Return to bot" live; the agent gives it back. Every screen is
checked for stray words and overflow at desktop and phone width."""
from __future__ import annotations

import pytest
import requests

from tests.browser.screen import check_screen
from tests.conftest import wait_until
from tests.inbox_helpers import shot, sign_in, telegram_post
from tests.usecases.test_bots import BotServer

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ADMIN_PASSWORD = "correct horse battery"  # the `admin` fixture's


@pytest.fixture
def app_config(app_config):
    app_config["security"]["allow_private_webhook_urls"] = True   # the bot is on 127.0.0.1
    return app_config


@pytest.mark.parametrize("backend", ["sqlite"])
def test_admin_registers_a_bot_and_an_agent_returns_a_conversation_to_it(backend, world,
                                                                          browser):
    server, support = world["server"], world["support"]
    bot_server = BotServer()
    try:
        page = sign_in(browser, server, "admin@example.com", ADMIN_PASSWORD)
        page.goto(f"{server.url}/settings")
        page.click(".sections a[href='/settings/bots']")
        page.wait_for_selector("#bot-new")
        check_screen(page)

        page.fill("#bot-new input[name=name]", "Order bot")
        page.fill("#bot-new input[name=url]", "ftp://bot.example.com")
        page.check(f"#bot-new input[name=channel_ids][value='{support.id}']")
        page.click("#bot-new button[type=submit]")
        page.wait_for_selector("#bot-new .field-error")
        assert "http(s) URL" in page.inner_text("#bot-new .field-error")
        assert page.input_value("#bot-new input[name=name]") == "Order bot"   # kept
        page.fill("#bot-new input[name=url]", bot_server.url)
        page.click("#bot-new button[type=submit]")
        page.wait_for_selector("#bot-created")
        token = page.inner_text("#bot-token").strip()
        bot_server.secret = page.inner_text("#bot-secret").strip()
        assert token.startswith("tl_")
        assert "Order bot" in page.inner_text("#bots")
        check_screen(page)
        shot(page, "settings-bots-created")

        telegram_post(server, support, "support-secret", 9101, 4343, "Где мой заказ 77?")
        page.goto(f"{server.url}/")
        page.wait_for_selector("body[data-live=yes]")
        page.click(".row:has-text('Где мой заказ 77?')")
        page.wait_for_selector("[data-action=bot-holds]:has-text('Order bot')", timeout=10_000)
        assert page.locator("[data-action=return-to-bot]").count() == 0
        check_screen(page)

        # the bot got the message; it hands off through the API with its token
        bearer = {"Authorization": f"Bearer {token}"}
        items = requests.get(f"{server.url}/api/v1/conversations", headers=bearer,
                             timeout=10).json()["items"]
        (held,) = items
        handed = requests.post(f"{server.url}/api/v1/conversations/{held['id']}/handoff",
                               json={"reason": "asks for a person"}, headers=bearer, timeout=10)
        assert handed.status_code == 200, handed.text
        page.wait_for_selector("[data-action=return-to-bot]", timeout=10_000)
        page.wait_for_selector(".msg.note:has-text('asks for a person')", timeout=10_000)
        check_screen(page)
        shot(page, "inbox-return-to-bot")
        page.click("[data-action=return-to-bot]")
        page.wait_for_selector("[data-action=bot-holds]", timeout=10_000)
        again = requests.get(f"{server.url}/api/v1/conversations/{held['id']}", headers=bearer,
                             timeout=10).json()
        assert again["handled_by"].startswith("bot:")
        wait_until(lambda: any(e["body"]["data"].get("text") == "Где мой заказ 77?"
                               for e in bot_server.events if e["valid"]), timeout=15)
    finally:
        bot_server.close()
