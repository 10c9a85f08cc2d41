"""Telegram through the app: long polling that neither loses nor repeats, webhook mode,
blocked bots, and a bot chatting from a laptop with no public URL."""
from __future__ import annotations

import time

import pytest
import requests
from sqlalchemy import func, select

from app.domain.channels import add_channel
from app.usecases.ingest import receive
from app.infra.models import Channel, Event, Identity, InboundEvent, Message
from app.usecases.pollers import TelegramPoller
from app.infra.state import db
from tests.conftest import AgentSocket, login_session, run_cli, run_jobs, telegram_update, wait_until


@pytest.fixture
def polling_channel(ctx, telegram_api):
    channel = add_channel("telegram", "Polling bot", {
        "token": "123456:TEST-token", "mode": "polling", "api_base_url": telegram_api.base_url})
    db.session.commit()
    return channel


def poll(app, channel_id: int) -> None:
    poller = TelegramPoller(app, channel_id)
    poller.long_poll_seconds = 0
    with app.app_context():
        poller.poll_once()


def stored_texts() -> list[str]:
    db.session.expire_all()
    return [m.text for m in db.session.scalars(select(Message).order_by(Message.created_at, Message.id))]


def test_polling_stores_then_confirms(app, ctx, telegram_api, polling_channel):
    for n in range(3):
        telegram_api.push_update(telegram_update(100 + n, 42, f"сообщение {n}", date=1_700_000_000 + n))
    poll(app, polling_channel.id)
    run_jobs(app)
    assert stored_texts() == ["сообщение 0", "сообщение 1", "сообщение 2"]
    db.session.expire_all()
    assert db.session.get(Channel, polling_channel.id).state["telegram_offset"] == 103
    # the next poll confirms them: Telegram forgets them, nothing comes twice
    poll(app, polling_channel.id)
    assert telegram_api.calls("getUpdates")[-1].params.get("offset") in (103, "103")
    assert telegram_api.pending_updates == []


def test_poller_killed_between_fetch_and_store_loses_nothing(app, ctx, telegram_api, polling_channel):
    from connectors.telegram import fetch_updates

    telegram_api.push_update(telegram_update(200, 42, "first", date=1_700_000_000))
    telegram_api.push_update(telegram_update(201, 42, "second", date=1_700_000_001))
    settings = dict(polling_channel.settings)
    fetched = fetch_updates(settings, None, 0)   # ...and the poller dies here, nothing stored
    assert [u["update_id"] for u in fetched] == [200, 201]
    poll(app, polling_channel.id)                # restarted: the same updates come again
    run_jobs(app)
    assert stored_texts() == ["first", "second"]


def test_poller_killed_between_store_and_offset_repeats_nothing(app, ctx, telegram_api, polling_channel):
    from connectors.telegram import fetch_updates

    telegram_api.push_update(telegram_update(300, 42, "once"))
    for update in fetch_updates(dict(polling_channel.settings), None, 0):
        receive(polling_channel, str(update["update_id"]), update, process="inline")
    # died before saving the offset; the restarted poller gets the update again
    poll(app, polling_channel.id)
    run_jobs(app)
    assert stored_texts() == ["once"]
    assert db.session.scalar(select(func.count(InboundEvent.id))) == 1


def test_conflict_is_reported_on_the_channel(app, ctx, telegram_api, polling_channel):
    telegram_api.fail_next("getUpdates", 409, "Conflict: terminated by other getUpdates request; "
                           "make sure that only one bot instance is running")
    poller = TelegramPoller(app, polling_channel.id)
    poller.long_poll_seconds = 0
    poller.start()
    try:
        def error():
            db.session.expire_all()
            value = db.session.get(Channel, polling_channel.id).error
            db.session.commit()  # SQLite: a reader's open transaction holds the write lock
            return value
        message = wait_until(error, timeout=10, message="channel error")
    finally:
        poller.stop()
        poller.join(10)
    assert "Conflict" in message and "set-webhook" in message


def test_set_webhook_switches_to_webhook_mode(app_config, ctx, telegram_api, polling_channel):
    result = run_cli(app_config, "telegram", "set-webhook", str(polling_channel.id),
                     "--url", "https://inbox.example.com")
    assert result.returncode == 0, result.stderr
    call = telegram_api.calls("setWebhook")[-1]
    assert call.params["url"] == f"https://inbox.example.com/webhooks/telegram/{polling_channel.id}"
    assert call.params["secret_token"] == polling_channel.settings["secret_token"]
    db.session.expire_all()
    assert db.session.get(Channel, polling_channel.id).settings["mode"] == "webhook"
    insecure = run_cli(app_config, "telegram", "set-webhook", str(polling_channel.id),
                       "--url", "http://inbox.example.com")
    assert insecure.returncode != 0 and "https" in insecure.stderr


