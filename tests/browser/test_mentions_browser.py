"""@mentions in notes and the notification centre in a real browser against a real server:
the @ autocomplete finds Cyrillic and Polish names, the mentioned agent's bell rises live
(the author's does not), a clickable toast and the bell's list open the conversation, the
Mentions view lists unread mentions first and reads them, the tab title carries the count,
the options are saved, and an agent who cannot see the channel is named to the author."""
from __future__ import annotations

import time

import pytest

from tests import inbox_helpers as h
from tests.browser.screen import DESKTOP, PHONE, check_axe, check_screen, wait_js
from tests.conftest import release_db
from tests.inbox_helpers import shot, sign_in, telegram_post

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def team(ctx, admin, telegram_api, start_server):
    support, sales = h.channels(telegram_api)
    h.agent("anna@example.com", "Анна Соколова", ["Support"])
    h.agent("lukasz@example.com", "Łukasz Zieliński", ["Support"])
    h.agent("boris@example.com", "Boris Agent", ["Support"])
    h.agent("sam@example.com", "Sam Sales", ["Sales"])
    h.reset_login_limit()
    release_db()
    return {"server": start_server(), "support": support, "sales": sales}


def open_row(page, name):
    page.click(f".row:has-text('{name}')")
    wait_js(page, "(name) => { const c = window.threadline.state.current; "
                  "return c && c.conversation.customer.name === name && document.getElementById('composer-text'); }",
            name)
    page.wait_for_timeout(50)   # the composer's own first tick (its mode) is done


def write_note(page, before, query, expect, after=""):
    """Type a note in Note mode: `before`, then @query, pick with Enter, then `after`."""
    page.click("#composer .tabs [data-mode=note]")
    page.fill("#composer-text", before)
    page.type("#composer-text", f"@{query}")
    page.wait_for_selector(f"#mention-list .mention-option.active:has-text('{expect}')")
    page.keyboard.press("Enter")
    if after:
        page.type("#composer-text", after)


@pytest.mark.parametrize("backend", ["sqlite"])
def test_mentions_reach_the_bell_live_and_open_the_conversation(backend, team, browser):
    server, support = team["server"], team["support"]
    boris = sign_in(browser, server, "boris@example.com")
    anna = sign_in(browser, server, "anna@example.com")
    telegram_post(server, support, "support-secret", 8101, 6101, "Где мой заказ?", "Пётр")
    telegram_post(server, support, "support-secret", 8102, 6102, "Хочу вернуть товар", "Вера")
    for page in (boris, anna):
        page.wait_for_selector(".row:has-text('Пётр')")
        page.wait_for_selector(".row:has-text('Вера')")
    open_row(boris, "Пётр")
    peter = boris.evaluate("window.threadline.state.current.id")

    # the autocomplete: Cyrillic and Polish names, with or without the marks; arrows move
    boris.click("#composer .tabs [data-mode=note]")
    boris.type("#composer-text", "@łuk")
    boris.wait_for_selector("#mention-list .mention-option:has-text('Łukasz Zieliński')")
    boris.fill("#composer-text", "")
    boris.type("#composer-text", "@luk")
    assert boris.locator("#mention-list .mention-option").all_inner_texts()[0].startswith("Łukasz Zieliński")
    boris.fill("#composer-text", "")
    boris.type("#composer-text", "@")
    names = boris.locator("#mention-list .mention-option .mention-name").all_inner_texts()
    assert "Анна Соколова" in names and "Boris Agent" not in names  # not oneself
    boris.keyboard.press("ArrowDown")
    second = boris.locator("#mention-list .mention-option.active .mention-name").inner_text()
    assert second == names[1]
    boris.keyboard.press("Escape")
    assert boris.locator("#mention-list").is_hidden()
    write_note(boris, "Посмотри, ", "ан", "Анна Соколова", "пожалуйста, и ")
    assert boris.input_value("#composer-text") == "Посмотри, @Анна пожалуйста, и "
    # Sam is in Sales: mentioned, not told; the author is told so
    boris.type("#composer-text", "@sa")
    boris.wait_for_selector("#mention-list .mention-option:has-text('Sam Sales')")
    boris.click("#mention-list .mention-option:has-text('Sam Sales')")  # the mouse picks too
    started = time.monotonic()
    boris.click("#composer-send")
    boris.wait_for_selector(".msg.note:has-text('Посмотри, @Анна')")
    boris.wait_for_selector("#toast:has-text('Sam Sales')")
    assert "Анна" not in boris.inner_text("#toast")
    check_screen(boris)

    # Anna: her bell rises live, the title carries it, the Mentions view counts it
    anna.wait_for_selector("#bell-count:text('1')")
    print(f"mention to bell: {time.monotonic() - started:.2f} s (includes the checks above)")
    anna.wait_for_selector("[data-view=mentions] .count:text('1')")
    assert anna.title().startswith("(1) ")
    assert boris.locator("#bell-count").is_hidden()   # to that agent only
    # the toast is clickable and opens the conversation
    anna.click("#toast .toast-open")
    wait_js(anna, f"() => window.threadline.state.current && window.threadline.state.current.id === {peter}")
    anna.wait_for_selector("#bell-count", state="hidden")
    assert not anna.title().startswith("(")
    # the note names her: marked in the thread, the handles too
    anna.wait_for_selector(".msg.note.mentions-me .mention:text-is('@Анна')")
    assert anna.locator(".msg.note.mentions-me .mention").all_inner_texts() == ["@Анна", "@Sam"]

    # a second mention elsewhere: through the bell's list
    open_row(anna, "Вера")   # she looks at Vera's; the mention comes on Пётр's conversation
    write_note(boris, "Ещё вопрос по возврату, ", "ан", "Анна Соколова")
    boris.click("#composer-send")
    anna.wait_for_selector("#bell-count:text('1')")
    anna.click("#bell")
    anna.wait_for_selector("#bell-panel .bell-item.unread:has-text('Boris Agent')")
    check_screen(anna)
    check_axe(anna, "inbox with the notification centre open")
    shot(anna, "notification-centre")
    anna.set_viewport_size(PHONE)
    box = anna.locator("#bell-panel").bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], box
    check_axe(anna, "the notification centre at 390 px")
    shot(anna, "notification-centre-phone")
    anna.set_viewport_size(DESKTOP)
    anna.click(f"#bell-panel .bell-item.unread[data-conversation='{peter}']")
    wait_js(anna, f"() => window.threadline.state.current.id === {peter}")
    anna.wait_for_selector("#bell-count", state="hidden")
    assert anna.locator("#bell-panel").is_hidden()


