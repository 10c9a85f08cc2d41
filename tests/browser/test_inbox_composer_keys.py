"""The inbox's working habits in a real browser: drafts across a reload, the "look first"
collision guard, keyboard shortcuts, opt-in desktop notifications and `/shortcut` canned
replies with their variables filled in."""
from __future__ import annotations

import json

import pytest
from playwright.sync_api import expect
import requests
from sqlalchemy import select

from app.infra.models import Agent, CannedReply, Message
from app.infra.state import db
from tests.browser.screen import wait_js
from tests import inbox_helpers as h
from tests.inbox_helpers import telegram_post
from tests.conftest import release_db, wait_until
from tests.inbox_helpers import shot, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SUPPORT_SECRET = "support-secret"


def _open(page, name: str) -> None:
    page.click(f".row:has-text('{name}')")
    page.wait_for_selector(f".thread-head .customer-name:text-is('{name}')")
    page.wait_for_selector("#composer-text")
    # the composer settles its mode (and draft) on the next tick: let the page's event loop
    # run that tick (a condition, not a guess at a duration)
    page.evaluate("() => new Promise((resolve) => setTimeout(resolve, 0))")


def _agent(email: str) -> Agent:
    agent = db.session.scalar(select(Agent).where(Agent.email == email))
    db.session.commit()
    return agent


@pytest.mark.parametrize("backend", ["sqlite"])
def test_drafts_survive_a_reload(backend, world, browser):  # noqa: F811
    server = world["server"]
    page = sign_in(browser, server, "anna@example.com")
    telegram_post(server, world["support"], SUPPORT_SECRET, 7401, 4401, "Можно поменять адрес?")
    page.wait_for_selector(".row:has-text('Можно поменять адрес?')", timeout=10_000)
    _open(page, "Ольга")
    page.type("#composer-text", "Да, напишите новый адрес")
    page.click("#composer .tabs [data-mode=note]")
    page.type("#composer-text", "Уточнить у склада")
    page.reload()  # the address bar holds /conversations/<id>: the page opens it again
    page.wait_for_selector("body[data-ready=yes]")
    page.wait_for_selector(".thread-head .customer-name:text-is('Ольга')")
    expect(page.locator("#composer-text")).not_to_have_value("", timeout=5_000)
    assert page.input_value("#composer-text") == "Да, напишите новый адрес"
    page.click("#composer .tabs [data-mode=note]")
    assert page.input_value("#composer-text") == "Уточнить у склада"
    page.click("#composer .tabs [data-mode=reply]")
    assert page.input_value("#composer-text") == "Да, напишите новый адрес"
    shot(page, "inbox-draft-after-reload")
    # moving to another conversation and back keeps it too; sending clears it
    telegram_post(server, world["support"], SUPPORT_SECRET, 7402, 4402, "Другой вопрос", "Пётр")
    page.wait_for_selector(".row:has-text('Другой вопрос')", timeout=10_000)
    _open(page, "Пётр")
    assert page.input_value("#composer-text") == ""
    _open(page, "Ольга")
    assert page.input_value("#composer-text") == "Да, напишите новый адрес"
    page.press("#composer-text", "Control+Enter")
    page.wait_for_selector(".msg.out:has-text('Да, напишите новый адрес')", timeout=10_000)
    page.reload()
    page.wait_for_selector("body[data-ready=yes]")
    page.wait_for_selector(".msg.out:has-text('Да, напишите новый адрес')")
    # the note's draft is restored (it stays); once it is, the reply's would have been too
    page.click("#composer .tabs [data-mode=note]")
    page.wait_for_function("document.getElementById('composer-text').value === 'Уточнить у склада'",
                           timeout=5_000)
    page.click("#composer .tabs [data-mode=reply]")
    assert page.input_value("#composer-text") == ""


