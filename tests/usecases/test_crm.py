"""The background suggestion scan (app/crm.scan_customer), driven the way production drives
it: messages through the channels' webhooks / the ingest door, CRM records through the API,
and the scan as a queued job (`run_jobs`: in-process, or a real rq worker on PostgreSQL).

Rules: the same phone as a WhatsApp id and a phone handle of another customer; the same full
name with an email at the same company domain (free-mail domains are no company). Both make
a merge suggestion with reasons and a score; a pair an agent already decided stays decided.
"""
from __future__ import annotations

import base64
import itertools
import time
from types import SimpleNamespace
from email.message import EmailMessage

import pytest
from sqlalchemy import func, select

from app.domain.channels import add_channel
from app.usecases.ingest import receive
from app.infra.models import Channel, Customer, Identity, MergeSuggestion, Message
from app.infra.state import db
from tests.conftest import run_jobs, telegram_update
from tests.web.test_webhooks_whatsapp import APP_SECRET, NUMBER_ID, graph, post, text_message  # noqa: F401

WA_ID = "79161234567"
PHONE = "+79161234567"
SAME_PHONE = "same phone on WhatsApp and another channel"
SAME_NAME = "same name and company domain"
_ids = itertools.count(1)


# --- driving the channels ----------------------------------------------------------------

@pytest.fixture
def wa_channel(ctx, graph):  # noqa: F811
    channel = add_channel("whatsapp", "WhatsApp RU", {
        "phone_number_id": NUMBER_ID, "access_token": "test-access-token",
        "app_secret": APP_SECRET, "verify_token": "verify-me-please",
        "api_base_url": graph.base_url})
    db.session.commit()
    return channel


@pytest.fixture
def mail_channel(ctx):
    channel = Channel(kind="email", name="Sales mail", settings={})
    db.session.add(channel)
    db.session.commit()
    return channel


def telegram_webhook(app, channel, update: dict) -> None:
    response = app.test_client().post(
        f"/webhooks/telegram/{channel.id}", json=update,
        headers={"X-Telegram-Bot-Api-Secret-Token": channel.settings["secret_token"]})
    assert response.status_code == 200, response.get_data(as_text=True)


def telegram_text(app, channel, user_id: int, text: str, name: str) -> None:
    n = next(_ids)
    telegram_webhook(app, channel, telegram_update(n, user_id, text, first_name=name))


def telegram_own_contact(app, channel, user_id: int, phone: str, name: str) -> None:
    """"Share my phone": Telegram fills contact.user_id with the sender's own id."""
    n = next(_ids)
    update = telegram_update(n, user_id, "", first_name=name)
    del update["message"]["text"]
    update["message"]["contact"] = {"phone_number": phone, "first_name": name, "user_id": user_id}
    telegram_webhook(app, channel, update)


def email_in(channel, sender_name: str, address: str, text: str) -> None:
    mail = EmailMessage()
    mail["From"] = f"{sender_name} <{address}>"
    mail["To"] = "sales@shop.example"
    mail["Subject"] = "Запрос"
    mail["Message-ID"] = f"<m{next(_ids)}.{time.time_ns()}@client.example>"
    mail.set_content(text)
    raw = base64.b64encode(mail.as_bytes()).decode()
    receive(channel, mail["Message-ID"], {"raw": raw, "folder": "INBOX", "uid": next(_ids)})


# --- reading the outcome -----------------------------------------------------------------

def customer_of(kind: str, value: str) -> int:
    """The id of the customer holding a handle (ids: a request or a job ends the session)."""
    db.session.expire_all()
    customer_id = db.session.scalar(select(Identity.customer_id).where(Identity.kind == kind,
                                                                       Identity.value == value))
    assert customer_id is not None, f"no identity {kind}:{value}"
    return customer_id


def suggestions() -> list[SimpleNamespace]:
    """Every suggestion, as plain values (a request or a job ends the session)."""
    db.session.expire_all()
    return [SimpleNamespace(id=s.id, pair={s.customer_id, s.other_customer_id}, score=s.score,
                            status=s.status, reasons=s.reasons)
            for s in db.session.scalars(select(MergeSuggestion).order_by(MergeSuggestion.id))]


# --- rule 1: the same phone on WhatsApp and Telegram -------------------------------------

