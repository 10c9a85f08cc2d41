"""The settings area end to end in Chromium (issue 16), from the inbox header:
- the admin adds a Telegram bot in the guided form against the local fake Bot API (getMe
  answers with the bot's @name, polling by default); a customer's message then reaches an agent
  who was already online, without a reload;
- the admin invites an agent to Sales; the invite link sets a password; the new agent lands in
  the inbox and sees only Sales' channels;
- deactivating that agent ends their open socket and their API token gets 401.
Every settings screen is checked for stray null/undefined and overflow at 1440 and 390 px,
and in Russian. Screenshots go to the test output folder."""
from __future__ import annotations

import pytest
import requests

from tests import inbox_helpers as h
from tests.conftest import release_db, telegram_update
from tests.inbox_helpers import shot, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ADMIN_PASSWORD = "correct horse battery"  # the `admin` fixture's


def _clean(page, name: str) -> None:
    """No stray null/undefined, nothing wider than the window, at desktop and phone widths."""
    for width in (1440, 390):
        page.set_viewport_size({"width": width, "height": 860})
        text = page.inner_text("body")
        for stray in ("undefined", "null", "None", "[object Object]"):
            assert stray not in text.split(), (name, width, stray)
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, (name, width, overflow)
        shot(page, f"settings-{name}-{width}")
    page.set_viewport_size({"width": 1440, "height": 860})


