"""Sending, getMe, polling, webhooks and downloads: real PTB over HTTP against the fake API."""
from __future__ import annotations

import random
import threading

import pytest

from connectors.base import (
    TELEGRAM,
    Button,
    Handle,
    Outbound,
    OutboundAttachment,
    PermanentError,
    TransientError,
)
from connectors.telegram import (
    ALLOWED_UPDATES,
    answer_callback,
    PollingConflict,
    delete_webhook,
    download_file,
    fetch_updates,
    set_webhook,
    split_text,
)
from tests.fakes.telegram_api import CONFLICT_OTHER_POLLER, FakeTelegramAPI

from tests.connectors.telegram.conftest import TOKEN, load

CHAT = 312450981


def out(text: str = "", **kw) -> Outbound:
    return Outbound(idempotency_key="k-1", to=Handle(TELEGRAM, str(CHAT)), text=text, **kw)


def test_send_text(connector, fake, settings):
    result = connector.send(settings, out("Здравствуйте! Zażółć gęślą jaźń."))
    (call,) = fake.calls("sendMessage")
    assert call.params["text"] == "Здравствуйте! Zażółć gęślą jaźń."
    assert str(call.params["chat_id"]) == str(CHAT)
    assert result.external_id == f"{CHAT}:1" and result.extra_ids == ()
    assert fake.delivery_count(CHAT, "Здравствуйте! Zażółć gęślą jaźń.") == 1


def test_long_text_is_split_in_order(connector, fake, settings):
    words = [f"słowo{n:04d}" for n in range(455)]        # 455 * 10 chars - 1 = 4549
    text = " ".join(words) + "\n" + "к" * 450             # exactly 5000 characters
    assert len(text) == 5000
    result = connector.send(settings, out(text))
    parts = [c.params["text"] for c in fake.calls("sendMessage")]
    assert len(parts) == 2
    assert all(len(p) <= 4096 for p in parts)
    # Cut after the last space before the limit: nothing lost, no word broken, order kept.
    assert parts[0] + parts[1] == text
    assert parts[0].startswith("słowo0000") and parts[0].endswith("słowo0408 ")
    assert parts[1].startswith("słowo0409") and parts[1].endswith("к" * 450)
    assert result.external_id == f"{CHAT}:1" and result.extra_ids == (f"{CHAT}:2",)