def test_whatsapp_then_own_telegram_contact_is_one_customer(app, ctx, api, wa_channel,
                                                            telegram_channel):
    """WhatsApp verifies the number, Telegram's "share my phone" too: an exact verified
    handle, so the new Telegram sender joins the WhatsApp customer (one timeline)."""
    assert post(app, wa_channel, text_message("wamid.S1", "Здравствуйте, заказ 1042",
                                              wa_id=WA_ID, name="Иван Петров")).status_code == 200
    run_jobs(app)
    telegram_own_contact(app, telegram_channel, 5551, "79161234567", "Иван")
    telegram_text(app, telegram_channel, 5551, "Это я, из WhatsApp", "Иван")
    run_jobs(app)
    ivan = db.session.get(Customer, customer_of("phone", PHONE))
    assert {(i.kind, i.value) for i in ivan.identities} == {
        ("phone", PHONE), ("whatsapp", WA_ID), ("telegram", "5551")}
    assert db.session.scalar(select(func.count()).select_from(Customer)) == 1
    assert {m.channel_id for m in db.session.scalars(select(Message))} == {
        wa_channel.id, telegram_channel.id}
    assert suggestions() == []


def test_phone_learned_on_telegram_matches_a_whatsapp_id(app, ctx, api, telegram_channel):
    # the shop pushed an order of a WhatsApp customer: a wa_id, no phone handle
    order = api.post("/orders", json={"external_ref": "SHOP-77", "total": "4990",
                                      "currency": "RUB",
                                      "customer": {"whatsapp": "+7 916 123-45-67",
                                                   "name": "Иван Петров"}})
    assert order.status_code == 201, order.json
    run_jobs(app)
    shop_ivan = customer_of("whatsapp", WA_ID)
    # a separate Telegram customer; later they share their own number
    telegram_text(app, telegram_channel, 5551, "Добрый день", "Ваня")
    run_jobs(app)
    tg_ivan = customer_of("telegram", "5551")
    assert tg_ivan != shop_ivan and suggestions() == []
    telegram_own_contact(app, telegram_channel, 5551, "79161234567", "Ваня")
    run_jobs(app)
    assert customer_of("phone", PHONE) == tg_ivan

    (suggestion,) = suggestions()
    assert suggestion.pair == {shop_ivan, tg_ivan}
    assert suggestion.status == "open" and suggestion.score == 80
    assert suggestion.reasons == [{"reason": SAME_PHONE, "handle": f"phone:{PHONE}"}]
    (listed,) = api.get("/merge-suggestions").json["items"]
    assert listed["id"] == suggestion.id and listed["score"] == 80
    assert listed["reasons"][0]["handle"] == f"phone:{PHONE}"

    # scanned again (a new handle of either customer): reinforced never, duplicated never
    assert api.post(f"/customers/{tg_ivan}/identities",
                    json={"kind": "email", "value": "vanya@example.org"}).status_code == 201
    run_jobs(app)
    (again,) = suggestions()
    assert again.id == suggestion.id and again.score == 80 and len(again.reasons) == 1


def test_whatsapp_id_pushed_after_the_telegram_phone(app, ctx, api, telegram_channel):
    """The other order: the Telegram customer's phone is known first, then a CRM record
    brings a new customer with that number as a WhatsApp id."""
    telegram_own_contact(app, telegram_channel, 6001, "+7 (916) 765-43-21", "Ольга")
    run_jobs(app)
    olga_tg = customer_of("phone", "+79167654321")
    deal = api.post("/deals", json={"external_ref": "D-9", "title": "Опт",
                                    "customer": {"whatsapp": "79167654321", "name": "Ольга С."}})
    assert deal.status_code == 201, deal.json
    run_jobs(app)
    olga_shop = customer_of("whatsapp", "79167654321")
    assert olga_shop != olga_tg
    (suggestion,) = suggestions()
    assert suggestion.pair == {olga_tg, olga_shop} and suggestion.score == 80
    assert suggestion.reasons == [{"reason": SAME_PHONE, "handle": "phone:+79167654321"}]


def test_rejected_phone_pair_is_not_suggested_again(app, ctx, api, telegram_channel):
    assert api.post("/orders", json={"external_ref": "SHOP-1", "customer": {
        "whatsapp": WA_ID, "name": "Иван Петров"}}).status_code == 201
    telegram_own_contact(app, telegram_channel, 5551, WA_ID, "Ваня")
    run_jobs(app)
    (suggestion,) = suggestions()
    rejected = api.post(f"/merge-suggestions/{suggestion.id}/reject",
                        json={"reason": "his son has the number now"})
    assert rejected.status_code == 200
    # new evidence about both customers: each is scanned again
    tg = customer_of("telegram", "5551")
    shop = customer_of("whatsapp", WA_ID)
    assert api.patch(f"/customers/{tg}", json={"name": "Иван Петров-младший"}).status_code == 200
    assert api.post(f"/customers/{shop}/identities",
                    json={"kind": "email", "value": "ivan@example.org"}).status_code == 201
    run_jobs(app)
    (still,) = suggestions()
    assert still.id == suggestion.id and still.status == "rejected" and len(still.reasons) == 1
    assert api.get("/merge-suggestions").json["items"] == []


