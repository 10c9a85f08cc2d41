"""The inbox's bulk bar and the thread's actions bar in a real browser: pick rows, set the
priority and resolve them together; then label and assign one from its thread. No script
error on the page throughout."""
from __future__ import annotations

import pytest
import requests
from sqlalchemy import select

from app.infra.models import Agent
from app.infra.state import db
from tests import inbox_helpers as h
from tests.inbox_helpers import shot, sign_in, telegram_post

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.mark.parametrize("backend", ["sqlite"])
def test_bulk_priority_and_resolve_then_label_and_assign(backend, world, browser):
    server, support = world["server"], world["support"]
    boris_token = h.token(db.session.scalar(select(Agent).where(Agent.email == "boris@example.com")))
    page = sign_in(browser, server, "anna@example.com")
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    telegram_post(server, support, "support-secret", 7301, 6161, "Первый вопрос")
    telegram_post(server, support, "support-secret", 7302, 6262, "Второй вопрос", "Пётр")
    for text in ("Первый вопрос", "Второй вопрос"):
        page.wait_for_selector(f".row:has-text('{text}')", timeout=10_000)
    page.wait_for_selector("#bulk", state="hidden", timeout=10_000)
    # pick both rows: the bulk bar counts them
    page.check(".row:has-text('Первый вопрос') .pick")
    page.wait_for_selector("#bulk:not([hidden]) span:text-is('1 selected')")
    page.check(".row:has-text('Второй вопрос') .pick")
    page.wait_for_selector("#bulk span:text-is('2 selected')")
    # priority for both, then resolve both: they leave the "All open" list
    page.select_option("#bulk select[aria-label=Priority]", "high")
    page.wait_for_selector(".row:has-text('Первый вопрос') .prio.high", timeout=10_000)
    page.wait_for_selector(".row:has-text('Второй вопрос') .prio.high", timeout=10_000)
    page.check(".row:has-text('Первый вопрос') .pick")
    page.check(".row:has-text('Второй вопрос') .pick")
    page.wait_for_selector("#bulk span:text-is('2 selected')")
    page.click("#bulk [data-bulk=resolve]")
    page.wait_for_selector("#list .empty", timeout=10_000)
    page.wait_for_selector("#bulk", state="hidden", timeout=10_000)
    # the Resolved view lists them; one is labelled and assigned from its thread
    page.click("[data-view=resolved]")
    page.wait_for_selector(".row:has-text('Второй вопрос')", timeout=10_000)
    page.click(".row:has-text('Второй вопрос')")
    page.wait_for_selector("#actions [data-action=reopen]", timeout=10_000)
    page.fill("#actions .label-input", "vip")
    # a colleague changes the conversation meanwhile: the live redraw keeps the typed label
    conversation_id = page.evaluate("location.pathname.split('/').pop()")
    response = requests.patch(f"{server.url}/api/v1/conversations/{conversation_id}", json={"priority": "urgent"},
                              headers={"Authorization": f"Bearer {boris_token}"}, timeout=10)
    assert response.status_code == 200, response.text
    page.wait_for_selector("#actions [data-action=priority] option[value=urgent]:checked", state="attached", timeout=10_000)
    assert page.input_value("#actions .label-input") == "vip"
    page.press("#actions .label-input", "Enter")
    page.wait_for_selector("#actions .labels .tag:has-text('vip')", timeout=10_000)
    page.wait_for_selector(".row:has-text('Второй вопрос') .meta .tag:text-is('vip')", timeout=10_000)
    page.select_option("#actions [data-action=assignee]", label="Anna Agent")
    page.wait_for_selector(".row:has-text('Второй вопрос') .assignee:text-is('Anna Agent')", timeout=10_000)
    assert page.locator("#actions [data-action=assign-me]").count() == 0
    shot(page, "inbox-bulk-actions")
    assert errors == []
