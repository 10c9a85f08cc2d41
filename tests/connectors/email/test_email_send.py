"""Sending through a real SMTP server (aiosmtpd), and Connector.test against both servers."""
from __future__ import annotations

import email
from email import policy
from email.message import EmailMessage

import pytest
from connectors.base import (EMAIL, Button, ChannelError, Handle, Outbound, OutboundAttachment,
                             PermanentError, TransientError)
from connectors.email import Connector, Mailbox, build_message, parse_message

CUSTOMER = Handle(EMAIL, "ivan@example.ru")


def outbound(**kw: object) -> Outbound:
    base: dict = {"idempotency_key": "out-42", "to": CUSTOMER, "text": "Здравствуйте!\n\nЗаказ отправлен.",
                  "subject": "Вопрос о доставке"}
    base.update(kw)
    return Outbound(**base)


def received(smtp_server) -> EmailMessage:
    (mail,) = smtp_server.received
    return email.message_from_bytes(mail.raw, policy=policy.default)


def test_reply_headers_and_round_trip(settings, smtp_server):
    out = outbound(references=("first@shop.example.test", "<second@example.ru>"),
                   reply_token="tok-9f", html="<p>Здравствуйте!</p>",
                   attachments=(OutboundAttachment("счёт.pdf", "application/pdf", b"%PDF-1.4 x"),))
    result = Connector().send(settings, out)
    assert result.external_id == "out-42@shop.example.test"

    (mail,) = smtp_server.received
    assert mail.mail_from == "support@shop.example.test"
    assert mail.rcpt_tos == ("ivan@example.ru",)
    msg = received(smtp_server)
    assert msg["Message-ID"] == "<out-42@shop.example.test>"
    assert msg["From"] == "Shop Support <support@shop.example.test>"
    assert msg["To"] == "ivan@example.ru"
    assert msg["Subject"] == "Re: Вопрос о доставке"
    assert b"=?utf-8?" in mail.raw  # the Cyrillic subject travels encoded
    assert msg["In-Reply-To"] == "<second@example.ru>"
    assert msg["References"] == "<first@shop.example.test> <second@example.ru>"
    assert msg["Reply-To"] == "reply+tok-9f@shop.example.test"
    assert msg["Auto-Submitted"] is None
    (alternative,) = [p for p in msg.walk() if p.get_content_type() == "multipart/alternative"]
    assert [p.get_content_type() for p in alternative.iter_parts()] == ["text/plain", "text/html"]
    plain = msg.get_body(("plain",)).get_content().replace("\r\n", "\n")
    assert plain.strip() == "Здравствуйте!\n\nЗаказ отправлен."
    (att,) = msg.iter_attachments()
    assert att.get_filename() == "счёт.pdf" and att.get_content() == b"%PDF-1.4 x"

    # What we send, we can read back: our own parser sees the same thread and token.
    back = parse_message(mail.raw, settings)
    assert back.subject == "Re: Вопрос о доставке"
    assert back.external_id == "out-42@shop.example.test"
    assert back.thread_refs == ("second@example.ru", "first@shop.example.test")
    assert back.text == "Здравствуйте!\n\nЗаказ отправлен."


def test_message_id_stable_across_retries(settings):
    first = build_message(settings, outbound(references=("a@x",)))
    second = build_message(settings, outbound(references=("a@x",)))
    assert first["Message-ID"] == second["Message-ID"] == "<out-42@shop.example.test>"


def test_re_prefix_only_once_and_not_without_references(settings):
    assert build_message(settings, outbound(subject="RE: Hi", references=("a@x",)))["Subject"] == "RE: Hi"
    assert build_message(settings, outbound(subject="Hi"))["Subject"] == "Hi"
    assert build_message(settings, outbound(subject="Hi"))["In-Reply-To"] is None