@pytest.mark.parametrize("backend", ["sqlite"])
def test_mentions_view_lists_unread_first_and_reads_them(backend, team, browser):
    server, support = team["server"], team["support"]
    boris = sign_in(browser, server, "boris@example.com")
    telegram_post(server, support, "support-secret", 8201, 6201, "Первый клиент", "Олег")
    telegram_post(server, support, "support-secret", 8202, 6202, "Второй клиент", "Ирина")
    boris.wait_for_selector(".row:has-text('Ирина')")
    open_row(boris, "Олег")
    write_note(boris, "", "ан", "Анна Соколова", "старое")
    boris.click("#composer-send")
    boris.wait_for_selector(".msg.note:has-text('старое')")
    anna = sign_in(browser, server, "anna@example.com")
    anna.wait_for_selector("[data-view=mentions] .count:text('1')")
    anna.click("[data-view=mentions]")
    anna.wait_for_selector("#list .row:has-text('Олег') .mention-mark")
    # opening the view read them
    anna.wait_for_selector("[data-view=mentions] .count.zero", state="attached")
    anna.wait_for_selector("#bell-count", state="hidden")
    # a newer mention elsewhere while the view is open: listed again, unread first
    open_row(boris, "Ирина")
    write_note(boris, "", "ан", "Анна Соколова", "новое")
    boris.click("#composer-send")
    anna.wait_for_selector("#list .row:has-text('Ирина') .mention-mark")
    rows = anna.locator("#list .row .customer").all_inner_texts()
    assert rows[:2] == ["Ирина", "Олег"]
    assert anna.locator("#list .row:has-text('Олег') .mention-mark").count() == 0
    check_screen(anna)
    shot(anna, "mentions-view")


@pytest.mark.parametrize("backend", ["sqlite"])
def test_assignment_notifies_and_the_options_are_saved(backend, team, browser):
    server, support = team["server"], team["support"]
    boris = sign_in(browser, server, "boris@example.com")
    anna = sign_in(browser, server, "anna@example.com")
    # Anna turns the tab-title count off and the sound on: saved for her
    anna.click("#bell")
    anna.uncheck("#bell-panel [data-pref=title_badge]")
    anna.check("#bell-panel [data-pref=sound]")
    wait_js(anna, "() => window.threadline.bell.prefs.sound === true && window.threadline.bell.prefs.title_badge === false")
    # saved on the server before the reload below (under load the PUT may still be on its way)
    assert anna.evaluate("""async () => {
        for (let i = 0; i < 150; i++) {
            const r = await fetch("/api/v1/notifications/settings", { credentials: "same-origin" });
            if (r.ok) { const j = await r.json(); if (j.sound === true && j.title_badge === false) return true; }
            await new Promise((done) => setTimeout(done, 100));
        }
        return false; }""")
    anna.keyboard.press("Escape")
    telegram_post(server, support, "support-secret", 8301, 6301, "Нужна помощь", "Глеб")
    boris.wait_for_selector(".row:has-text('Глеб')")
    open_row(boris, "Глеб")
    anna_id = anna.evaluate("window.threadline.state.me.id")
    boris.select_option("select[data-action=assignee]", str(anna_id))
    anna.wait_for_selector("#bell-count:text('1')")
    anna.wait_for_selector("#toast:has-text('Boris Agent')")
    assert not anna.title().startswith("(")   # her choice: no count in the title
    anna.reload()
    anna.wait_for_selector("body[data-ready=yes]")
    anna.click("#bell")
    anna.wait_for_selector("#bell-panel [data-pref=sound]:checked")
    assert not anna.is_checked("#bell-panel [data-pref=title_badge]")
    # a new customer message in her conversation: one more; "mark all read" clears them
    telegram_post(server, support, "support-secret", 8302, 6301, "Алло, есть кто?", "Глеб")
    anna.wait_for_selector("#bell-count:text('2')")
    anna.wait_for_selector("#bell-panel .bell-item:has-text('Алло, есть кто?')")
    anna.click("#bell-read-all")
    anna.wait_for_selector("#bell-count", state="hidden")
    assert anna.locator("#bell-panel .bell-item.unread").count() == 0
