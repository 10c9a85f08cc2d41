"""Sending and the other Graph calls, through real httpx against FakeGraphAPI."""
from __future__ import annotations

import base64
import hashlib
import threading
from datetime import datetime, timedelta, timezone

import pytest

from connectors.base import (
    PHONE, WHATSAPP, Button, Handle, Outbound, OutboundAttachment, PermanentError, SendResult,
    TransientError,
)
from connectors.whatsapp import download_media, mark_read, window_open

CUSTOMER = Handle(PHONE, "+48601234567")


def outbound(text: str = "Dzień dobry! Заказ отправлен.", **kwargs) -> Outbound:
    return Outbound(idempotency_key="msg-42", to=kwargs.pop("to", CUSTOMER), text=text, **kwargs)


# --- text ------------------------------------------------------------------------------------

def test_send_text(connector, settings, fake):
    result = connector.send(settings, outbound())
    assert isinstance(result, SendResult) and result.external_id.startswith("wamid.")
    (request,) = fake.requests
    assert request.method == "POST"
    assert request.path == "/v21.0/1122334455667/messages"
    assert request.headers["Authorization"] == "Bearer test-access-token"
    body = request.json
    assert body["messaging_product"] == "whatsapp"
    assert body["to"] == "48601234567"               # digits, no "+"
    assert body["type"] == "text"
    assert body["text"]["body"] == "Dzień dobry! Заказ отправлен."
    assert "context" not in body
    assert body["biz_opaque_callback_data"] == "msg-42"


def test_each_send_gets_its_own_wamid(connector, settings):
    first = connector.send(settings, outbound("один"))
    second = connector.send(settings, outbound("dwa"))
    assert first.external_id != second.external_id


def test_send_to_bsuid_uses_recipient(connector, settings, fake):
    connector.send(settings, outbound(to=Handle(WHATSAPP, "PL.1502576394655843")))
    body = fake.sent()[0]
    assert body["recipient"] == "PL.1502576394655843" and "to" not in body


def test_text_at_limit_is_sent_and_over_limit_refused(connector, settings, fake):
    connector.send(settings, outbound("ż" * 4096))
    with pytest.raises(PermanentError, match="4097 characters"):
        connector.send(settings, outbound("ż" * 4097))
    assert len(fake.requests) == 1                     # the long one never left


def test_reply_context(connector, settings, fake):
    connector.send(settings, outbound("Odpowiedź", reply_to_external_id="wamid.ORIGINAL=="))
    assert fake.sent()[0]["context"] == {"message_id": "wamid.ORIGINAL=="}


# --- media -----------------------------------------------------------------------------------

def test_media_upload_then_send_by_id(connector, settings, fake):
    photo = OutboundAttachment("чек.jpg", "image/jpeg", b"\xff\xd8\xff\xe0JPEG")
    pdf = OutboundAttachment("faktura-łódź.pdf", "application/pdf", b"%PDF-1.7 test")
    result = connector.send(settings, outbound("Faktura w załączniku",
                                               attachments=(photo, pdf),
                                               reply_to_external_id="wamid.Q"))
    kinds = [r.kind for r in fake.requests]
    assert kinds == ["upload", "send", "upload", "send"]
    uploads = [r for r in fake.requests if r.kind == "upload"]
    assert uploads[0].path == "/v21.0/1122334455667/media"
    assert uploads[0].form["messaging_product"] == "whatsapp"
    assert uploads[0].form["file"]["data"] == photo.data
    assert uploads[1].form["file"]["filename"] == "faktura-łódź.pdf"
    image_send, doc_send = fake.sent()
    assert image_send["type"] == "image"
    assert fake.media(image_send["image"]["id"]) == (photo.data, "image/jpeg")
    assert image_send["image"]["caption"] == "Faktura w załączniku"
    assert image_send["context"] == {"message_id": "wamid.Q"}
    assert doc_send["type"] == "document" and "context" not in doc_send
    assert doc_send["document"]["filename"] == "faktura-łódź.pdf"
    assert "caption" not in doc_send["document"]
    assert result.extra_ids and result.extra_ids[0] != result.external_id


def test_long_text_with_media_goes_as_its_own_message(connector, settings, fake):
    text = "Длинный текст. " * 100      # > 1024: too long for a caption
    connector.send(settings, outbound(text, attachments=(
        OutboundAttachment("a.png", "image/png", b"\x89PNG"),)))
    first, second = fake.sent()
    assert first["type"] == "text" and first["text"]["body"] == text
    assert second["type"] == "image" and "caption" not in second["image"]


def test_failed_upload_sends_nothing(connector, settings, fake):
    fake.fail_next("upload", 400, 131053, "Media upload error", "Unsupported file type")
    with pytest.raises(PermanentError, match="131053"):
        connector.send(settings, outbound(attachments=(
            OutboundAttachment("x.exe", "application/x-msdownload", b"MZ"),)))
    assert fake.sent() == []


# --- templates -------------------------------------------------------------------------------

