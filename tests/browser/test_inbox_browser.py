"""The live inbox in a real browser (Debian's chromium through Playwright) against a real
`threadline serve`: two agents, live list and thread, presence, notes, access, catch-up."""
from __future__ import annotations

import pytest

from tests.inbox_helpers import shot, sign_in, telegram_post

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.mark.parametrize("backend", ["sqlite"])
def test_two_agents_work_one_conversation_live(backend, world, browser):
    server, support = world["server"], world["support"]
    a = sign_in(browser, server, "anna@example.com")
    b = sign_in(browser, server, "boris@example.com")
    telegram_post(server, support, "support-secret", 7001, 4242, "Здравствуйте! Где мой заказ?")
    for page in (a, b):  # the new conversation shows up in both lists without reload
        page.wait_for_selector(".row:has-text('Здравствуйте! Где мой заказ?')", timeout=10_000)
        page.wait_for_selector("[data-view=open] .count:text('1')", timeout=10_000)
    a.click(".row:has-text('Ольга')")
    b.click(".row:has-text('Ольга')")
    b.wait_for_selector("#presence .viewer:has-text('Anna Agent')", timeout=10_000)
    # A types: B sees it; then A replies with Ctrl+Enter
    a.fill("#composer-text", "Добрый день! Заказ уже в пути.")
    a.type("#composer-text", " 🙂")
    b.wait_for_selector("#presence .viewer.typing:has-text('Anna Agent')", timeout=10_000)
    a.press("#composer-text", "Control+Enter")
    b.wait_for_selector(".msg.out:has-text('Заказ уже в пути')", timeout=10_000)
    b.wait_for_selector(".msg.out [data-status=sent]", timeout=15_000)
    sent = world["telegram"].wait_for("sendMessage", 1, timeout=10)
    assert sent[0].params["text"] == "Добрый день! Заказ уже в пути. 🙂"
    # B writes an internal note: shown to A as a note, never sent to the customer
    b.click("#composer .tabs [data-mode=note]")
    b.fill("#composer-text", "Проверить трек-номер у курьера")
    b.click("#composer-send")
    a.wait_for_selector(".msg.note:has-text('Проверить трек-номер')", timeout=10_000)
    assert len(world["telegram"].calls("sendMessage")) == 1
    # actions: A resolves with the keyboard; B's list drops it live
    a.click(".thread-head .customer-name")
    a.keyboard.press("e")
    b.wait_for_selector("[data-action=reopen]", timeout=10_000)
    b.wait_for_selector("#list .empty", timeout=10_000)
    shot(a, "inbox-two-agents-a")
    shot(b, "inbox-two-agents-b")


@pytest.mark.parametrize("backend", ["sqlite"])
def test_agent_without_access_sees_nothing_of_the_channel(backend, world, browser):
    server = world["server"]
    sam = sign_in(browser, server, "sam@example.com")
    anna = sign_in(browser, server, "anna@example.com")
    telegram_post(server, world["support"], "support-secret", 7101, 5151, "Support only question")
    telegram_post(server, world["sales"], "sales-secret", 7102, 5252, "Sales only question", "Grace")
    sam.wait_for_selector(".row:has-text('Sales only question')", timeout=10_000)
    anna.wait_for_selector(".row:has-text('Support only question')", timeout=10_000)
    assert sam.locator(".row:has-text('Support only question')").count() == 0
    assert anna.locator(".row:has-text('Sales only question')").count() == 0
    hidden_id = int(anna.evaluate("window.threadline.state.list[0].id"))
    # the page, the API and a Socket.IO room all refuse
    assert sam.goto(f"{server.url}/conversations/{hidden_id}").status == 404
    sam.goto(server.url)
    sam.wait_for_selector("body[data-live=yes]")
    status = sam.evaluate(f"fetch('/api/v1/conversations/{hidden_id}').then(r => r.status)")
    assert status == 404
    answer = sam.evaluate(f"""new Promise(done => window.threadline.socket.emit('view',
        {{conversation_id: {hidden_id}}}, done))""")
    assert answer == {"ok": False, "error": "conversation not found"}
    sam.fill("#search", "Support")
    sam.wait_for_selector("#search-results:not([hidden])")
    assert "Support only question" not in sam.inner_text("#search-results")
    shot(sam, "inbox-no-access")


@pytest.mark.parametrize("backend", ["sqlite"])
def test_page_catches_up_after_the_connection_drops(backend, world, browser):
    server = world["server"]
    page = sign_in(browser, server, "anna@example.com")
    telegram_post(server, world["support"], "support-secret", 7201, 6161, "Before the drop")
    page.wait_for_selector(".row:has-text('Before the drop')", timeout=10_000)
    page.evaluate("window.threadline.socket.disconnect()")
    page.wait_for_selector("body[data-live=no]")
    telegram_post(server, world["support"], "support-secret", 7202, 6262, "While offline", "Pavel")
    telegram_post(server, world["support"], "support-secret", 7203, 6161, "Second while offline")
    page.wait_for_timeout(500)
    assert page.locator(".row:has-text('While offline')").count() == 0
    page.evaluate("window.threadline.socket.connect()")
    page.wait_for_selector(".row:has-text('While offline')", timeout=10_000)
    page.wait_for_selector(".row:has-text('Second while offline')", timeout=10_000)
    assert page.locator(".row").count() == 2
    # search finds the message, highlighted
    page.fill("#search", "offline")
    page.wait_for_selector("#search-results mark:text-is('offline')", timeout=10_000)
    shot(page, "inbox-catch-up")
