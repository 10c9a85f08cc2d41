"""The composer's attachments in a real browser: pick files, see chips (remove one), send;
the thread shows the sent message with its attachment and Telegram receives the photo."""
from __future__ import annotations

import base64

import pytest

from tests.inbox_helpers import telegram_post
from tests.inbox_helpers import shot, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQ"
                       "DwAEhQGAhKmMIQAAAABJRU5ErkJggg==")


@pytest.mark.parametrize("backend", ["sqlite"])
def test_reply_with_an_attachment(backend, world, browser):  # noqa: F811
    server, telegram = world["server"], world["telegram"]
    page = sign_in(browser, server, "anna@example.com")
    telegram_post(server, world["support"], "support-secret", 7301, 4343, "Пришлите чек")
    page.wait_for_selector(".row:has-text('Пришлите чек')", timeout=10_000)
    page.click(".row:has-text('Ольга')")
    page.wait_for_selector("#composer-attach")
    page.set_input_files("#composer-file", files=[
        {"name": "receipt.png", "mimeType": "image/png", "buffer": PNG},
        {"name": "wrong.txt", "mimeType": "text/plain", "buffer": b"not this one"}])
    page.wait_for_selector("#composer-chips .chip.ready[data-filename='receipt.png']", timeout=10_000)
    page.wait_for_selector("#composer-chips .chip.ready[data-filename='wrong.txt']", timeout=10_000)
    page.click("#composer-chips .chip[data-filename='wrong.txt'] .remove")
    assert page.locator("#composer-chips .chip").count() == 1
    page.fill("#composer-text", "Ваш чек во вложении")
    shot(page, "inbox-attachment-chips")
    page.click("#composer-send")
    message = ".msg.out:has-text('Ваш чек во вложении')"
    page.wait_for_selector(f"{message} .attachment a:has-text('receipt.png')", timeout=10_000)
    page.wait_for_selector(f"{message} .attachment img", timeout=10_000)
    page.wait_for_selector(f"{message} [data-status=sent]", timeout=15_000)
    assert page.locator("#composer-chips .chip").count() == 0
    (photo,) = telegram.wait_for("sendPhoto", 1, timeout=10)
    assert photo.files["photo"].data == PNG
    assert telegram.calls("sendDocument") == []
    shot(page, "inbox-attachment-sent")