# --- rule 2: the same name and company domain --------------------------------------------

def test_same_name_and_company_domain(app, ctx, api, mail_channel):
    email_in(mail_channel, "Анна Смирнова", "anna@romashka.ru", "Нужен счёт на 50 платьев")
    run_jobs(app)
    # a colleague's address? No: the same person writes from her other company mailbox,
    # her name typed in another case and spacing, surname first
    email_in(mail_channel, "СМИРНОВА  Анна", "A.Smirnova@Romashka.ru", "Повторно про счёт")
    run_jobs(app)
    first, second = customer_of("email", "anna@romashka.ru"), customer_of("email", "a.smirnova@romashka.ru")
    assert first != second
    (suggestion,) = suggestions()
    assert suggestion.pair == {first, second}
    assert suggestion.score == 50 and suggestion.status == "open"
    assert suggestion.reasons == [{"reason": SAME_NAME, "domain": "romashka.ru"}]
    (listed,) = api.get("/merge-suggestions").json["items"]
    assert listed["reasons"] == [{"reason": SAME_NAME, "domain": "romashka.ru"}]


def test_free_mail_and_other_names_suggest_nothing(app, ctx, api, mail_channel):
    # free-mail domains are no company: the same name there is a coincidence
    for domain in ("gmail.com", "mail.ru", "wp.pl"):
        email_in(mail_channel, "Jan Kowalski", f"jan.kowalski@{domain}", "Dzień dobry")
        email_in(mail_channel, "Jan Kowalski", f"kowalski.jan@{domain}", "Dzień dobry")
    # a company domain, but two different people
    email_in(mail_channel, "Анна Смирнова", "anna@romashka.ru", "Счёт")
    email_in(mail_channel, "Анна Кузнецова", "kuznetsova@romashka.ru", "Счёт")
    # one word is no full name
    email_in(mail_channel, "Sales", "sales@romashka.ru", "Hi")
    email_in(mail_channel, "Sales", "sales2@romashka.ru", "Hi")
    run_jobs(app)
    assert db.session.scalar(select(func.count()).select_from(Customer)) == 10
    assert suggestions() == []


def test_rejected_name_pair_is_not_suggested_again(app, ctx, api, mail_channel):
    email_in(mail_channel, "Ivan Petrov", "ivan@acme-tools.example", "Quote please")
    email_in(mail_channel, "Ivan Petrov", "i.petrov@acme-tools.example", "Quote please")
    run_jobs(app)
    (suggestion,) = suggestions()
    assert api.post(f"/merge-suggestions/{suggestion.id}/reject",
                    json={"reason": "two Ivans at ACME"}).status_code == 200
    # more evidence comes in: a third address, a renamed card
    first = customer_of("email", "ivan@acme-tools.example")
    assert api.post(f"/customers/{first}/identities",
                    json={"kind": "email", "value": "ivan.p@acme-tools.example"}).status_code == 201
    assert api.patch(f"/customers/{first}", json={"name": "IVAN PETROV"}).status_code == 200
    run_jobs(app)
    (still,) = suggestions()
    assert still.id == suggestion.id and still.status == "rejected"
    assert api.get("/merge-suggestions").json["items"] == []


def test_unmerged_pair_is_not_suggested_again(app, ctx, api, mail_channel):
    """An agent who merged and then unmerged two customers has decided about them."""
    email_in(mail_channel, "Ivan Petrov", "ivan@acme-tools.example", "Quote please")
    email_in(mail_channel, "Olga Petrova", "olga@acme-tools.example", "Quote please")
    run_jobs(app)
    ivan, olga = customer_of("email", "ivan@acme-tools.example"), customer_of("email", "olga@acme-tools.example")
    merged = api.post(f"/customers/{ivan}/merge", json={"other_id": olga,
                                                            "choose": {"name": "this"}})
    assert merged.status_code == 201, merged.json
    assert api.post(f"/customers/{ivan}/unmerge", json={"reason": "wife"}).status_code == 200
    assert api.patch(f"/customers/{olga}", json={"name": "Ivan Petrov"}).status_code == 200
    run_jobs(app)
    assert suggestions() == []