@pytest.mark.parametrize("backend", ["sqlite"])
def test_collision_asks_to_look_first(backend, world, browser):  # noqa: F811
    server, telegram = world["server"], world["telegram"]
    boris_token = h.token(_agent("boris@example.com"))
    page = sign_in(browser, server, "anna@example.com")
    telegram_post(server, world["support"], SUPPORT_SECRET, 7501, 4501, "Когда доставка?")
    page.wait_for_selector(".row:has-text('Когда доставка?')", timeout=10_000)
    _open(page, "Ольга")
    page.type("#composer-text", "Завтра до обеда")
    # the customer writes again while Anna types
    telegram_post(server, world["support"], SUPPORT_SECRET, 7502, 4501, "Ой, а можно вечером?")
    page.wait_for_selector(".msg.in:has-text('Ой, а можно вечером?')", timeout=10_000)
    page.press("#composer-text", "Control+Enter")
    page.wait_for_selector("#collision:not([hidden])")
    assert "Look at them first" in page.inner_text("#collision")
    assert page.input_value("#composer-text") == "Завтра до обеда"
    shot(page, "inbox-collision-warning")
    page.press("#composer-text", "Control+Enter")  # looked: the second press sends
    page.wait_for_selector(".msg.out:has-text('Завтра до обеда')", timeout=10_000)
    page.wait_for_selector("#collision", state="hidden")
    # the reply the page shows is committed; one the first press had sent would have been
    # committed (and sent) before it
    conversation_id = page.evaluate("window.threadline.state.current.id")

    def outbound(text):
        listed = requests.get(f"{server.url}/api/v1/conversations/{conversation_id}/messages",
                              headers={"Authorization": f"Bearer {boris_token}"}, timeout=10)
        return [m for m in listed.json()["items"] if m["direction"] == "out" and m["text"] == text]

    assert len(outbound("Завтра до обеда")) == 1
    (sent,) = telegram.wait_for("sendMessage", 1, timeout=10)
    assert sent.params["text"] == "Завтра до обеда"
    # another agent's reply while Anna types asks her to look first as well
    page.type("#composer-text", "Вечером тоже можно")
    answer = requests.post(f"{server.url}/api/v1/conversations/{conversation_id}/messages",
                           json={"text": "Курьер приедет в 19:00"},
                           headers={"Authorization": f"Bearer {boris_token}"}, timeout=10)
    assert answer.status_code == 201, answer.text
    page.wait_for_selector(".msg.out:has-text('Курьер приедет в 19:00')", timeout=10_000)
    page.press("#composer-text", "Control+Enter")
    page.wait_for_selector("#collision:not([hidden])")
    page.press("#composer-text", "Control+Enter")
    page.wait_for_selector(".msg.out:has-text('Вечером тоже можно')", timeout=10_000)
    assert len(outbound("Вечером тоже можно")) == 1  # the refused press sent nothing
    shot(page, "inbox-collision-sent")


