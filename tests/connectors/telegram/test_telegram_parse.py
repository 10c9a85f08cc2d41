"""Parsing real and real-shaped Telegram updates into normalized records."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from connectors.base import PHONE, TELEGRAM, Handle, Ignored, Inbound, MalformedPayload
from connectors.telegram import ReachabilityChange, normalize_phone

from tests.connectors.telegram.conftest import load


def test_text_message_fields(parse):
    rec = parse("teloxide_update__de_private_chat_text_message.json")
    assert isinstance(rec, Inbound)
    assert rec.external_id == "408258968:154"
    assert rec.sender == Handle(TELEGRAM, "408258968")
    assert rec.sender_name == "Hirrolot"
    assert rec.text == "4"
    assert rec.meta["username"] == "hirrolot"
    assert rec.sent_at == datetime(2020, 2, 11, 19, 20, 57, tzinfo=timezone.utc)
    assert rec.kind == "message" and rec.content_type == "text"


def test_entities_render_sanitized_html(parse):
    rec = parse("tgdocs-sample_via_tnt-tg-bot__message_with_entities.json")
    assert rec.text == "Bold and italics"
    assert rec.html == "<b>Bold</b> and <i>italics</i>"


def test_entity_offsets_are_utf16_and_html_is_escaped(parse):
    rec = parse("threadline__text_entities_emoji.json")
    assert rec.text.startswith("🎉 Dziękuję!")
    # The emoji takes two UTF-16 units: a naive slice would bold " Dziękuj".
    assert "<b>Dziękuję</b>" in rec.html
    assert '<a href="https://sklep.example.pl/z/1543"' in rec.html
    assert "&lt;b&gt;" in rec.html and rec.html.count("<b>") == 1


def test_photo_takes_largest_size(parse):
    rec = parse("teloxide_message_object__parse_caption_entities.json")
    assert rec.content_type == "photo"
    (att,) = rec.attachments
    assert att.remote_ref.endswith("ADeQADJAQ")   # the 1280x1280 one, listed last
    assert att.size == 162061 and att.content_type == "image/jpeg"
    assert rec.text == "www.example.com"
    assert rec.sender_name == "Crax | rats addict"


def test_photo_largest_even_when_not_last(connector):
    update = load("threadline__album_photo_1.json")
    update["message"]["photo"].reverse()
    (rec,) = connector.parse({}, update)
    assert rec.attachments[0].remote_ref == "AgACAgIAAxkBAAIBlGd3album1_x"


@pytest.mark.parametrize("name, content_type, file_id, filename, mime, size", [
    ("aiogram2-dataset_message_object__message_with_document.json", "document",
     "BQADAgADpgADy_JxS66XQTBRHFleAg", "test.docx",
     "application/vnd.openxmlformats-officedocument.wordprocessingml.document", 21331),
    ("chatwoot-spec__voice.json", "voice",
     "AwACAgUAAxkBAANjYVwnWF_w8LYTchqVdK9dY7mbwYEAAskDAALCoeBWFvS2u4zS6HAhBA", "voice.ogg",
     "audio/ogg", 11833),
    ("threadline__audio.json", "audio", "CQACAgIAAxkBAAIBmWd3audio0000", "mazurek.mp3",
     "audio/mpeg", 2948113),
    ("chatwoot-spec__video.json", "video",
     "BAACAgUAAxkBAAOGYV3e_F8-v3OoAs23SJIBolyXMMMAAqsDAAKd8fBW4X9xFmpoAlghBA", "IMG_2170.MOV",
     "video/mp4", 291286),
    ("threadline__video_note.json", "video_note", "DQACAgIAAxkBAAIBk2d3vnote0000000000",
     "video_note.mp4", "video/mp4", 412934),
    ("teloxide_message_object__de_sticker.json", "sticker",
     "CAACAgIAAxkBAAESLdBjMImep-J0W8XaTN6S_Lz1-j1QIQACIwADsND4DGmmygHGlyggKQQ", "sticker.tgs",
     "application/x-tgsticker", 16639),
])
def test_media_kinds(parse, name, content_type, file_id, filename, mime, size):
    rec = parse(name)
    assert rec.content_type == content_type
    (att,) = rec.attachments
    assert (att.remote_ref, att.filename, att.content_type, att.size) == (file_id, filename,
                                                                          mime, size)
    assert att.data is None


def test_document_caption_and_cyrillic_sender(parse):
    rec = parse("aiogram2-dataset_message_object__message_with_document.json")
    assert rec.text == "Read my document"
    assert parse("teloxide_message_object__de_sticker.json").sender_name == "Андрей Власов"
    assert parse("teloxide_message_object__de_sticker.json").text == "😡"


def test_location(parse):
    rec = parse("aiogram2-dataset_message_object__message_with_location.json")
    assert rec.content_type == "location"
    assert (rec.meta["latitude"], rec.meta["longitude"]) == (55.693416, 37.624605)
    assert "55.693416" in rec.text and "37.624605" in rec.text


def test_venue_wins_over_its_location(parse):
    rec = parse("threadline__venue.json")
    assert rec.content_type == "venue"
    assert "Pałac Kultury i Nauki" in rec.text and "plac Defilad 1" in rec.text
    assert rec.meta["latitude"] == 52.231958 and rec.meta["longitude"] == 21.006725


def test_own_contact_is_a_verified_phone(parse):
    rec = parse("threadline__contact_own.json")
    assert rec.content_type == "contact"
    assert rec.also_known_as == (Handle(PHONE, "+48601234567", verified=True),)
    assert rec.evidence == ()
    assert "Zofia Wąsowska" in rec.text


def test_someone_elses_contact_is_only_evidence(parse):
    rec = parse("threadline__contact_other.json")
    assert rec.also_known_as == ()
    assert rec.evidence == (Handle(PHONE, "+79161234567", verified=False),)
    assert rec.meta["contact"]["name"] == "Ирина Петрова"


@pytest.mark.parametrize("raw, e164", [
    ("48601234567", "+48601234567"),
    ("+48 601 234 567", "+48601234567"),
    ("+7 (916) 123-45-67", "+79161234567"),
    ("79161234567", "+79161234567"),
    ("12", None),
    ("", None),
])
def test_normalize_phone(raw, e164):
    assert normalize_phone(raw) == e164


def test_edit_keeps_the_original_external_id(parse):
    original = parse("threadline__text_original.json")
    edit = parse("threadline__text_edited.json")
    assert edit.kind == "edit" and original.kind == "message"
    assert edit.external_id == original.external_id == "312450981:407"
    assert edit.text.endswith("№1543?")
    assert edit.sent_at == datetime.fromtimestamp(1767226145, tz=timezone.utc)
    assert edit.meta["original_sent_at"] == original.sent_at.isoformat()


def test_legacy_edited_message_sample(parse):
    rec = parse("tgdocs-sample_via_tnt-tg-bot__edited_message.json")
    assert rec.kind == "edit" and rec.external_id == "1111111:1365"
    assert rec.text == "Edited text"


def test_album_parts_share_media_group_id(parse):
    first = parse("threadline__album_photo_1.json")
    second = parse("threadline__album_photo_2.json")
    assert first.meta["media_group_id"] == second.meta["media_group_id"] == "13875492017364521"
    assert first.external_id != second.external_id
    assert first.text == "Zdjęcia paragonu — proszę o zwrot" and second.text == ""


def test_forward_origin_user(parse):
    rec = parse("threadline__forward_origin_user.json")
    assert rec.meta["forward"]["type"] == "user"
    assert rec.meta["forward"]["name"] == "Marek Łukaszewicz"
    assert rec.meta["forward"]["id"] == 99112233
    assert rec.text == "[Forwarded from Marek Łukaszewicz]\nCzy to zamówienie dotarło?"


def test_legacy_forward_fields(parse):
    rec = parse("tgdocs-sample_via_tnt-tg-bot__forwarded_message.json")
    assert rec.meta["forward"] == {"type": "user", "name": "Forward Firstname Forward Lastname",
                                   "id": 222222, "date": 1441645550}
    # A forwarded "/start" is not the customer opening a deep link.
    assert rec.source is None


def test_reply_to(parse):
    rec = parse("threadline__reply_to_bot.json")
    assert rec.reply_to_external_id == "583920117:12"
    assert parse("aiogram2-dataset_message_object__reply_message.json").reply_to_external_id \
        == "12345678:11223"


def test_start_deep_link_is_first_touch_source(parse):
    rec = parse("threadline__start_deep_link.json")
    assert rec.source == {"channel": "telegram", "deep_link": "ad_spring2026-ru"}
    assert parse("tgdocs-sample_via_tnt-tg-bot__message.json").source is None  # bare /start


@pytest.mark.parametrize("name", ["chatwoot-spec__group_text_ignored.json",
                                  "threadline__supergroup_text.json",
                                  "teloxide_message_object__issue_419.json"])
def test_group_chats_ignored_by_default(parse, name):
    rec = parse(name)
    assert isinstance(rec, Ignored)
    assert rec.reason.startswith("group chat") and "allow_groups" in rec.reason


def test_group_chat_allowed(parse):
    rec = parse("threadline__supergroup_text.json", allow_groups=True)
    assert isinstance(rec, Inbound)
    assert rec.external_id == "-1002233445566:51"
    assert rec.sender == Handle(TELEGRAM, "312450981")
    assert rec.meta["chat_title"] == "Клиенты — обсуждение"


def test_blocked_bot_is_a_reachability_change(parse):
    rec = parse("teloxide_update__issue_523.json")
    assert rec == ReachabilityChange(Handle(TELEGRAM, "0"), reachable=False,
                                     at=datetime.fromtimestamp(1644677726, tz=timezone.utc))


def test_unblocked_bot_is_reachable_again(parse):
    rec = parse("threadline__my_chat_member_unblocked.json")
    assert isinstance(rec, ReachabilityChange)
    assert rec.reachable is True and rec.handle.value == "312450981"


@pytest.mark.parametrize("name, reason", [
    ("tgdocs-sample_via_tnt-tg-bot__inline_query.json", "inline_query"),
    ("tgdocs-sample_via_tnt-tg-bot__chosen_inline_query.json", "chosen_inline_result"),
    ("teloxide_update__message_reaction_updated.json", "message_reaction"),
    ("teloxide_update__new_update_kind_error.json", "unknown update kind: new_update_kind"),
])
def test_other_update_kinds_ignored_with_reason(parse, name, reason):
    rec = parse(name)
    assert isinstance(rec, Ignored) and reason in rec.reason


def test_service_message_ignored(connector):
    body = load("telegrambots__getUpdates_response_write_access_allowed.json")
    (rec,) = connector.parse({}, body["result"][0])
    assert rec == Ignored("service message: write_access_allowed")


def test_missing_update_id_fails_loudly(connector):
    with pytest.raises(MalformedPayload, match="update_id"):
        connector.parse({}, load("threadline__message_no_update_id.json"))


@pytest.mark.parametrize("mutate, field", [
    (lambda m: m.pop("chat"), "chat"),
    (lambda m: m.pop("message_id"), "message_id"),
    (lambda m: m.pop("date"), "date"),
    (lambda m: m["photo"][-1].pop("file_id"), "file_id"),
])
def test_missing_required_message_fields_fail_loudly(connector, mutate, field):
    update = load("threadline__album_photo_1.json")
    mutate(update["message"])
    with pytest.raises(MalformedPayload, match=field):
        connector.parse({}, update)


def test_caption_only_message_is_text(parse):
    rec = parse("chatwoot-spec__caption_only.json")
    assert rec.content_type == "text" and rec.text == "test"


def test_unknown_content_is_shown_not_dropped(connector):
    update = load("threadline__text_original.json")
    del update["message"]["text"]
    update["message"]["story"] = {"chat": {"id": 1, "type": "private"}, "id": 5}
    (rec,) = connector.parse({}, update)
    assert rec.content_type == "unsupported" and "story" in rec.text


def test_button_press_is_a_message_with_the_buttons_title_and_id(parse):
    rec = parse("telegrambots__callback_query_with_message.json")
    assert isinstance(rec, Inbound)
    assert rec.button_id == "*"
    # the fixture pressed "*", the first button with that data is the "-=Font Size=-" row
    assert rec.text == "-=Font Size=-"
    assert rec.external_id == "callback:4382bfdwdsb323b2d9"
    assert rec.sender == Handle(TELEGRAM, "1")
    assert rec.meta["callback_query_id"] == "4382bfdwdsb323b2d9"
    assert rec.reply_to_external_id == "2:3572"      # the bot's message with the keyboard
    assert rec.content_type == "button"


def test_button_press_without_the_keyboard_keeps_the_data_as_text(parse):
    rec = parse("tgdocs-sample_via_tnt-tg-bot__callback_query.json")
    assert isinstance(rec, Inbound)
    assert rec.text == rec.button_id == "Data from button callback"
    assert rec.reply_to_external_id is None


def test_button_press_in_a_group_is_ignored_unless_groups_are_enabled(connector):
    update = load("telegrambots__callback_query_with_message.json")
    update["callback_query"]["message"]["chat"].update(id=-100, type="supergroup")
    (rec,) = connector.parse({}, update)
    assert isinstance(rec, Ignored) and "group" in rec.reason
    update["callback_query"].pop("data")
    (rec,) = connector.parse({"allow_groups": True}, update)
    assert isinstance(rec, Ignored) and "without data" in rec.reason
