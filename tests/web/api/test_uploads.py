"""Files attached to a reply: POST /uploads answers a signed upload_token, the reply carries
the tokens, its Attachment rows are committed with it, and the worker sends the bytes on the
customer's channel."""
from __future__ import annotations

import io

import pytest
from sqlalchemy import select

from app.usecases.ingest import receive
from app.infra.models import Attachment, Conversation, Message
from app.infra.state import db
from tests.conftest import run_jobs, telegram_update
from tests.web.test_webhooks_whatsapp import graph, post, text_message, wa_channel  # noqa: F401

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
PDF = b"%PDF-1.7\n% faktura\n" + b"0" * 3000


def upload(api, data: bytes, filename: str, content_type: str):
    return api.post("/uploads", data={"file": (io.BytesIO(data), filename, content_type)},
                    content_type="multipart/form-data")


@pytest.fixture
def tg_conversation(ctx, telegram_channel):
    receive(telegram_channel, "1", telegram_update(1, 4242, "Пришлите чек, пожалуйста"),
            process="inline")
    return db.session.scalar(select(Conversation.id))


def test_image_reply_goes_to_telegram_as_a_photo(app, api, tg_conversation, telegram_api):
    up = upload(api, PNG, "чек 15.png", "image/png")
    assert up.status_code == 201, up.json
    assert up.json["filename"] == "чек 15.png" and up.json["content_type"] == "image/png"
    assert up.json["size"] == len(PNG) and up.json["upload_token"]
    reply = api.post(f"/conversations/{tg_conversation}/messages",
                     json={"text": "Ваш чек", "attachments": [up.json["upload_token"]]})
    assert reply.status_code == 201, reply.json
    (att,) = reply.json["attachments"]
    assert att["filename"] == "чек 15.png" and att["size"] == len(PNG)
    # committed with the message, before anything was sent
    db.session.expire_all()
    row = db.session.scalar(select(Attachment).where(Attachment.message_id == reply.json["id"]))
    assert row.path and row.content_type == "image/png"
    run_jobs(app)
    (photo,) = telegram_api.calls("sendPhoto")
    assert photo.files["photo"].data == PNG
    assert [m.params["text"] for m in telegram_api.calls("sendMessage")] == ["Ваш чек"]
    assert db.session.get(Message, reply.json["id"]).status == "sent"
    # the thread lists it and it downloads like any attachment
    listed = api.get(f"/conversations/{tg_conversation}/messages").json["items"][0]
    assert [a["filename"] for a in listed["attachments"]] == ["чек 15.png"]
    assert api.get(f"/attachments/{att['id']}").data == PNG


def test_attachment_only_reply(app, api, tg_conversation, telegram_api):
    token = upload(api, PDF, "faktura.pdf", "application/pdf").json["upload_token"]
    reply = api.post(f"/conversations/{tg_conversation}/messages",
                     json={"attachments": [token]})
    assert reply.status_code == 201, reply.json
    run_jobs(app)
    (doc,) = telegram_api.calls("sendDocument")
    assert doc.files["document"].data == PDF and doc.files["document"].filename == "faktura.pdf"
    assert telegram_api.calls("sendMessage") == []
    db.session.expire_all()
    assert db.session.get(Conversation, tg_conversation).last_message_preview == "📎 faktura.pdf"
    empty = api.post(f"/conversations/{tg_conversation}/messages", json={"text": ""})
    assert empty.status_code == 422 and "text" in empty.json["detail"]["json"]


def test_document_reply_goes_to_whatsapp(app, ctx, api, wa_channel, graph):  # noqa: F811
    post(app, wa_channel, text_message("wamid.IN1", "Poproszę fakturę", wa_id="48600100200"))
    run_jobs(app)
    conversation_id = db.session.scalar(select(Message.conversation_id))
    token = upload(api, PDF, "faktura-łódź.pdf", "application/pdf").json["upload_token"]
    reply = api.post(f"/conversations/{conversation_id}/messages",
                     json={"text": "Faktura w załączniku", "attachments": [token]})
    assert reply.status_code == 201, reply.json
    run_jobs(app)
    uploads = [r for r in graph.requests if r.kind == "upload"]
    assert len(uploads) == 1
    assert uploads[0].form["file"]["data"] == PDF
    assert uploads[0].form["file"]["filename"] == "faktura-łódź.pdf"
    (sent,) = [m for m in graph.sent() if m.get("type") == "document"]
    assert sent["to"] == "48600100200"
    assert graph.media(sent["document"]["id"]) == (PDF, "application/pdf")
    assert sent["document"]["filename"] == "faktura-łódź.pdf"
    db.session.expire_all()
    assert db.session.get(Message, reply.json["id"]).status == "sent"


def test_too_large_upload_is_refused(app, api, ctx):
    from app.infra.state import config

    config["storage"]["max_attachment_bytes"] = 1000
    refused = upload(api, PDF, "big.pdf", "application/pdf")
    assert refused.status_code == 413
    assert "1000" in refused.json["message"] and "file" in refused.json["detail"]["files"]
    assert upload(api, PDF[:1000], "ok.pdf", "application/pdf").status_code == 201
    missing = api.post("/uploads", data={}, content_type="multipart/form-data")
    assert missing.status_code == 422


def test_forged_or_foreign_tokens_are_refused(app, api, tg_conversation, telegram_api):
    from app.web.api.uploads import make_upload_token
    from app.domain.agents import create_agent

    token = upload(api, PNG, "a.png", "image/png").json["upload_token"]
    path = db.session.scalars(select(Attachment.path)).all()  # none yet: no reply sent
    assert path == []
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    other = create_agent("other@example.com", "Other", "correct horse battery", role="admin",
                         teams=["Support"])
    db.session.commit()
    foreign = make_upload_token("../../etc/passwd", "passwd", "text/plain", 10, other.id)
    for bad in (forged, "not-a-token", foreign):
        refused = api.post(f"/conversations/{tg_conversation}/messages",
                           json={"text": "x", "attachments": [token, bad]})
        assert refused.status_code == 422, refused.json
        assert list(refused.json["detail"]["json"]["attachments"]) == ["1"]
    db.session.expire_all()
    assert db.session.scalar(select(Message).where(Message.direction == "out")) is None
    unauthenticated = app.test_client().post(
        "/api/v1/uploads", data={"file": (io.BytesIO(PNG), "a.png", "image/png")},
        content_type="multipart/form-data")
    assert unauthenticated.status_code == 401