@pytest.mark.parametrize("backend", ["sqlite"])
def test_keyboard_shortcuts(backend, world, browser):  # noqa: F811
    server = world["server"]
    page = sign_in(browser, server, "anna@example.com")
    for n, name in enumerate(["Алиса", "Виктор", "Галина"]):  # the newest is listed first
        telegram_post(server, world["support"], SUPPORT_SECRET, 7601 + n, 4601 + n, f"Вопрос от {name}", name)
    page.wait_for_selector(".row:has-text('Вопрос от Алиса')", timeout=10_000)
    page.wait_for_selector(".row:has-text('Вопрос от Галина')", timeout=10_000)
    assert page.locator(".row").count() == 3

    def current() -> str:
        expect(page.locator(".row.active")).to_have_count(1)
        return page.inner_text(".row.active .customer")

    page.keyboard.press("j")
    page.wait_for_selector(".thread-head .customer-name:text-is('Галина')")
    assert current() == "Галина"
    page.keyboard.press("j")
    page.wait_for_selector(".thread-head .customer-name:text-is('Виктор')")
    assert current() == "Виктор"
    page.keyboard.press("j")
    page.wait_for_selector(".thread-head .customer-name:text-is('Алиса')")
    assert current() == "Алиса"
    page.keyboard.press("k")
    page.wait_for_selector(".thread-head .customer-name:text-is('Виктор')")
    assert current() == "Виктор"
    # r: the reply composer has the focus
    page.keyboard.press("r")
    assert page.evaluate("document.activeElement.id") == "composer-text"
    assert not page.locator("#composer").evaluate("f => f.classList.contains('note-mode')")
    assert page.input_value("#composer-text") == ""  # the key itself is not typed
    page.keyboard.press("Escape")  # leaves the composer
    assert page.evaluate("document.activeElement.id") != "composer-text"
    # n: note mode, focused
    page.keyboard.press("n")
    assert page.evaluate("document.activeElement.id") == "composer-text"
    page.wait_for_selector("#composer.note-mode .tabs [data-mode=note].active")
    assert page.input_value("#composer-text") == ""
    page.keyboard.type("j k e")  # typed into the note, not taken as shortcuts
    assert page.input_value("#composer-text") == "j k e"
    assert page.inner_text(".thread-head .customer-name") == "Виктор"
    page.keyboard.press("Escape")
    # e: resolved (said, with Undo), it leaves the "All open" list and the next one opens
    page.keyboard.press("e")
    page.wait_for_selector("#toast:has-text('Conversation resolved.') .toast-action", timeout=10_000)
    page.wait_for_selector(".row:has-text('Вопрос от Виктор')", state="detached", timeout=10_000)
    wait_js(page, "window.threadline.state.current.conversation.status === 'open'"
                           " && document.querySelector('.thread-head .customer-name').textContent !== 'Виктор'")
    assert page.locator(".row").count() == 2
    # /: the search box, without a "/" typed into it
    page.keyboard.press("/")
    assert page.evaluate("document.activeElement.id") == "search"
    assert page.input_value("#search") == ""
    page.keyboard.type("Галина")
    page.wait_for_selector("#search-results:not([hidden]) mark", timeout=10_000)
    shot(page, "inbox-keyboard")


NOTIFICATION_SPY = """
(() => {
  const Real = window.Notification;
  window.__notifications = [];
  function Spy(title, options) {
    window.__notifications.push({ title, body: options && options.body, tag: options && options.tag });
    try { return new Real(title, options); } catch (e) { return {}; }
  }
  Object.defineProperty(Spy, "permission", { get: () => Real.permission });
  Spy.requestPermission = (...args) => Real.requestPermission(...args);
  window.Notification = Spy;
})();
"""


