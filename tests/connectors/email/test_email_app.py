"""Email through the app, against a real Dovecot and a real SMTP server: sync with a
cursor, threading both ways, restarts, UIDVALIDITY resets, a large first sync."""
from __future__ import annotations

import time
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import make_msgid

import pytest
from sqlalchemy import func, select

from app.infra.models import Channel, Conversation, Customer, Identity, Message
from app.usecases.pollers import EmailPoller
from app.infra.state import db
from tests.conftest import run_jobs, wait_until


def mail(sender: str, subject: str, body: str, msgid: str | None = None,
         in_reply_to: str | None = None) -> tuple[bytes, str]:
    msg = EmailMessage()
    msg["From"], msg["To"] = sender, "support@shop.example.test"
    msg["Subject"], msg["Date"] = subject, "Mon, 23 Nov 2026 10:00:00 +0000"
    msg["Message-ID"] = msgid or make_msgid(domain="customer.example")
    if in_reply_to:
        msg["In-Reply-To"] = msg["References"] = in_reply_to
    msg.set_content(body)
    return msg.as_bytes(), msg["Message-ID"].strip("<>")


@pytest.fixture
def email_channel(ctx, dovecot, smtp_server):
    from app.domain.channels import add_channel

    channel = add_channel("email", "Support mailbox", {
        **dovecot.settings(), **smtp_server.settings(),
        "from_address": "support@shop.example.test", "from_name": "Shop Support"})
    db.session.commit()
    return channel


def sync(app, channel: Channel, jobs_timeout: float = 60.0) -> None:
    poller = EmailPoller(app, channel.id)
    poller.idle_seconds = 0.1
    with app.app_context():
        poller.poll_once()
    run_jobs(app, timeout=jobs_timeout)
    db.session.expire_all()


def texts() -> list[str]:
    return [m.text for m in db.session.scalars(select(Message).order_by(Message.id))]


def test_mail_threads_both_ways(app, ctx, api, dovecot, smtp_server, email_channel):
    raw, first_id = mail("Анна Петрова <anna@customer.example>", "Заказ №123 не пришёл",
                         "Здравствуйте! Где мой заказ?")
    dovecot.deliver(raw)
    sync(app, email_channel)
    conversation = db.session.scalar(select(Conversation))
    assert conversation.customer.name == "Анна Петрова"
    assert conversation.subject == "Заказ №123 не пришёл"
    assert "\\Seen" not in dovecot.flags()[1]  # never marked read

    reply = api.post(f"/conversations/{conversation.id}/messages", json={"text": "Уже отправили!"})
    assert reply.status_code == 201
    run_jobs(app)
    sent = smtp_server.received[-1]
    out = message_from_bytes(sent.raw, policy=policy.default)
    assert list(sent.rcpt_tos) == ["anna@customer.example"]
    assert out["In-Reply-To"] == f"<{first_id}>"
    assert str(out["Subject"]) == "Re: Заказ №123 не пришёл"
    assert "reply+" in str(out["Reply-To"])
    our_id = out["Message-ID"].strip("<>")
    db.session.expire_all()
    assert db.session.get(Message, reply.json["id"]).external_id == our_id

    answer, _ = mail("anna@customer.example", "Re: Заказ №123 не пришёл", "Спасибо, получила!",
                     in_reply_to=f"<{our_id}>")
    dovecot.deliver(answer)
    sync(app, email_channel)
    assert texts() == ["Здравствуйте! Где мой заказ?", "Уже отправили!", "Спасибо, получила!"]
    assert db.session.scalar(select(func.count(Conversation.id))) == 1


def test_restart_and_uidvalidity_reset_lose_and_repeat_nothing(app, ctx, dovecot, email_channel):
    for n in range(3):
        dovecot.deliver(mail(f"klient{n}@example.pl", f"Pytanie {n}", f"Treść {n}: zażółć")[0])
    sync(app, email_channel)
    dovecot.restart()
    for n in range(3, 5):
        dovecot.deliver(mail(f"klient{n}@example.pl", f"Pytanie {n}", f"Treść {n}: zażółć")[0])
    sync(app, email_channel)
    assert sorted(texts()) == [f"Treść {n}: zażółć" for n in range(5)]
    before = dict(db.session.get(Channel, email_channel.id).state["imap"]["INBOX"])
    dovecot.reset_uidvalidity()
    dovecot.deliver(mail("nowy@example.pl", "Nowe", "Nowa wiadomość")[0])
    sync(app, email_channel)
    after = db.session.get(Channel, email_channel.id).state["imap"]["INBOX"]
    assert after["uidvalidity"] != before["uidvalidity"]
    assert len(texts()) == 6 and "Nowa wiadomość" in texts()
    assert db.session.scalar(select(func.count(Customer.id))) == 6