def test_template(connector, settings, fake):
    template = {"name": "order_update", "language": "pl",
                "components": [{"type": "body", "parameters": [
                    {"type": "text", "text": "Paweł"}, {"type": "text", "text": "#4512"}]}]}
    connector.send(settings, outbound("ignored when a template is given", template=template))
    body = fake.sent()[0]
    assert body["type"] == "template"
    assert body["template"]["name"] == "order_update"
    assert body["template"]["language"] == {"code": "pl"}
    assert body["template"]["components"][0]["parameters"][0]["text"] == "Paweł"
    assert "text" not in body


def test_template_without_name_is_refused_locally(connector, settings, fake):
    with pytest.raises(PermanentError, match="name"):
        connector.send(settings, outbound(template={"language": "en_US"}))
    assert fake.requests == []


# --- errors ----------------------------------------------------------------------------------

def test_window_closed_is_permanent_with_explanation(connector, settings, fake):
    fake.fail_next("send", 400, 131047, "Re-engagement message",
                   "Message failed to send because more than 24 hours have passed since the "
                   "customer last replied to this number.")
    with pytest.raises(PermanentError) as err:
        connector.send(settings, outbound())
    assert "WhatsApp 24-hour window closed" in str(err.value)
    assert "131047" in str(err.value) and "more than 24 hours" in str(err.value)


@pytest.mark.parametrize("http_status, code", [
    (429, 130429), (400, 131056), (400, 80007), (400, 4), (400, 131048), (500, 1), (503, 2)])
def test_rate_limits_and_server_errors_are_transient(connector, settings, fake, http_status,
                                                      code):
    fake.fail_next("/messages", http_status, code, "Rate limit hit", "Cloud API throughput")
    with pytest.raises(TransientError, match=str(code)):
        connector.send(settings, outbound())
    # The failure was consumed: the retry succeeds.
    assert connector.send(settings, outbound()).external_id.startswith("wamid.")


@pytest.mark.parametrize("code, title", [
    (131026, "Message undeliverable"), (100, "Invalid parameter"), (131051, "Unsupported")])
def test_other_client_errors_are_permanent_with_code_and_title(connector, settings, fake, code,
                                                               title):
    fake.fail_next("send", 400, code, title, "details here")
    with pytest.raises(PermanentError) as err:
        connector.send(settings, outbound())
    assert f"{code} (#{code}) {title}: details here" in str(err.value)
    assert not isinstance(err.value, TransientError)


def test_wrong_token_is_permanent(connector, settings, fake):
    with pytest.raises(PermanentError, match="190"):
        connector.send({**settings, "access_token": "stolen?"}, outbound())


def test_unknown_phone_number_id_is_permanent(connector, settings):
    with pytest.raises(PermanentError, match="does not exist"):
        connector.send({**settings, "phone_number_id": "999"}, outbound())


def test_dropped_connection_is_transient(connector, settings, fake):
    fake.fail_next("send", 0)
    with pytest.raises(TransientError, match="unreachable"):
        connector.send(settings, outbound())


def test_unreachable_api_is_transient(connector, settings, fake):
    base = fake.base_url
    fake.stop()
    with pytest.raises(TransientError):
        connector.send({**settings, "api_base_url": base}, outbound())


def test_held_send_completes_after_release(connector, settings, fake):
    fake.hold()
    results: list[SendResult] = []
    worker = threading.Thread(target=lambda: results.append(connector.send(settings, outbound())))
    worker.start()
    assert fake.held.wait(5)
    worker.join(0.2)
    assert worker.is_alive() and results == []        # really blocked mid-send
    fake.release()
    worker.join(5)
    assert results and results[0].external_id.startswith("wamid.")


# --- mark read, media download, test ---------------------------------------------------------

def test_mark_read(settings, fake):
    mark_read(settings, "wamid.INCOMING==")
    (request,) = fake.requests
    assert request.kind == "mark_read"
    assert request.json == {"messaging_product": "whatsapp", "status": "read",
                            "message_id": "wamid.INCOMING=="}


def test_mark_read_error_is_raised(settings, fake):
    fake.fail_next("mark_read", 400, 100, "Invalid parameter", "message_id is unknown")
    with pytest.raises(PermanentError, match="message_id is unknown"):
        mark_read(settings, "wamid.X")


def test_download_media_verifies_webhook_sha256(settings, fake):
    data = "Zdjęcie paragonu / фото чека".encode() * 50
    fake.add_media("1478523690123456", data, "image/jpeg")
    webhook_sha = base64.b64encode(hashlib.sha256(data).digest()).decode()  # webhook form
    assert download_media(settings, "1478523690123456", webhook_sha, 10_000) == (data,
                                                                                 "image/jpeg")
    info, download = fake.requests
    assert info.path == "/v21.0/1478523690123456" and download.kind == "download"
    assert download.headers["Authorization"] == "Bearer test-access-token"


def test_download_media_accepts_hex_digest_and_none(settings, fake):
    fake.add_media("555", b"voice-bytes", "audio/ogg")
    assert download_media(settings, "555", hashlib.sha256(b"voice-bytes").hexdigest(), 100)[0] \
        == b"voice-bytes"
    assert download_media(settings, "555", None, 100)[1] == "audio/ogg"