def test_split_text_prefers_newlines_and_counts_utf16():
    assert split_text("abc") == ["abc"]
    parts = split_text("a" * 3000 + "\n" + "b" * 3000)
    assert parts == ["a" * 3000 + "\n", "b" * 3000]
    emoji = "😀" * 3000                                     # 6000 UTF-16 units, no boundaries
    parts = split_text(emoji)
    assert "".join(parts) == emoji
    assert all(len(p.encode("utf-16-le")) // 2 <= 4096 for p in parts)


def _utf16(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _random_texts(rng: random.Random, count: int, limit: int):
    words = ["Здравствуйте", "заказ", "№1543", "Zażółć", "gęślą", "jaźń", "ok", "a", "😀",
             "👩‍💻", "🇵🇱", "x" * (limit // 3), "ё" * (limit + 7), "😀" * (limit // 2 + 3)]
    gaps = [" ", "  ", "\n", "\n\n", " \n", "\n \n", "\t", "\u00a0", " " * (limit // 4)]
    for _ in range(count):
        pieces = []
        for _ in range(rng.randrange(1, 60)):
            pieces.append(rng.choice(words))
            pieces.append(rng.choice(gaps))
        if rng.random() < 0.5:
            pieces.pop()                                  # sometimes trailing whitespace
        if rng.random() < 0.2:
            pieces.insert(0, rng.choice(gaps))            # sometimes leading whitespace
        yield "".join(pieces)


@pytest.mark.parametrize("limit", [7, 16, 64, 300])
def test_split_text_parts_join_to_the_text_exactly(limit):
    rng = random.Random(limit)
    checked = 0
    for text in _random_texts(rng, 400, limit):
        parts = split_text(text, limit)
        assert "".join(parts) == text                     # character for character
        assert all(_utf16(p) <= limit for p in parts)
        assert all(p for p in parts) or parts == [""]
        if len(parts) > 1:
            checked += 1
            # Telegram refuses a blank text: every part carries something visible.
            assert all(p.strip() for p in parts), parts
    assert checked > 100


@pytest.mark.parametrize("gap", ["\n\n", "  ", " \n ", "\n\n\n"])
@pytest.mark.parametrize("shift", range(-3, 4))
def test_split_text_keeps_whitespace_at_the_cut(gap, shift):
    # The whitespace sits right at, before or after the limit.
    head = "Привет, это длинный ответ. " * 200
    head = head[:4096 + shift - len(gap) // 2]
    text = head + gap + "Dziękujemy za zamówienie 😀 " * 10
    parts = split_text(text)
    assert "".join(parts) == text
    assert len(parts) == 2 and all(_utf16(p) <= 4096 for p in parts)
    # Cut where a whitespace run ends: the run stays whole at the end of the first part.
    assert parts[0][-1].isspace() and not parts[1][0].isspace()
    if len(head) + len(gap) <= 4096:
        assert parts[0].endswith(gap) and parts[1].startswith("Dziękujemy")


def test_send_photo_and_document(connector, fake, settings):
    result = connector.send(settings, out(attachments=(
        OutboundAttachment("paragon.png", "image/png", b"\x89PNG\r\n\x1a\nfake"),
        OutboundAttachment("faktura_1543.pdf", "application/pdf", b"%PDF-1.4 fake"),
    )))
    (photo,) = fake.calls("sendPhoto")
    (doc,) = fake.calls("sendDocument")
    assert photo.files["photo"].data == b"\x89PNG\r\n\x1a\nfake"
    assert doc.files["document"].data == b"%PDF-1.4 fake"
    assert doc.files["document"].filename == "faktura_1543.pdf"
    assert fake.calls("sendMessage") == []
    assert (result.external_id, result.extra_ids) == (f"{CHAT}:1", (f"{CHAT}:2",))


def test_text_then_attachment(connector, fake, settings):
    result = connector.send(settings, out("Faktura w załączniku", attachments=(
        OutboundAttachment("f.pdf", "application/pdf", b"%PDF"),)))
    assert [r.method for r in fake.requests] == ["sendMessage", "sendDocument"]
    assert result.extra_ids == (f"{CHAT}:2",)


def test_reply_uses_reply_parameters(connector, fake, settings):
    connector.send(settings, out("Ответ", reply_to_external_id=f"{CHAT}:407"))
    (call,) = fake.calls("sendMessage")
    reply = call.params["reply_parameters"]
    assert reply["message_id"] == 407
    assert reply.get("allow_sending_without_reply") is True
    assert "chat_id" not in reply                         # same chat: no cross-chat reply


def test_429_is_transient_with_retry_after(connector, fake, settings):
    fake.fail_next("sendMessage", 429, "Too Many Requests: retry after 3", {"retry_after": 3})
    with pytest.raises(TransientError) as info:
        connector.send(settings, out("hi"))
    assert info.value.retry_after == 3
    assert fake.delivery_count(CHAT, "hi") == 0
    connector.send(settings, out("hi"))                  # the next attempt goes through
    assert fake.delivery_count(CHAT, "hi") == 1


def test_blocked_is_permanent(connector, fake, settings):
    fake.fail_next("sendMessage", 403, "Forbidden: bot was blocked by the user")
    with pytest.raises(PermanentError, match="bot was blocked by the user"):
        connector.send(settings, out("hi"))


def test_bad_request_is_permanent(connector, fake, settings):
    fake.fail_next("sendMessage", 400, "Bad Request: chat not found")
    with pytest.raises(PermanentError, match="(?i)chat not found"):
        connector.send(settings, out("hi"))


@pytest.mark.parametrize("status", [500, 502])
def test_server_errors_are_transient(connector, fake, settings, status):
    fake.fail_next("sendMessage", status, "Internal Server Error")
    with pytest.raises(TransientError) as info:
        connector.send(settings, out("hi"))
    assert info.value.retry_after is None


def test_unreachable_api_is_transient_and_hides_token(connector):
    dead = FakeTelegramAPI().start()
    url = dead.base_url
    dead.stop()
    with pytest.raises(TransientError) as info:
        connector.send({"token": TOKEN, "api_base_url": url}, out("hi"))
    assert TOKEN not in str(info.value)


def test_wrong_token_is_permanent_and_not_echoed(connector, fake, settings):
    with pytest.raises(PermanentError, match="token") as info:
        connector.send({**settings, "token": "42:wrong"}, out("hi"))
    assert "42:wrong" not in str(info.value)


def test_send_to_non_telegram_handle_is_permanent(connector, fake, settings):
    with pytest.raises(PermanentError):
        connector.send(settings, Outbound("k", Handle("email", "a@b.pl"), "hi"))
    assert fake.requests == []


def test_hold_blocks_until_released(connector, fake, settings):
    fake.hold("sendMessage")
    done = threading.Event()
    thread = threading.Thread(target=lambda: (connector.send(settings, out("czekam")), done.set()))
    thread.start()
    fake.wait_for("sendMessage")
    assert not done.wait(0.2) and fake.delivery_count(CHAT, "czekam") == 0
    fake.release()
    thread.join(5)
    assert done.is_set() and fake.delivery_count(CHAT, "czekam") == 1


def test_getme(connector, fake, settings):
    assert connector.test(settings) == "@threadline_test_bot (id 7000000001, name Threadline Test)"
    assert [r.method for r in fake.requests] == ["getMe"]


def test_fetch_updates_offset_confirms(fake, settings):
    first = fake.push_update(load("threadline__text_original.json"))
    second = fake.push_update(load("threadline__text_edited.json"))
    got = fetch_updates(settings, None, 0)
    assert [u["update_id"] for u in got] == [first, second]
    assert got[0]["message"]["text"] == "Здравствуйте! Где мой заказ №1542?"   # raw JSON
    assert [u["update_id"] for u in fetch_updates(settings, None, 0)] == [first, second]
    assert [u["update_id"] for u in fetch_updates(settings, second, 0)] == [second]
    assert fetch_updates(settings, second + 1, 0) == []
    assert fake.pending_updates == []
    call = fake.calls("getUpdates")[0]
    assert call.params["allowed_updates"] == list(ALLOWED_UPDATES)


def test_fetch_updates_long_poll_wakes_on_new_update(fake, settings):
    timer = threading.Timer(0.3, lambda: fake.push_update({"update_id": 9, **{
        "message": load("threadline__text_original.json")["message"]}}))
    timer.start()
    got = fetch_updates(settings, None, 5)
    timer.join()
    assert [u["update_id"] for u in got] == [9]


def test_malformed_update_does_not_block_the_batch(fake, settings, connector):
    fake.push_update({"update_id": 1, "message": {"text": "no chat, no id"}})
    fake.push_update(load("threadline__text_original.json"))
    got = fetch_updates(settings, None, 0)
    assert len(got) == 2                                   # both raw, the app decides


def test_409_is_polling_conflict(fake, settings):
    fake.fail_next("getUpdates", 409, CONFLICT_OTHER_POLLER)
    with pytest.raises(PollingConflict, match="only one bot instance"):
        fetch_updates(settings, None, 0)


def test_other_polling_errors_are_transient(fake, settings):
    fake.fail_next("getUpdates", 502, "Bad Gateway")
    with pytest.raises(TransientError):
        fetch_updates(settings, None, 0)
    fake.fail_next("getUpdates", 429, "Too Many Requests: retry after 5", {"retry_after": 5})
    with pytest.raises(TransientError) as info:
        fetch_updates(settings, None, 0)
    assert info.value.retry_after == 5


def test_webhook_set_and_delete(fake, settings):
    message = set_webhook(settings, "https://inbox.example.pl/webhooks/telegram/7")
    assert "https://inbox.example.pl/webhooks/telegram/7" in message
    assert fake.webhook["url"] == "https://inbox.example.pl/webhooks/telegram/7"
    assert fake.webhook["secret_token"] == settings["secret_token"]
    assert fake.webhook["allowed_updates"] == ["message", "edited_message", "my_chat_member",
                                               "callback_query"]
    with pytest.raises(PollingConflict, match="webhook is active"):
        fetch_updates(settings, None, 0)
    delete_webhook(settings)
    assert fake.webhook["url"] == ""
    assert fetch_updates(settings, None, 0) == []


def test_set_webhook_needs_secret(fake, settings):
    with pytest.raises(ValueError, match="secret_token"):
        set_webhook({**settings, "secret_token": ""}, "https://x.example/hook")
    assert fake.calls("setWebhook") == []


def test_download_file(fake, settings):
    fake.add_file("BQACAgIAAxkBAAIB", "Счёт №7 — zażółć".encode(), "documents/file_12.txt")
    data, name = download_file(settings, "BQACAgIAAxkBAAIB")
    assert data.decode() == "Счёт №7 — zażółć"
    assert name == "file_12.txt"
    assert fake.calls("download")[0].params["file_path"] == "documents/file_12.txt"


def test_download_limit_uses_file_size_before_downloading(settings):
    local = FakeTelegramAPI(token=TOKEN, download_limit=None).start()   # local Bot API server
    try:
        local.add_file("BIG", b"tiny", "videos/file_3.mp4", file_size=25 * 1024 * 1024)
        with pytest.raises(PermanentError, match="file too large"):
            download_file({**settings, "api_base_url": local.base_url}, "BIG")
        assert local.calls("getFile") and local.calls("download") == []
    finally:
        local.stop()


def test_download_too_big_for_cloud_api(fake, settings):
    fake.add_file("BIG", b"tiny", "videos/file_4.mp4", file_size=21 * 1024 * 1024)
    with pytest.raises(PermanentError, match="file too large"):
        download_file(settings, "BIG")


def test_download_custom_limit(fake, settings):
    fake.add_file("SMALL", b"x" * 100, "photos/file_5.jpg")
    with pytest.raises(PermanentError, match="100 bytes > 10"):
        download_file(settings, "SMALL", max_bytes=10)
    assert fake.calls("download") == []


def test_unknown_file_is_permanent(fake, settings):
    with pytest.raises(PermanentError, match="(?i)invalid file_id"):
        download_file(settings, "nope")


def test_buttons_go_out_as_an_inline_keyboard_and_come_back_as_a_press(connector, fake,
                                                                      settings):
    buttons = (Button("kb:7:yes", "Да, спасибо"), Button("kb:7:no", "Нет, нужен человек"))
    result = connector.send(settings, out("Доставка в Казань: 2–3 дня.", buttons=buttons))
    (call,) = fake.calls("sendMessage")
    assert call.params["reply_markup"] == {"inline_keyboard": [
        [{"text": "Да, спасибо", "callback_data": "kb:7:yes"}],
        [{"text": "Нет, нужен человек", "callback_data": "kb:7:no"}]]}
    chat, message_id = result.external_id.split(":")
    sent = fake.message(int(chat), int(message_id))
    # the customer presses "no": Telegram sends the callback query with the message it is on
    update = {"update_id": 1, "callback_query": {
        "id": "cbq-1", "from": {"id": CHAT, "is_bot": False, "first_name": "Ира"},
        "message": sent, "chat_instance": "1", "data": "kb:7:no"}}
    (press,) = connector.parse(settings, update)
    assert press.button_id == "kb:7:no" and press.text == "Нет, нужен человек"
    assert press.reply_to_external_id == result.external_id
    answer_callback(settings, press.meta["callback_query_id"])
    (answered,) = fake.calls("answerCallbackQuery")
    assert answered.params["callback_query_id"] == "cbq-1"


def test_keyboard_rides_on_the_last_part_of_a_long_text(connector, fake, settings):
    connector.send(settings, out("слово " * 1000, buttons=(Button("menu:1", "Доставка"),)))
    calls = fake.calls("sendMessage")
    assert len(calls) == 2
    assert "reply_markup" not in calls[0].params and "reply_markup" in calls[1].params


def test_a_button_id_over_64_bytes_is_refused_before_sending(connector, fake, settings):
    with pytest.raises(PermanentError, match="64 bytes"):
        connector.send(settings, out("x", buttons=(Button("k" * 65, "t"),)))
    assert fake.calls("sendMessage") == []