def test_html_fallback_is_escaped_text_and_automated_flag(settings):
    msg = build_message(settings, outbound(text="a < b & <script>x</script>", automated=True))
    html = msg.get_body(("html",)).get_content()
    assert "&lt;script&gt;" in html and "<script>" not in html
    assert msg["Auto-Submitted"] == "auto-replied"
    assert msg["Reply-To"] is None


def test_reply_domain_setting_wins(settings):
    msg = build_message({**settings, "reply_domain": "mail.shop.example.test"},
                        outbound(reply_token="t1"))
    assert msg["Message-ID"] == "<out-42@mail.shop.example.test>"
    assert msg["Reply-To"] == "reply+t1@mail.shop.example.test"


@pytest.mark.parametrize("stage", ["RCPT", "DATA"])
def test_4xx_is_transient(settings, smtp_server, stage):
    smtp_server.fail_next(stage, "452 4.2.2 Mailbox full, try later")
    with pytest.raises(TransientError, match="452 4.2.2 Mailbox full, try later"):
        Connector().send(settings, outbound())
    assert smtp_server.received == []


@pytest.mark.parametrize("stage", ["RCPT", "DATA"])
def test_5xx_is_permanent_with_server_text(settings, smtp_server, stage):
    smtp_server.fail_next(stage, "550 5.1.1 User unknown in virtual mailbox table")
    with pytest.raises(PermanentError) as info:
        Connector().send(settings, outbound())
    assert "550" in str(info.value) and "User unknown in virtual mailbox table" in str(info.value)


def test_connection_refused_is_transient(settings, smtp_server):
    smtp_server.stop()
    with pytest.raises(TransientError):
        Connector().send(settings, outbound())
    smtp_server.start()  # the fixture stops it again


def test_sent_copy_appended_to_imap(settings, smtp_server, dovecot):
    Connector().send({**settings, "sent_folder": "Sent"}, outbound())
    with Mailbox(settings) as box:
        (batch,) = box.fetch_since("Sent", 0)
    assert b"\\Seen" in batch[0].flags
    assert parse_message(batch[0].raw, settings).external_id == "out-42@shop.example.test"


def test_failed_sent_copy_does_not_fail_the_send(settings, smtp_server, caplog):
    result = Connector().send({**settings, "sent_folder": "Sent", "imap_password": "wrong"},
                              outbound())
    assert result.external_id == "out-42@shop.example.test"
    assert len(smtp_server.received) == 1
    assert "could not append sent message" in caplog.text
    assert "wrong" not in caplog.text  # secrets never logged


def test_connector_test_against_both_servers(settings, dovecot):
    dovecot.deliver(b"From: a@example.com\r\nSubject: x\r\n\r\nhi\r\n")
    summary = Connector().test(settings)
    assert summary.startswith("IMAP ok: INBOX 1 messages (UIDVALIDITY ")
    assert "; SMTP ok: 250 " in summary


def test_connector_test_reports_bad_smtp(settings, smtp_server):
    smtp_server.stop()
    with pytest.raises(ChannelError, match="SMTP"):
        Connector().test(settings)
    smtp_server.start()


def test_connector_test_reports_bad_imap_login(settings):
    with pytest.raises(PermanentError, match="IMAP login failed"):
        Connector().test({**settings, "imap_password": "nope"})


@pytest.mark.parametrize("kw", [
    {"to": Handle("phone", "+4915112345678")},
    {"to": Handle(EMAIL, "Ivan <ivan@example.ru>")},
    {"idempotency_key": "has space"},
    {"idempotency_key": "a>b"},
    {"reply_token": "x@y"},
])
def test_impossible_outbound_fails_loudly(settings, kw):
    with pytest.raises(ValueError):
        build_message(settings, outbound(**kw))


