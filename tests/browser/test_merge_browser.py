"""Merge suggestions in a real browser: the queue in the left pane, Review shows the field
conflicts with a choice per field and lets the agent pick the customer to keep, Merge; then
Unmerge from the customer card restores both."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest
from sqlalchemy import select

from app.usecases.ingest import apply_records
from app.infra.models import Channel, Customer, Identity
from app.infra.state import db
from connectors.base import Handle, Inbound
from tests import inbox_helpers as h
from tests.conftest import release_db
from tests.inbox_helpers import shot

pytestmark = [pytest.mark.browser, pytest.mark.slow]

WA_ID = "79161234567"
PHONE = "+79161234567"


def _inbound(channel, external_id, sender, text, **kw) -> None:
    apply_records(db.session, channel, [Inbound(external_id=external_id, sender=sender, text=text,
                                                sent_at=datetime.now(timezone.utc), **kw)])
    db.session.commit()


def _customer_id(kind: str, value: str) -> int:
    return db.session.scalar(select(Identity.customer_id).where(Identity.kind == kind,
                                                                Identity.value == value))


@pytest.mark.parametrize("backend", ["sqlite"])
def test_review_merge_and_unmerge(backend, ctx, admin, start_server, browser):
    wa = Channel(kind="whatsapp", name="WA", settings={})
    tg = Channel(kind="telegram", name="TG", settings={})
    db.session.add_all([wa, tg])
    db.session.commit()
    # Ivan on WhatsApp (his phone verified); on Telegram a "new" person mentions that phone
    _inbound(wa, "wamid.1", Handle("whatsapp", WA_ID), "Здравствуйте, заказ 1042",
             sender_name="Ivan", also_known_as=(Handle("phone", PHONE),))
    _inbound(tg, "tg.1", Handle("telegram", "42"), "my number is +7 916 123 45 67",
             sender_name="Ivan Petrov", evidence=(Handle("phone", PHONE, verified=False),))
    ivan, other = _customer_id("whatsapp", WA_ID), _customer_id("telegram", "42")
    assert ivan != other
    h.reset_login_limit()
    release_db()
    server = start_server()

    context = browser.new_context(viewport={"width": 1440, "height": 860}, locale="en-US")
    page = context.new_page()
    page.goto(f"{server.url}/login")
    page.fill("input[name=email]", "admin@example.com")
    page.fill("input[name=password]", "correct horse battery")
    page.click("button[type=submit]")
    page.wait_for_selector("body[data-ready=yes]")
    page.wait_for_selector("[data-view=merge-suggestions] .count:text('1')", timeout=10_000)

    page.click("[data-view=merge-suggestions]")
    suggestion = page.locator(".suggestion")
    suggestion.wait_for(timeout=10_000)
    text = suggestion.inner_text()
    assert "Ivan" in text and "Ivan Petrov" in text and PHONE in text and "60" in text
    suggestion.locator("[data-action=review]").click()
    conflict = page.locator("fieldset.conflict[data-field=name]")
    conflict.wait_for(timeout=10_000)
    # the suggestion's first customer (WhatsApp Ivan) is kept unless the agent picks the other
    assert page.is_checked(f"fieldset.survivor input[data-keep='{ivan}']")
    assert "Ivan is merged into Ivan Petrov" not in page.inner_text(".merge-into")
    page.check(f"fieldset.survivor input[data-keep='{other}']")
    page.wait_for_selector(".merge-into:has-text('Ivan is merged into Ivan Petrov')", timeout=10_000)
    conflict = page.locator("fieldset.conflict[data-field=name]")
    assert conflict.locator("input[data-side=this]").is_checked()
    assert "Ivan Petrov" in conflict.locator("label:has(input[data-side=this])").inner_text()
    page.fill(".merge-reason", "same phone")
    shot(page, "merge-review")
    page.click("[data-action=merge]")
    page.wait_for_selector("#list .empty", timeout=10_000)
    page.wait_for_selector("[data-view=merge-suggestions] .count.zero", state="attached", timeout=10_000)

    db.session.expire_all()
    kept, gone = db.session.get(Customer, other), db.session.get(Customer, ivan)
    assert gone.merged_into_id == kept.id
    assert kept.name == "Ivan Petrov"
    assert {i.kind for i in kept.identities} == {"whatsapp", "phone", "telegram"}
    release_db()

    # the card of the kept customer: Unmerge puts both back
    page.click("[data-view=open]")
    page.click(".row:has-text('Ivan Petrov')")
    page.wait_for_selector(".card [data-action=unmerge]", timeout=10_000)
    card_text = page.inner_text(".card .card-merges")
    assert f"Merged from customer #{ivan}" in card_text and "object" not in card_text
    shot(page, "merge-card")
    page.click(".card [data-action=unmerge]")
    page.wait_for_selector(".card .card-merges:empty", state="attached", timeout=10_000)
    db.session.expire_all()
    kept, back = db.session.get(Customer, other), db.session.get(Customer, ivan)
    assert back.merged_into_id is None
    assert kept.name == "Ivan Petrov" and back.name == "Ivan"
    assert {i.kind for i in kept.identities} == {"telegram"}
    assert {i.kind for i in back.identities} == {"whatsapp", "phone"}
    release_db()
    shot(page, "merge-unmerged")