@pytest.mark.parametrize("backend", ["sqlite"])
def test_admin_sets_up_a_bot_and_an_agent_in_the_browser(backend, ctx, admin, telegram_api,
                                                        start_server, browser):
    support, sales = h.channels(telegram_api)  # webhook-mode bots: Support's and Sales'
    h.agent("anna@example.com", "Anna Agent", ["Support"])
    h.reset_login_limit()
    release_db()
    server = start_server(pollers=True)

    anna = sign_in(browser, server, "anna@example.com")
    assert anna.locator("#settings-link").count() == 0  # agents get no link…
    forbidden = anna.context.new_page()
    response = forbidden.goto(f"{server.url}/settings/channels")
    assert response.status == 403 and "Admins only" in forbidden.inner_text("body")  # …and 403
    forbidden.close()

    admin_page = sign_in(browser, server, "admin@example.com", ADMIN_PASSWORD)
    admin_page.click("#settings-link")
    admin_page.wait_for_url(f"{server.url}/settings")
    _clean(admin_page, "overview")
    admin_page.click(".settings-nav a[href='/settings/channels']")
    admin_page.click(".add-kinds a[data-kind=telegram]")
    admin_page.wait_for_selector("#channel-form")
    assert admin_page.input_value("select[name=mode]") == "polling"
    _clean(admin_page, "telegram-form")

    # a wrong token: said next to the field, the name kept, nothing written
    admin_page.fill("input[name=name]", "Бот магазина")
    admin_page.fill("input[name=token]", "not-a-token")
    admin_page.fill("input[name=api_base_url]", telegram_api.base_url)
    admin_page.uncheck(f"input[name=team_ids][value='{sales.teams[0].id}']")
    admin_page.click("button[value=save]")
    admin_page.wait_for_selector("#error-token")
    assert "BotFather" in admin_page.inner_text("#error-token")
    assert admin_page.input_value("input[name=name]") == "Бот магазина"
    assert admin_page.input_value("input[name=token]") == ""  # a secret is never sent back
    shot(admin_page, "settings-telegram-error")

    admin_page.fill("input[name=token]", "555555:shop-bot-token")
    admin_page.click("button[value=save]")
    admin_page.wait_for_selector("#created")
    assert admin_page.inner_text("#bot-name") == "@threadline_test_bot"  # getMe answered
    assert admin_page.inner_text("#secret-token") == "555555:shop-bot-token"  # shown once
    _clean(admin_page, "telegram-created")

    # Anna's open inbox: the new channel appears and its first message arrives, no reload
    anna.wait_for_selector(".views [data-view^='channel:']:has-text('Бот магазина')", timeout=10_000)
    telegram_api.push_update(telegram_update(9100, 8100, "Здравствуйте, бот!", first_name="Вера"))
    anna.wait_for_selector(".row:has-text('Здравствуйте, бот!')", timeout=20_000)
    shot(anna, "settings-agent-got-new-channel-message")

    admin_page.click(".settings-nav a[href='/settings/channels']")
    row = admin_page.locator("#channels tr:has-text('Бот магазина')")
    row.wait_for()
    assert row.locator("td").nth(4).inner_text() == "1"  # one message in
    _clean(admin_page, "channels")

    # invite Piotr to Sales; the link sets his password; he sees only Sales' channels
    admin_page.click(".settings-nav a[href='/settings/agents']")
    admin_page.fill("#agent-invite input[name=email]", "not an email")
    admin_page.fill("#agent-invite input[name=name]", "Piotr Żółw")
    admin_page.click("#agent-invite button[type=submit]")
    admin_page.wait_for_selector("#agent-invite .field-error")
    assert admin_page.input_value("#agent-invite input[name=name]") == "Piotr Żółw"
    admin_page.fill("#agent-invite input[name=email]", "piotr@example.com")
    admin_page.check(f"#agent-invite input[name=team_ids][value='{sales.teams[0].id}']")
    admin_page.click("#agent-invite button[type=submit]")
    admin_page.wait_for_selector("#invite-url")
    invite_url = admin_page.inner_text("#invite-url")
    _clean(admin_page, "agents-invited")

    context = browser.new_context(viewport={"width": 1440, "height": 860}, locale="pl-PL")
    piotr = context.new_page()
    piotr.goto(invite_url.replace("http://localhost", server.url))
    piotr.fill("input[name=password]", "hasło-piotra-1")
    piotr.fill("input[name=confirm]", "hasło-piotra-1")
    piotr.click("button[type=submit]")
    piotr.wait_for_selector("body[data-live=yes]")  # signed in by the link
    context.close()
    h.reset_login_limit()
    piotr = sign_in(browser, server, "piotr@example.com", "hasło-piotra-1")  # the password works
    views = piotr.inner_text(".views")
    assert "Sales bot" in views and "Support bot" not in views and "Бот магазина" not in views
    shot(piotr, "settings-invited-agent-inbox")
    from app.domain.agents import find_agent

    piotr_agent = find_agent("piotr@example.com")
    token = h.token(piotr_agent)
    auth = {"Authorization": f"Bearer {token}"}
    assert requests.get(f"{server.url}/api/v1/conversations", headers=auth, timeout=10).status_code == 200

    # deactivate: his socket ends, his token is refused
    admin_page.click(".settings-nav a[href='/settings/agents']")
    admin_page.click("details[data-agent='piotr@example.com'] summary")
    admin_page.once("dialog", lambda dialog: dialog.accept())
    admin_page.click("details[data-agent='piotr@example.com'] button[value=deactivate]")
    admin_page.wait_for_selector(".flash.ok")
    # his open inbox loses its socket: the page goes offline and, its session ended too, to
    # the sign-in page
    piotr.wait_for_selector("body[data-live=no], form.login", timeout=10_000)
    piotr.wait_for_url(f"{server.url}/login*", timeout=15_000)
    assert requests.get(f"{server.url}/api/v1/conversations", headers=auth, timeout=10).status_code == 401
    shot(piotr, "settings-deactivated-agent-dropped")

    # the audit log tells it; the pages speak Russian
    admin_page.click(".settings-nav a[href='/settings/audit']")
    audit = admin_page.inner_text("#audit")
    for action in ("channel.create", "agent.invite", "agent.deactivate"):
        assert action in audit
    assert "555555:shop-bot-token" not in admin_page.content()
    _clean(admin_page, "audit")
    for section in ("teams", "tokens", "webhooks", "crm"):
        admin_page.click(f".settings-nav a[href='/settings/{section}']")
        admin_page.wait_for_url(f"{server.url}/settings/{section}")
        _clean(admin_page, section)
    russian = browser.new_context(viewport={"width": 1440, "height": 860}, locale="ru-RU")
    ru = russian.new_page()
    ru.goto(f"{server.url}/login")
    ru.fill("input[name=email]", "admin@example.com")
    ru.fill("input[name=password]", ADMIN_PASSWORD)
    ru.click("button[type=submit]")
    ru.wait_for_selector("body[data-ready=yes]")
    ru.goto(f"{server.url}/settings/channels")
    nav = ru.inner_text(".settings-nav")
    assert "Каналы" in nav and "Агенты" in nav and "Channels" not in nav
    assert "Добавить:" in ru.inner_text("main")
    _clean(ru, "channels-ru")
    russian.close()
    assert "555555:shop-bot-token" not in server.log()  # secrets never in the server's log