def test_subject_newlines_cannot_inject_headers(settings):
    msg = build_message(settings, outbound(subject="Hi\r\nBcc: victim@example.com"))
    assert msg["Subject"] == "Hi Bcc: victim@example.com" and msg["Bcc"] is None


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_smtp_login_when_user_is_set(settings):
    from tests.servers.smtp import RecordingSMTP

    with RecordingSMTP(auth=("mailer", "pw-123")) as server:
        ok = {**settings, **server.settings(smtp_user="mailer", smtp_password="pw-123")}
        Connector().send(ok, outbound())
        assert len(server.received) == 1
        bad = {**ok, "smtp_password": "wrong"}
        with pytest.raises(PermanentError, match="535"):
            Connector().send(bad, outbound())
        with pytest.raises(PermanentError, match="SMTP failed"):
            Connector().test(bad)
        # Without credentials the server refuses the sender.
        with pytest.raises(PermanentError, match="530"):
            Connector().send({**settings, **server.settings()}, outbound())


def test_buttons_are_listed_as_plain_lines(settings):
    msg = build_message(settings, outbound(
        text="Доставка в Казань: 2–3 дня.", html="<p>Доставка в Казань: 2–3 дня.</p>",
        buttons=(Button("kb:1:yes", "Да, спасибо"), Button("kb:1:no", "Нет, нужен человек"))))
    plain = msg.get_body(("plain",)).get_content()
    assert plain.startswith("Доставка в Казань: 2–3 дня.\n\n- Да, спасибо\n- Нет, нужен человек")
    assert "- Нет, нужен человек" in msg.get_body(("html",)).get_content()


def test_one_kept_open_session_and_a_new_one_after_the_server_restarts(settings, smtp_server):
    """A campaign's mails share one SMTP session (no connect, EHLO and AUTH per mail); a
    session the server dropped meanwhile is opened again and the mail still goes out."""
    for n in range(3):
        Connector().send(settings, outbound(idempotency_key=f"keep-{n}"))
    peers = list(smtp_server.handler.peers)
    assert len(peers) == 3 and len(set(peers)) == 1
    smtp_server.stop()
    smtp_server.start()      # same port: the kept-open session is dead now
    Connector().send(settings, outbound(idempotency_key="keep-after"))
    assert len(smtp_server.received) == 4
    assert smtp_server.handler.peers[-1] != peers[0]
    # a refused recipient leaves the session usable for the next mail
    smtp_server.fail_next("RCPT", "550 5.1.1 User unknown")
    with pytest.raises(PermanentError):
        Connector().send(settings, outbound(idempotency_key="keep-refused"))
    Connector().send(settings, outbound(idempotency_key="keep-next"))
    assert len(smtp_server.received) == 5
    assert smtp_server.handler.peers[-1] == smtp_server.handler.peers[-2]


def test_a_campaign_mail_is_auto_generated_with_one_click_unsubscribe(settings, smtp_server):
    Connector().send(settings, outbound(automated=True, headers=(
        ("List-Unsubscribe", "<https://inbox.example/unsubscribe/t>"),
        ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
        ("Auto-Submitted", "auto-generated"), ("Precedence", "bulk"))))
    msg = received(smtp_server)
    assert msg.get_all("Auto-Submitted") == ["auto-generated"]   # not "auto-replied"
    assert msg["List-Unsubscribe"] == "<https://inbox.example/unsubscribe/t>"
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_a_busy_session_does_not_hold_up_another_mail(settings, smtp_server):
    """The outbox sends mails on several threads: while one kept-open session carries a
    mail, the next goes out on a second session instead of waiting for it; afterwards a
    free session is reused rather than a third opened."""
    from connectors.email import send as email_send

    Connector().send(settings, outbound(idempotency_key="pool-0"))
    cfg = email_send.normalize_settings(settings)
    with email_send._SESSIONS.session(cfg):   # the kept-open session, busy meanwhile
        Connector().send(settings, outbound(idempotency_key="pool-1"))
    Connector().send(settings, outbound(idempotency_key="pool-2"))
    peers = list(smtp_server.handler.peers)
    assert len(smtp_server.received) == 3
    assert peers[1] != peers[0]
    assert peers[2] in (peers[0], peers[1])