@pytest.mark.parametrize("backend", ["sqlite"])
def test_notifications_for_my_conversations_only(backend, world, browser):  # noqa: F811
    server = world["server"]
    anna = _agent("anna@example.com")
    mine = h.conversation_of(h.inbound(world["support"], 4701, "Первое сообщение", "Мария"))
    h.inbound(world["support"], 4702, "Чужой вопрос", "Николай")
    mine.assignee_id = anna.id
    # h.inbound expired every object: load what the test reads later, then let go of the
    # database (an expired attribute read later would hold SQLite's write lock)
    db.session.refresh(world["support"])
    mine_id = mine.id
    release_db()
    page = sign_in(browser, server, "anna@example.com")
    page.context.grant_permissions(["notifications"], origin=server.url)
    page.context.add_init_script(NOTIFICATION_SPY)
    page.reload()
    page.wait_for_selector("body[data-live=yes]")
    assert page.evaluate("Notification.permission") == "granted"
    page.wait_for_selector(".row:has-text('Мария') .assignee:text-is('Anna Agent')")
    # off until the agent opts in
    telegram_post(server, world["support"], SUPPORT_SECRET, 7701, 4701, "До включения", "Мария")
    page.wait_for_selector(".row:has-text('До включения')", timeout=10_000)
    # (a notification for it would be first in the list checked below)
    page.click("#notify")
    page.wait_for_selector("#notify:has-text('Notifications on')")
    assert page.evaluate("localStorage.getItem('tl-notify')") == "1"
    # one not assigned to me, then one assigned to me
    telegram_post(server, world["support"], SUPPORT_SECRET, 7702, 4702, "Николай снова пишет", "Николай")
    page.wait_for_selector(".row:has-text('Николай снова пишет')", timeout=10_000)
    telegram_post(server, world["support"], SUPPORT_SECRET, 7703, 4701, "Мария ждёт ответа", "Мария")
    page.wait_for_selector(".row:has-text('Мария ждёт ответа')", timeout=10_000)
    # Мария's is the last message: once its notification is there, any for the earlier ones
    # would be there before it
    wait_until(lambda: page.evaluate(
        "window.__notifications.some((n) => n.body === 'Мария ждёт ответа')"), timeout=10,
        message="a desktop notification")
    calls = page.evaluate("window.__notifications")
    # the server's notification of new messages folds them while unread ("До включения" came
    # before the opt-in, so no desktop notification for it, but it is counted)
    assert calls == [{"title": "2 new messages from Мария", "body": "Мария ждёт ответа",
                      "tag": f"tl-{mine_id}"}], json.dumps(calls, ensure_ascii=False)
    # the opt-in is remembered across a reload
    page.reload()
    page.wait_for_selector("body[data-live=yes]")
    page.wait_for_selector("#notify:has-text('Notifications on')")
    shot(page, "inbox-notifications")


@pytest.mark.parametrize("backend", ["sqlite"])
def test_canned_reply_by_shortcut_fills_variables(backend, world, browser):  # noqa: F811
    server, telegram = world["server"], world["telegram"]
    db.session.add_all([
        CannedReply(shortcut="hello", title="Greeting",
                    text="Здравствуйте, {{customer.first_name}}! Меня зовут {{ agent.name }}."),
        CannedReply(shortcut="спасибо", title="Thanks", text="Спасибо, {{customer.name}}!"),
    ])
    db.session.commit()
    release_db()
    page = sign_in(browser, server, "anna@example.com")
    telegram_post(server, world["support"], SUPPORT_SECRET, 7801, 4801, "Есть вопрос", "Ольга Петрова")
    page.wait_for_selector(".row:has-text('Есть вопрос')", timeout=10_000)
    _open(page, "Ольга Петрова")
    page.type("#composer-text", "Добрый день. /he")
    page.wait_for_selector("#composer .suggestions:not([hidden]) [data-shortcut=hello]")
    assert page.locator("#composer .suggestions [data-shortcut]").count() == 1  # not /спасибо
    shot(page, "inbox-canned-suggestions")
    page.press("#composer-text", "Tab")
    expected = "Добрый день. Здравствуйте, Ольга! Меня зовут Anna Agent."
    assert page.input_value("#composer-text") == expected
    assert page.locator("#composer .suggestions").is_hidden()
    # a Cyrillic shortcut, picked by a click; the full name fills {{customer.name}}
    page.type("#composer-text", " /спа")
    page.click("#composer .suggestions [data-shortcut='спасибо']")
    expected += " Спасибо, Ольга Петрова!"
    assert page.input_value("#composer-text") == expected
    page.press("#composer-text", "Control+Enter")
    page.wait_for_selector(f".msg.out:has-text('{expected}')", timeout=10_000)
    (sent,) = telegram.wait_for("sendMessage", 1, timeout=10)
    assert sent.params["text"] == expected
    shot(page, "inbox-canned-sent")
    # the reply carries the canned reply used (the last one inserted), for the reports
    release_db()
    message = db.session.scalars(select(Message).where(Message.direction == "out")).one()
    thanks = db.session.scalars(select(CannedReply).where(CannedReply.shortcut == "спасибо")).one()
    assert message.canned_reply_id == thanks.id
