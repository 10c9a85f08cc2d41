"""parse_message on specific samples, with concrete expectations."""
from __future__ import annotations

import base64
from datetime import datetime, timezone

import pytest
from tests.connectors.email.email_helpers import BASE_SETTINGS, sample

from connectors.base import EMAIL, Inbound, MalformedPayload
from connectors.email import Connector, parse_message


def parse(name: str, **settings: object) -> Inbound:
    return parse_message(sample(name), {**BASE_SETTINGS, **settings})


# --- charsets -------------------------------------------------------------------------------

def test_koi8r_encoded_words_and_body():
    msg = parse("synthetic/koi8r_reply.eml")
    assert msg.subject == "Отв: Вопрос о доставке"
    assert msg.sender_name == "Иван Петров"
    assert msg.sender.kind == EMAIL and msg.sender.value == "ivan.petrov@example.ru"
    assert msg.meta["normalized_subject"] == "Вопрос о доставке"
    assert msg.text == "Добрый день!\nПодскажите, пожалуйста, когда будет доставка заказа?"
    assert "-----Исходное сообщение-----" in msg.meta["quoted_text"]
    assert "Ваш заказ принят." in msg.meta["full_text"]


def test_windows1251_encoded_sender_from_outlook_express():
    msg = parse("mikel-mail__raw_email_bad_time.eml")
    assert msg.sender_name == "Атиковa"
    # The Date header says year 3609: not trusted, the Received date is used instead.
    assert msg.sent_at == datetime(2008, 6, 30, 9, 34, tzinfo=timezone.utc)
    assert "MailScanner" in msg.text


@pytest.mark.parametrize("name, subject, sender_name", [
    ("synthetic/cp1251_raw_headers.eml", "Счёт на оплату", "Светлана Смирнова"),
    ("synthetic/koi8r_raw_headers.eml", "Не работает оплата картой", "Ольга Кузнецова"),
])
def test_undeclared_8bit_cyrillic_headers_are_detected(name, subject, sender_name):
    msg = parse(name)
    assert msg.subject == subject
    assert msg.sender_name == sender_name
    assert "\ufffd" not in msg.text and msg.text.startswith(("Здравствуйте", "Добрый день"))


def test_koi8r_body_from_exchange_with_thread_index():
    msg = parse("mimekit__tnef_ukr.eml")
    assert msg.text.startswith("шостий")
    assert msg.thread_refs == ("thread-index:AQHTXFWT3T6z7C8m9k2GE+t0ZVEeeQ==",)
    assert [a.filename for a in msg.attachments] == ["winmail.dat"]


def test_polish_windows1250_subject_autoreply():
    msg = parse("php-mime-mail-parser__issue212.eml")
    assert msg.subject == ("Automatyczna odpowiedź: Piotrze, test z 6 miesięcy nauki ciągle "
                           "na Ciebie czeka")
    assert msg.automated and msg.meta["auto_kind"] == "auto_reply"


def test_polish_iso8859_2_reply():
    msg = parse("synthetic/iso88592_reply.eml")
    assert msg.subject == "Odp: Zamówienie nr 42 - płatność"
    assert msg.sender_name == "Łukasz Żółtowski"
    assert msg.meta["normalized_subject"] == "Zamówienie nr 42 - płatność"
    assert msg.text.endswith("Pozdrawiam\nŁukasz Żółtowski")
    assert msg.meta["quoted_text"].startswith("W dniu 12.05.2025 o 10:00")
    # In-Reply-To first, then References right to left.
    assert msg.thread_refs == ("order-42@shop.example.test", "order-41@shop.example.test")
    assert msg.reply_to_external_id == "order-42@shop.example.test"


def test_polish_windows1250_outlook_reply_folds_od_wyslano():
    msg = parse("synthetic/cp1250_outlook_reply.eml")
    assert msg.subject == "RE: Zamówienie — faktura"
    assert msg.sender_name == "Małgorzata Wiśniewska"
    assert msg.text == "Proszę o fakturę."
    assert msg.meta["quoted_text"].startswith("Od: Sklep")


def test_iso8859_2_mixed_encoded_words():
    msg = parse("php-mime-mail-parser__m0023.eml")
    assert msg.subject == "If you can read this you understand the example."
    assert msg.meta["cc"] == ["pirard@vm1.ulg.ac.be"]


def test_gb2312_subject_and_body():
    msg = parse("mail-parser__mail_test_12.eml")
    assert msg.subject == "代开各地增值税发票"
    assert msg.sender_name == "张先生"
    assert msg.text.startswith("你好！")


def test_windows1251_subject_split_mid_word():
    msg = parse("php-mime-mail-parser__m0021.eml")
    assert "Путін" in msg.subject and "=?" not in msg.subject


# --- ids and threading -----------------------------------------------------------------------

