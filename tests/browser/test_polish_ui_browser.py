"""The inbox in Polish, for an agent who chose Polish while the browser says English: no
English string of the catalog left on screen (text, placeholders, labels, titles), nothing
stray (`null`, `undefined`), dates in Polish, the status select in status words; at 1440
and 390 px."""
from __future__ import annotations

import re

import pytest

from app.infra.state import db
from tests import inbox_helpers as h
from tests.conftest import ROOT, release_db
from tests.inbox_helpers import shot, sign_in, telegram_post

pytestmark = [pytest.mark.browser, pytest.mark.slow]

STRAY = re.compile(r"\b(null|undefined|NaN)\b|\[object Object\]")
POLISH_MONTHS = ("sty", "lut", "mar", "kwi", "maj", "cze", "lip", "sie", "wrz", "paź", "lis", "gru")


def _english_only() -> set[str]:
    """The catalog's English strings whose Polish translation differs (so seeing the English
    one on a Polish page means it was left untranslated)."""
    from babel.messages.pofile import read_po

    with open(ROOT / "app/translations/pl/LC_MESSAGES/messages.po", "rb") as f:
        catalog = read_po(f)
    return {m.id for m in catalog if m.id and isinstance(m.id, str) and m.string
            and m.string != m.id and len(m.id) > 2}


def _screen_texts(page) -> list[str]:
    return page.evaluate("""() => {
        const out = [];
        const visible = (n) => { const r = n.getBoundingClientRect(); return r.width > 0 && r.height > 0; };
        const walk = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
        while (walk.nextNode()) {
            const n = walk.currentNode, t = n.textContent.trim();
            if (t && n.parentElement && visible(n.parentElement) &&
                !n.parentElement.closest('script,style,.msg .body,.msg .text,.snippet,.preview,#i18n')) out.push(t);
        }
        for (const n of document.querySelectorAll('[placeholder],[title],[aria-label]')) {
            for (const a of ['placeholder', 'title', 'aria-label']) {
                const v = n.getAttribute(a); if (v) out.push(v.trim());
            }
        }
        // a language picker names each language in itself (English, Русский, Polski)
        for (const o of document.querySelectorAll('select:not([name=locale]) option')) out.push(o.textContent.trim());
        return out;
    }""")


def _check(page, english: set[str], placeholders: bool = True) -> None:
    texts = _screen_texts(page)
    strays = [t for t in texts if STRAY.search(t)]
    assert strays == [], strays
    # a whole text, or a text before ":", "…" or " (": an untranslated catalog string
    left = sorted({t for t in texts if t in english or t.rstrip("…:") in english})
    assert left == [], left
    if not placeholders:
        return
    # no placeholder cut off: each one fits its box (the text measured in the box's font)
    cut = page.evaluate("""() => {
        const canvas = document.createElement('canvas').getContext('2d');
        const out = [];
        for (const n of document.querySelectorAll('input[placeholder], textarea[placeholder]')) {
            const r = n.getBoundingClientRect();
            if (!r.width || !n.placeholder) continue;
            const s = getComputedStyle(n);
            canvas.font = `${s.fontStyle} ${s.fontWeight} ${s.fontSize} ${s.fontFamily}`;
            const room = n.clientWidth - parseFloat(s.paddingLeft) - parseFloat(s.paddingRight);
            const lines = n.tagName === 'TEXTAREA' ? Math.max(1, Math.floor(n.clientHeight / parseFloat(s.lineHeight || s.fontSize))) : 1;
            if (canvas.measureText(n.placeholder).width > room * lines + 1) out.push(n.placeholder);
        }
        return out;
    }""")
    assert cut == [], cut


@pytest.mark.parametrize("backend", ["sqlite"])
def test_polish_inbox_has_no_untranslated_strings(backend, world, browser):
    server, support = world["server"], world["support"]
    agent = h.agent("ola@example.com", "Ola Agentka", ["Support"])
    agent.locale = "pl"
    db.session.commit()
    release_db()
    telegram_post(server, support, "support-secret", 9001, 7001,
                  "Dzień dobry, gdzie jest moje zamówienie?", "Paweł")
    from decimal import Decimal

    from sqlalchemy import select

    from app.infra.models import Customer, Order

    import time

    deadline = time.monotonic() + 20
    while (customer := db.session.scalar(select(Customer).where(Customer.name == "Paweł"))) is None:
        assert time.monotonic() < deadline, "the webhook's message was never ingested"
        db.session.rollback()
        time.sleep(0.1)   # polling for a condition, not waiting a fixed time
    db.session.add(Order(customer_id=customer.id, external_ref="PL-1", total=Decimal("9150.50"),
                         currency="EUR", status="shipped", items=[]))
    db.session.commit()
    release_db()
    english = _english_only()
    assert {"All open", "Snoozed", "Reply", "Send"} <= english

    for width in (1440, 390):
        page = sign_in(browser, server, "ola@example.com", width=width)
        assert page.evaluate("document.documentElement.lang") == "pl"
        page.wait_for_selector(".row:has-text('Paweł')")
        assert page.locator("#views").inner_text().count("Wszystkie otwarte") == 1
        # at 390 px the header's search box is squeezed until the phone layout (issue 19,
        # another branch) gives it a row of its own: placeholders are checked at 1440 px
        _check(page, english, placeholders=width > 600)
        page.click(".row:has-text('Paweł')")
        page.wait_for_selector("#composer-text")
        _check(page, english, placeholders=width > 600)
        # the status select says what a conversation is (Odłożona), not a view (Odłożone)
        options = page.locator("select option[value=snoozed], select option[value=resolved]").all_inner_texts()
        assert "Odłożona" in options and "Rozwiązana" in options, options
        # the card's order: status and amount in Polish (9150,50 or 9 150,50, not 9,150.50)
        order = page.locator(".card .line:has-text('PL-1')").inner_text()
        assert "wysłane" in order and re.search(r"9\s?150,50\s€", order), order
        # dates in the agent's language, though the browser says en-US
        dates = " ".join(page.locator(".row").all_inner_texts()).lower()
        assert any(m in dates for m in POLISH_MONTHS), dates
        shot(page, f"inbox-polish-{width}")
        # the sales board and the account page in Polish too
        page.goto(f"{server.url}/board")
        page.wait_for_selector("body[data-ready=yes]")
        assert "Lejek sprzedaży" in page.inner_text("body")
        assert "Wygrana" in page.inner_text("body") and "Przegrana" in page.inner_text("body")
        _check(page, english, placeholders=width > 600)
        shot(page, f"board-polish-{width}")
        page.goto(f"{server.url}/account")
        assert "Zmień hasło" in page.inner_text("body")
        assert page.locator("select[name=locale] option[value=pl]").get_attribute("selected") is not None
        _check(page, english, placeholders=width > 600)
        page.context.close()
