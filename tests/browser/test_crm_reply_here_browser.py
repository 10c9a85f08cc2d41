""""Reply here" on the CRM card in a real browser: a customer on Telegram and WhatsApp, the
composer defaults to Telegram (their latest message); "reply here" on the WhatsApp handle
switches the composer to WhatsApp and that handle, and the reply reaches the Graph API."""
from __future__ import annotations

import time

import pytest
from sqlalchemy import select

from app.infra.models import Identity, Message
from app.infra.state import db
from tests import inbox_helpers as h
from tests.conftest import release_db, run_jobs
from tests.inbox_helpers import shot
from tests.web.test_webhooks_whatsapp import graph, post, text_message  # noqa: F401
from tests.usecases.test_crm import telegram_own_contact, telegram_text, wa_channel  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.slow]

WA_ID = "79161234567"


@pytest.mark.parametrize("backend", ["sqlite"])
def test_reply_here_sends_on_whatsapp(backend, app, ctx, admin, graph, wa_channel,  # noqa: F811
                                      telegram_channel, telegram_api, start_server, browser):
    assert post(app, wa_channel, text_message("wamid.B1", "Здравствуйте, заказ 1042", wa_id=WA_ID,
                                              name="Иван Петров",
                                              timestamp=int(time.time()) - 120)).status_code == 200
    run_jobs(app)
    telegram_own_contact(app, telegram_channel, 5551, WA_ID, "Иван")
    telegram_text(app, telegram_channel, 5551, "Лучше ответьте в WhatsApp", "Иван")
    run_jobs(app)
    wa_handle = db.session.scalar(select(Identity.id).where(Identity.kind == "whatsapp",
                                                            Identity.value == WA_ID))
    h.reset_login_limit()
    release_db()
    server = start_server()

    page = h.sign_in(browser, server, "admin@example.com", "correct horse battery")
    page.click(".row:has-text('Иван Петров')")
    page.wait_for_selector("#composer-channel")
    # the composer starts on the channel of the latest inbound message: Telegram
    assert page.input_value("#composer-channel") == str(telegram_channel.id)
    handle = page.locator(f".card [data-identity='{wa_handle}']")
    assert "WhatsApp RU" in handle.inner_text()
    handle.locator("[data-action=reply-here]").click()
    assert page.input_value("#composer-channel") == str(wa_channel.id)
    page.wait_for_selector(f"#composer-to:has-text('{WA_ID}')")
    assert page.evaluate("document.activeElement.id") == "composer-text"
    shot(page, "crm-reply-here")
    page.keyboard.type("Здравствуйте! Отвечаем в WhatsApp.")
    page.click("#composer-send")
    sent = ".msg.out:has-text('Отвечаем в WhatsApp')"
    page.wait_for_selector(f"{sent} [data-status=sent]", timeout=15_000)
    assert "WhatsApp RU" in page.inner_text(f"{sent} .badge")

    (request,) = graph.sent()
    assert request["to"] == WA_ID and request["text"]["body"] == "Здравствуйте! Отвечаем в WhatsApp."
    assert telegram_api.calls("sendMessage") == []
    db.session.expire_all()
    message = db.session.scalar(select(Message).where(Message.direction == "out"))
    assert message.channel_id == wa_channel.id and message.meta["to"] == f"whatsapp:{WA_ID}"
    assert message.status == "sent"
    release_db()