def test_reply_token_and_thread_refs_order():
    msg = parse("chatwoot__mail_with_quote.eml", reply_domain="example.com")
    assert msg.thread_refs[0] == "token:6bdc3f4d-0bec-4515-a284-5d916fdde489"
    assert msg.external_id == "CAFkiBVwJjO_k_e-LpiKi7MAQAKbHX5nkEPcf0y1R=bjcEHogMg@mail.gmail.com"
    assert msg.text == "Yes, I am providing you step how to reproduce this issue"


def test_reply_token_on_other_domain_is_ignored():
    msg = parse("chatwoot__mail_with_quote.eml", reply_domain="shop.example.test")
    assert not any(ref.startswith("token:") for ref in msg.thread_refs)


def test_reply_token_from_raw_header_mail():
    msg = parse("synthetic/cp1251_raw_headers.eml")
    assert msg.thread_refs == ("token:tok123",)


def test_multiple_in_reply_to_most_recent_first():
    msg = parse("chatwoot__multiple_in_reply_to.eml")
    assert msg.meta["in_reply_to"] == ["4e6e35f5a38b4_479f13bb90078171@small-app-01.mail",
                                       "4e6e35f5a38b4_479f13bb90078131@small-app-01.mail"]
    assert msg.thread_refs[:2] == ("4e6e35f5a38b4_479f13bb90078131@small-app-01.mail",
                                   "4e6e35f5a38b4_479f13bb90078171@small-app-01.mail")


def test_missing_message_id_gets_stable_hash_id():
    raw = b"From: a@example.com\r\nSubject: hi\r\n\r\nhello\r\n"
    first, second = parse_message(raw), parse_message(raw)
    assert first.external_id == second.external_id
    assert first.external_id.startswith("sha256:") and len(first.external_id) == 7 + 64


# --- automation ---------------------------------------------------------------------------------

def test_bounce_with_enclosed_original():
    msg = parse("sisimai__lhost-yandex-01.eml")
    assert msg.subject == "Недоставленное сообщение"
    assert msg.automated and msg.meta["auto_kind"] == "bounce"
    assert msg.meta["bounced_message_id"] == "446281417885946@web20h.yandex.ru"
    assert msg.meta["failed_recipients"] == ["kijitora@example.jp"]


def test_text_only_gmail_bounce_finds_id_in_body():
    msg = parse("flanker__bounce_gmail-invalid-address.eml")
    assert msg.meta["auto_kind"] == "bounce"
    assert msg.meta["bounced_message_id"] == \
        "CAKsfaBUUGqVZiaMrmH3TRPfq1odQPtM7Ey5YW1SgyJJRHtAjgw@mail.gmail.com"
    assert msg.meta["failed_recipients"] == ["awfawfawfawfawfaw@someserverhere.com"]


def test_bounce_from_rfc822_headers_part():
    msg = parse("flanker__bounce_mailbox-full.eml")
    assert msg.meta["auto_kind"] == "bounce"
    assert msg.meta["bounced_message_id"] == "4E326A95.3010907@example.com"


def test_mailru_bounce_in_russian():
    msg = parse("sisimai__lhost-mailru-01.eml")
    assert msg.subject == "Ваше сообщение не доставлено. Mail failure."
    assert msg.meta["auto_kind"] == "bounce"
    assert msg.meta["bounced_message_id"] == "8F3CE2D8-D60E-48C3-B9AF-BED628EE2CA5@mail.example.ru"


def test_delayed_notice_is_not_a_bounce():
    msg = parse("flanker__bounce_no-mx.eml")
    assert msg.automated
    assert msg.meta["auto_kind"] == "delayed"
    assert "bounced_message_id" not in msg.meta


def test_broken_boundary_dsn_is_still_a_bounce():
    msg = parse("cpython__msg_25.eml")  # boundary parameter truncated to "bo"
    assert msg.meta["auto_kind"] == "bounce"
    assert msg.meta["failed_recipients"] == ["scoffman@wellpartner.com"]
    assert msg.meta["bounced_message_id"] == "01040616033903.00962@server"


def test_mdn_read_receipt():
    msg = parse("flanker__disposition-notification.eml")
    assert msg.automated and msg.meta["auto_kind"] == "mdn"
    assert msg.meta["original_message_id"] == "199509192301.23456@example.org"


def test_feedback_report():
    assert parse("flanker__complaints_yahoo.eml").meta["auto_kind"] == "feedback"


@pytest.mark.parametrize("name", [
    "sisimai__rfc3834-01.eml",  # Auto-Submitted: auto-replied
    "sisimai__rfc3834-02.eml",  # Automatic reply:, null Return-Path
    "sisimai__rfc3834-03.eml",  # subject only
    "chatwoot__non_utf_encoded_mail_autoreply.eml",  # X-Autoreply
    "synthetic/ru_autoreply_subject.eml",  # "Автоответ:" subject only
])
def test_auto_replies(name):
    msg = parse(name)
    assert msg.automated and msg.meta["auto_kind"] == "auto_reply"


def test_person_is_not_automated():
    msg = parse("talon__reply_gmail.eml")
    assert not msg.automated and "auto_kind" not in msg.meta