@pytest.mark.slow
def test_first_sync_of_a_large_mailbox(app, ctx, dovecot, email_channel, caplog):
    count = 1000
    started = time.monotonic()
    dovecot.deliver_many([mail(f"buyer{n % 50}@example.com", f"Order {n}", f"Message number {n}")[0]
                          for n in range(count)])
    delivered = time.monotonic() - started
    started = time.monotonic()
    with caplog.at_level("INFO", logger="app.usecases.pollers"):
        sync(app, email_channel, jobs_timeout=600)
    elapsed = time.monotonic() - started
    assert db.session.scalar(select(func.count(Message.id))) == count
    assert db.session.scalar(select(func.count(Customer.id))) == 50
    progress = [r.getMessage() for r in caplog.records if "/1000 messages" in r.getMessage()]
    assert len(progress) >= 5 and progress[-1].startswith(f"channel {email_channel.id}: INBOX 1000/1000")
    print(f"\n1,000-message first sync: {count / elapsed:.0f} messages/s end to end "
          f"({elapsed:.1f}s; delivery into Dovecot took {delivered:.1f}s)")


def test_bounce_fails_the_reply_and_joins_its_thread(app, ctx, api, dovecot, smtp_server, email_channel):
    dovecot.deliver(mail("Jan Nowak <jan@customer.example>", "Faktura", "Proszę o fakturę.")[0])
    sync(app, email_channel)
    conversation = db.session.scalar(select(Conversation))
    reply = api.post(f"/conversations/{conversation.id}/messages", json={"text": "W załączniku."})
    run_jobs(app)
    db.session.expire_all()
    our_id = db.session.get(Message, reply.json["id"]).external_id
    bounce = (
        "From: Mail Delivery System <MAILER-DAEMON@mx.customer.example>\r\n"
        "To: support@shop.example.test\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\n"
        f"Message-ID: {make_msgid(domain='mx.customer.example')}\r\n"
        "Auto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n\r\n'
        "--B\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n"
        "--B\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.customer.example\r\n\r\n"
        "Final-Recipient: rfc822; jan@customer.example\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        "Diagnostic-Code: smtp; 550 5.1.1 User unknown\r\n"
        "--B\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        f"Message-ID: <{our_id}>\r\nSubject: Re: Faktura\r\n\r\n"
        "--B--\r\n").encode()
    dovecot.deliver(bounce)
    sync(app, email_channel)
    failed = db.session.get(Message, reply.json["id"])
    assert failed.status == "failed" and "jan@customer.example" in failed.error
    assert db.session.scalar(select(func.count(Customer.id))) == 1  # no MAILER-DAEMON customer
    report = db.session.scalar(select(Message).where(Message.automated.is_(True)))
    assert report.conversation_id == conversation.id
    identity = db.session.scalar(select(Identity).where(Identity.value == "jan@customer.example"))
    assert identity.reachable is False


def test_a_colleague_replying_on_the_thread_joins_it(app, ctx, api, dovecot, smtp_server, email_channel):
    dovecot.deliver(mail("Olga <olga@firma.example>", "Счёт на оплату", "Пришлите счёт, пожалуйста.")[0])
    sync(app, email_channel)
    conversation = db.session.scalar(select(Conversation))
    reply = api.post(f"/conversations/{conversation.id}/messages", json={"text": "Счёт во вложении."})
    run_jobs(app)
    sent = message_from_bytes(smtp_server.received[-1].raw, policy=policy.default)
    token_address = str(sent["Reply-To"])
    # the accountant answers to our Reply-To address, from another mailbox, without References
    answer = EmailMessage()
    answer["From"], answer["To"] = "buh@firma.example", token_address
    answer["Subject"], answer["Message-ID"] = "Re: Счёт на оплату", make_msgid(domain="firma.example")
    answer.set_content("Оплатили сегодня.")
    dovecot.deliver(answer.as_bytes())
    sync(app, email_channel)
    joined = db.session.scalar(select(Message).where(Message.text == "Оплатили сегодня."))
    assert joined.conversation_id == conversation.id
    assert db.session.scalar(select(func.count(Conversation.id))) == 1
    assert db.session.scalar(select(func.count(Customer.id))) == 2  # the accountant is known now
    assert reply.status_code == 201