def test_download_media_tampered_is_refused(settings, fake):
    fake.add_media("777", b"the real bytes", "image/png")
    wrong = base64.b64encode(hashlib.sha256(b"other bytes").digest()).decode()
    with pytest.raises(PermanentError, match="sha256 mismatch"):
        download_media(settings, "777", wrong, 1000)


def test_download_media_too_large_is_refused_before_download(settings, fake):
    fake.add_media("888", b"x" * 2000, "video/mp4")
    with pytest.raises(PermanentError, match="limit 1000"):
        download_media(settings, "888", None, 1000)
    assert [r.kind for r in fake.requests] == ["media_info"]


def test_download_unknown_media_is_permanent(settings, fake):
    with pytest.raises(PermanentError, match="does not exist"):
        download_media(settings, "404404", None, 1000)


def test_media_bytes_require_the_token(settings, fake):
    """The fake, like Meta, refuses the media URL without the bearer token."""
    import httpx

    fake.add_media("999", b"secret", "image/jpeg")
    url = httpx.get(f"{fake.base_url}/v21.0/999",
                    headers={"Authorization": "Bearer test-access-token"}).json()["url"]
    assert httpx.get(url).status_code == 401
    assert httpx.get(url, headers={"Authorization": "Bearer test-access-token"}).content \
        == b"secret"


def test_connection_test_summarizes_the_number(connector, settings, fake):
    summary = connector.test(settings)
    assert summary == "WhatsApp number +48 22 123 45 67 (Threadline Test), quality GREEN"
    (request,) = fake.requests
    assert request.path == "/v21.0/1122334455667"
    assert "display_phone_number" in request.query["fields"][0]


def test_connection_test_with_bad_token_fails(connector, settings):
    with pytest.raises(PermanentError, match="Invalid OAuth access token"):
        connector.test({**settings, "access_token": "nope"})


# --- window ----------------------------------------------------------------------------------

def test_window_open():
    now = datetime(2026, 11, 20, 12, 0, tzinfo=timezone.utc)
    assert window_open(now - timedelta(hours=23, minutes=59), now)
    assert not window_open(now - timedelta(hours=24), now)
    assert not window_open(None, now)
    assert window_open(datetime(2026, 11, 20, 1, 0), now)     # naive = UTC


def test_text_mentioning_status_read_is_a_text_message_not_a_receipt(connector, settings, fake):
    """Our send and our mark_read write different bodies to the same /messages endpoint: a
    text that talks about "status": "read" is sent as text, whole, and never as a receipt."""
    text = 'Your "status": "read" — statusy przeczytane, статус «прочитано»'
    result = connector.send(settings, outbound(text))
    mark_read(settings, "wamid.INCOMING==")
    sent, receipt = (r.json for r in fake.requests)
    assert sent["type"] == "text" and sent["text"]["body"] == text
    assert "status" not in sent and "message_id" not in sent
    assert sent["to"] == "48601234567" and sent["biz_opaque_callback_data"] == "msg-42"
    assert result.external_id.startswith("wamid.")
    assert receipt == {"messaging_product": "whatsapp", "status": "read",
                       "message_id": "wamid.INCOMING=="}


# --- quick-reply buttons ---------------------------------------------------------------------

YES_NO = (Button("kb:3:yes", "Tak, dziękuję"), Button("kb:3:no", "Nie, potrzebuję konsultanta"))


def test_up_to_three_buttons_are_interactive_reply_buttons(connector, settings, fake):
    connector.send(settings, outbound("Zwrot w ciągu 14 dni. Czy to pomogło?", buttons=YES_NO))
    (request,) = fake.requests
    body = request.json
    assert body["type"] == "interactive"
    assert body["interactive"]["type"] == "button"
    assert body["interactive"]["body"]["text"] == "Zwrot w ciągu 14 dni. Czy to pomogło?"
    replies = [b["reply"] for b in body["interactive"]["action"]["buttons"]]
    # a title over WhatsApp's 20 characters is cut (the fake refuses longer ones, like Meta)
    assert replies == [{"id": "kb:3:yes", "title": "Tak, dziękuję"},
                       {"id": "kb:3:no", "title": "Nie, potrzebuję kon…"}]


def test_four_to_ten_buttons_become_a_list(connector, settings, fake):
    buttons = tuple(Button(f"menu:{n}", f"Temat {n}") for n in range(1, 6))
    connector.send(settings, outbound("Wybierz temat", buttons=buttons))
    inter = fake.requests[0].json["interactive"]
    assert inter["type"] == "list"
    rows = inter["action"]["sections"][0]["rows"]
    assert [r["id"] for r in rows] == [f"menu:{n}" for n in range(1, 6)]


def test_more_than_ten_buttons_are_listed_in_the_text(connector, settings, fake):
    buttons = tuple(Button(f"menu:{n}", f"Temat {n}") for n in range(1, 12))
    connector.send(settings, outbound("Wybierz temat", buttons=buttons))
    body = fake.requests[0].json
    assert body["type"] == "text"
    assert body["text"]["body"].startswith("Wybierz temat\n\n1. Temat 1\n2. Temat 2")
    assert "11. Temat 11" in body["text"]["body"]