# --- bodies, html, attachments ----------------------------------------------------------------

def test_html_sanitized_and_cid_image_attached():
    msg = parse("synthetic/html_cid_script.eml")
    assert msg.html is not None
    assert "<script" not in msg.html and "alert('x')" not in msg.html
    assert "onclick" not in msg.html and "javascript:" not in msg.html
    assert 'src="cid:shot1@example.com"' in msg.html
    inline, pdf = msg.attachments
    assert (inline.filename, inline.content_type, inline.content_id) == \
        ("shot.png", "image/png", "shot1@example.com")
    assert inline.data and inline.data.startswith(b"\x89PNG")
    assert pdf.filename == "invoice.pdf" and pdf.content_id is None and pdf.size == 720


def test_attachment_over_limit_keeps_metadata_only():
    msg = parse("synthetic/html_cid_script.eml", max_attachment_bytes=100)
    pdf = msg.attachments[1]
    assert pdf.data is None and pdf.size == 720 and pdf.error == "too large: 720 bytes"


def test_inline_images_of_multipart_related():
    msg = parse("mail-parser__mail_test_6.eml")
    assert len([a for a in msg.attachments if a.content_type == "image/png"]) == 4
    assert all(a.content_id for a in msg.attachments)


def test_html_only_message_gets_text():
    msg = parse("mail-parser__mail_test_6.eml")
    assert msg.text and "<" not in msg.text[:50]


@pytest.mark.parametrize("name", ["flanker__missing-boundaries.eml", "cpython__msg_41.eml",
                                  "flanker__mailformed-headers.eml"])
def test_broken_mime_degrades_to_text(name):
    msg = parse(name)
    assert msg.meta["full_text"].strip()


def test_iphone_reply_matches_talon_expectation():
    msg = parse("talon__reply_iphone.eml")
    assert msg.text == sample("reply_bodies/talon__iphone_reply_text.txt").decode().strip()


def test_sparrow_reply_folds_signature():
    msg = parse("talon__reply_sparrow.eml")
    expected = sample("reply_bodies/talon__sparrow_reply_text.txt").decode()
    assert msg.text == expected.split("\n-- ")[0].strip() == "Hello"
    assert "Sent with Sparrow" in msg.meta["quoted_text"]


# --- Connector.parse --------------------------------------------------------------------------

def test_connector_parse_payload():
    raw = sample("synthetic/koi8r_reply.eml")
    payload = {"raw": base64.b64encode(raw).decode(), "folder": "INBOX", "uid": 7}
    (msg,) = Connector().parse(BASE_SETTINGS, payload)
    assert msg.subject == "Отв: Вопрос о доставке"
    assert msg.meta["imap_uid"] == 7 and msg.meta["imap_folder"] == "INBOX"
    assert Connector().event_key(payload, b"") == Connector().event_key(dict(payload), b"")


@pytest.mark.parametrize("payload", [{}, {"raw": "%%% not base64"}, None])
def test_connector_parse_malformed_payload(payload):
    with pytest.raises(MalformedPayload):
        Connector().parse(BASE_SETTINGS, payload)


def test_parse_message_rejects_non_bytes():
    with pytest.raises(TypeError):
        parse_message("From: a@b.c\n\nhi", {})  # type: ignore[arg-type]


def test_addresses_written_in_the_text_are_weak_evidence():
    raw = (b"From: Ann <ann@example.com>\r\nTo: support@shop.example.test\r\nSubject: hi\r\n"
           b"Message-ID: <ev1@example.com>\r\n\r\nPlease write to Ann.Work@Corp.example.org.\r\n"
           b"Not to support@shop.example.test or ann@example.com.\r\n\r\n"
           b"On Mon, 12 May 2025 at 10:00, Bob <bob@quoted.example> wrote:\r\n> bob@quoted.example\r\n")
    msg = parse_message(raw, BASE_SETTINGS)
    assert [(h.value, h.verified) for h in msg.evidence] == [("ann.work@corp.example.org", False)]


def test_office365_ndr_names_recipient_in_prose():
    msg = parse("sisimai__lhost-office365-01.eml")
    assert msg.meta["auto_kind"] == "bounce"
    assert msg.meta["failed_recipients"] == ["kijitora@example.com"]
    assert msg.meta["bounced_message_id"] == "FFFFFFFF.EEEEEEEE@example.ed.jp"


def test_html_keeps_safe_inline_styles_only():
    raw = (b"From: a@example.com\r\nMessage-ID: <st@x>\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
           b'<p style="color:red;position:fixed;top:0;background-image:url(https://t.example/p.gif)">'
           b'Hi</p><table bgcolor="#fff" onmouseover="x()"><tr><td width="10">a</td></tr></table>')
    html = parse_message(raw, {}).html or ""
    assert 'style="color:red"' in html
    assert "position" not in html and "url(" not in html and "onmouseover" not in html
    assert 'bgcolor="#fff"' in html and 'width="10"' in html