def test_blocked_bot_marks_the_customer_unreachable(app, ctx, telegram_channel):
    receive(telegram_channel, "1", telegram_update(1, 42, "hi"), process="inline")

    def member(update_id: int, status: str) -> dict:
        user = {"id": 42, "is_bot": False, "first_name": "Анна"}
        return {"update_id": update_id, "my_chat_member": {
            "chat": {"id": 42, "type": "private", "first_name": "Анна"}, "from": user,
            "date": int(time.time()),
            "old_chat_member": {"status": "member", "user": {"id": 7, "is_bot": True, "first_name": "bot"}},
            "new_chat_member": {"status": status, "user": {"id": 7, "is_bot": True, "first_name": "bot"},
                                **({"until_date": 0} if status == "kicked" else {})}}}

    receive(telegram_channel, "2", member(2, "kicked"), process="inline")
    identity = db.session.scalar(select(Identity).where(Identity.value == "42"))
    assert identity.reachable is False
    event = db.session.scalar(select(Event).where(Event.type == "customer.updated"))
    assert event.payload["identities"][0]["reachable"] is False
    receive(telegram_channel, "3", member(3, "member"), process="inline")
    db.session.expire_all()
    assert db.session.scalar(select(Identity).where(Identity.value == "42")).reachable is True


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite"])
def test_bot_chats_from_a_laptop_without_public_url(backend, app_config, ctx, admin, telegram_api,
                                                    polling_channel, start_server):
    """serve polls the bot itself: the customer writes, the agent sees it live and answers."""
    server = start_server(pollers=True)
    agent = login_session(server.url, "admin@example.com", "correct horse battery")
    socket = AgentSocket(server.url, agent)
    try:
        telegram_api.push_update(telegram_update(700, 9001, "Есть доставка в Казань?", first_name="Ильдар"))
        created = socket.wait_for("message.created", timeout=20)
        assert created["data"]["text"] == "Есть доставка в Казань?"
        reply = agent.post(f"{server.url}/api/v1/conversations/{created['data']['conversation_id']}/messages",
                           json={"text": "Да, 2–3 дня."})
        assert reply.status_code == 201
        sent = telegram_api.wait_for("sendMessage", 1, timeout=15)
        assert sent[0].params["text"] == "Да, 2–3 дня." and str(sent[0].params["chat_id"]) == "9001"
    finally:
        socket.close()
    assert requests.get(f"{server.url}/login", timeout=5).status_code == 200


def test_photo_is_downloaded_and_a_too_large_file_gets_a_reason(app, ctx, telegram_api, telegram_channel):
    from app.infra.models import Attachment
    from app.infra.storage import attachment_path

    telegram_api.add_file("BIG-PHOTO", b"\xff\xd8 jpeg bytes" * 50, "photos/file_1.jpg")
    telegram_api.add_file("HUGE-DOC", b"x", "documents/huge.zip", file_size=25 * 1024 * 1024)
    base = telegram_update(800, 42, "")
    photo = dict(base["message"])
    del photo["text"]
    photo["photo"] = [{"file_id": "SMALL", "file_unique_id": "s", "width": 90, "height": 90, "file_size": 10},
                      {"file_id": "BIG-PHOTO", "file_unique_id": "b", "width": 800, "height": 800,
                       "file_size": 650}]
    photo["caption"] = "Вот фото брака"
    doc = dict(base["message"], message_id=100801)
    del doc["text"]
    doc["document"] = {"file_id": "HUGE-DOC", "file_unique_id": "h", "file_name": "huge.zip",
                       "mime_type": "application/zip", "file_size": 25 * 1024 * 1024}
    receive(telegram_channel, "800", {"update_id": 800, "message": photo}, process="inline")
    receive(telegram_channel, "801", {"update_id": 801, "message": doc}, process="inline")
    run_jobs(app)
    run_jobs(app)
    db.session.expire_all()
    stored = db.session.scalar(select(Attachment).where(Attachment.remote_ref == "BIG-PHOTO"))
    assert stored.path and attachment_path(stored.path).read_bytes() == b"\xff\xd8 jpeg bytes" * 50
    huge = db.session.scalar(select(Attachment).where(Attachment.remote_ref == "HUGE-DOC"))
    assert huge.path is None and "too large" in huge.error
    assert db.session.scalar(select(Message.text).where(Message.external_id == "42:100800")) == "Вот фото брака"


def test_album_is_one_message(app, ctx, telegram_channel):
    from app.infra.models import Attachment

    def part(update_id: int, file_id: str, caption: str | None = None) -> dict:
        message = telegram_update(update_id, 42, "")["message"]
        del message["text"]
        message["media_group_id"] = "13579"
        message["photo"] = [{"file_id": file_id, "file_unique_id": file_id, "width": 1, "height": 1}]
        if caption:
            message["caption"] = caption
        return {"update_id": update_id, "message": message}

    receive(telegram_channel, "901", part(901, "P1", "Zdjęcia paczki"), process="inline")
    receive(telegram_channel, "902", part(902, "P2"), process="inline")
    receive(telegram_channel, "903", part(903, "P3"), process="inline")
    receive(telegram_channel, "9020", part(902, "P2"), process="inline")  # a repeat of part 2
    messages = db.session.scalars(select(Message)).all()
    assert len(messages) == 1 and messages[0].text == "Zdjęcia paczki"
    refs = [a.remote_ref for a in db.session.scalars(select(Attachment).order_by(Attachment.id))]
    assert refs == ["P1", "P2", "P3"]