def test_replies_from_other_addresses_thread_by_message_id(app, ctx, api, dovecot, smtp_server,
                                                          email_channel):
    """In-Reply-To / References place a reply, whoever sends it: a new address and a customer
    who has an open conversation of their own both land in the thread they answer. (The
    replies go to the plain support address: no reply token helps here.)"""
    raw, anna_first = mail("Анна Петрова <anna@customer.example>", "Заказ №77",
                           "Где мой заказ №77?")
    dovecot.deliver(raw)
    dovecot.deliver(mail("Tomasz Nowak <tomasz@firma.example>", "Faktura VAT",
                         "Proszę o fakturę VAT.")[0])
    sync(app, email_channel)
    anna = db.session.scalar(select(Conversation).where(Conversation.subject == "Заказ №77"))
    tomasz = db.session.scalar(select(Conversation).where(Conversation.subject == "Faktura VAT"))
    assert anna.id != tomasz.id and tomasz.status == "open"
    reply = api.post(f"/conversations/{anna.id}/messages", json={"text": "Отправили сегодня."})
    assert reply.status_code == 201
    run_jobs(app)
    ours = message_from_bytes(smtp_server.received[-1].raw, policy=policy.default)
    our_id = ours["Message-ID"]

    # 1. a colleague of Anna's, never seen before, answers our reply by Message-ID
    marta, _ = mail("Marta <marta@customer.example>", "Re: Заказ №77", "Я её коллега, спасибо!",
                    in_reply_to=our_id)
    # 2. Tomasz, whose own conversation is open, answers Anna's first mail (References)
    cc = EmailMessage()
    cc["From"], cc["To"] = "Tomasz Nowak <tomasz@firma.example>", "support@shop.example.test"
    cc["Subject"], cc["Date"] = "Re: Заказ №77", "Mon, 23 Nov 2026 11:00:00 +0000"
    cc["Message-ID"] = make_msgid(domain="firma.example")
    cc["In-Reply-To"] = f"<{anna_first}>"
    cc["References"] = f"<{anna_first}> {our_id}"
    cc.set_content("Dołączam się do wątku: paczka dotarła do nas.")
    for raw_reply in (marta, cc.as_bytes()):
        dovecot.deliver(raw_reply)
    sync(app, email_channel)
    placed = {m.text.strip(): m for m in db.session.scalars(select(Message))}
    assert placed["Я её коллега, спасибо!"].conversation_id == anna.id
    assert placed["Dołączam się do wątku: paczka dotarła do nas."].conversation_id == anna.id
    assert placed["Proszę o fakturę VAT."].conversation_id == tomasz.id
    assert db.session.scalar(select(func.count(Conversation.id))) == 2
    # the senders stay who they are: Marta is a new customer, Tomasz keeps his own card
    marta_message = placed["Я её коллега, спасибо!"]
    assert marta_message.customer_id not in (anna.customer_id, tomasz.customer_id)
    assert placed["Dołączam się do wątku: paczka dotarła do nas."].customer_id == tomasz.customer_id


def test_auto_reply_never_starts_a_loop(app, ctx, api, dovecot, smtp_server, email_channel):
    dovecot.deliver(mail("Piotr <piotr@customer.example>", "Zamówienie", "Kiedy wysyłka?")[0])
    sync(app, email_channel)
    conversation = db.session.scalar(select(Conversation))
    api.post(f"/conversations/{conversation.id}/messages", json={"text": "Jutro."})
    run_jobs(app)
    sent_before = len(smtp_server.received)
    ooo = EmailMessage()
    ooo["From"], ooo["To"] = "piotr@customer.example", "support@shop.example.test"
    ooo["Subject"], ooo["Message-ID"] = "Odpowiedź automatyczna: Re: Zamówienie", make_msgid()
    ooo["Auto-Submitted"] = "auto-replied"
    ooo.set_content("Jestem na urlopie do poniedziałku.")
    dovecot.deliver(ooo.as_bytes())
    sync(app, email_channel)
    run_jobs(app)
    auto = db.session.scalar(select(Message).where(Message.text.like("Jestem na urlopie%")))
    assert auto.automated is True and auto.conversation_id == conversation.id
    # a later reply of ours goes out through the same outbox: once it has, anything the
    # auto-reply had set off would have gone before it
    api.post(f"/conversations/{conversation.id}/messages", json={"text": "Dziękujemy."})
    run_jobs(app)
    wait_until(lambda: len(smtp_server.received) > sent_before, timeout=15,
               message="our later reply sent")
    assert len(smtp_server.received) == sent_before + 1  # nothing answered the auto-reply
    last = message_from_bytes(smtp_server.received[-1].raw, policy=policy.default)
    assert "Dziękujemy." in last.get_body(("plain",)).get_content()
