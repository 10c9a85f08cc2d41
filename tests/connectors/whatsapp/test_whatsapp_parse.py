"""parse(): every kind WhatsApp sends, from real samples and our own real-shaped ones."""
from __future__ import annotations

import copy
from datetime import datetime, timezone

import pytest

from connectors.base import (
    EMAIL, PHONE, WHATSAPP, Handle, Ignored, Inbound, MalformedPayload, StatusUpdate,
)
from connectors.whatsapp import NumberChange, phone_number_ids

SAMPLE_PHONE = "+972987654321"
SAMPLE_BSUID = "US.13491208655302741918"


def parse_one(connector, load, name, settings=None):
    _, payload = load(name)
    records = connector.parse(settings or {}, payload)
    assert len(records) == 1, records
    return records[0]


def message_of(name_payload):
    return name_payload["entry"][0]["changes"][0]["value"]["messages"][0]


# --- batches and identity --------------------------------------------------------------------

def test_batch_yields_every_entry_change_message_and_status(connector, load):
    _, payload = load("threadline_batch_multi_entry.json")
    records = connector.parse({}, payload)
    kinds = [type(r).__name__ for r in records]
    assert kinds == ["Inbound", "Inbound", "Inbound", "StatusUpdate", "StatusUpdate",
                     "Inbound", "StatusUpdate"]
    russian, polish, photo, delivered, failed, reaction, read = records
    assert russian.text == "Здравствуйте! Где мой заказ №4512?"
    assert russian.sender == Handle(PHONE, "+79161234567")
    assert russian.sender_name == "Ольга Смирнова"
    assert polish.text == "Dzień dobry, zażółć gęślą jaźń — czy mogę zmienić adres dostawy?"
    assert polish.sender_name == "Paweł Żółkiewski"
    assert polish.sender == Handle(PHONE, "+48601234567")
    assert photo.text == "Вот чек" and photo.sender == russian.sender
    assert (delivered.status, failed.status, read.status) == ("delivered", "failed", "read")
    assert failed.error == "131026 Message undeliverable: Message Undeliverable."
    assert reaction.kind == "reaction" and reaction.sender == Handle(PHONE, "+48501234567")
    assert reaction.reply_to_external_id == read.external_id


def test_phone_number_ids_covers_every_entry(load):
    _, payload = load("threadline_batch_multi_entry.json")
    assert phone_number_ids(payload) == {"1122334455667", "2233445566778"}


def test_phone_number_ids_tolerates_junk():
    assert phone_number_ids({"entry": [{"changes": [{"value": None}]}, "x"]}) == set()
    assert phone_number_ids([]) == set()


def test_text_identity_name_wamid_and_time(connector, load):
    record = parse_one(connector, load, "pywa_message__text.json")
    assert isinstance(record, Inbound)
    assert record.external_id == "wamid.xyzxyz"
    assert record.text == "Body Text" and record.content_type == "text"
    assert record.sender == Handle(PHONE, SAMPLE_PHONE)
    assert record.sender_name == "Test Name"
    assert Handle(WHATSAPP, "972987654321") in record.also_known_as
    assert Handle(WHATSAPP, SAMPLE_BSUID) in record.also_known_as
    assert record.meta["bsuid"] == SAMPLE_BSUID
    assert record.meta["parent_bsuid"] == "US.ENT.11815799212886844830"
    assert record.sent_at == datetime(2023, 10, 11, 16, 53, 43, tzinfo=timezone.utc)
    assert record.sent_at.tzinfo is not None


def test_username_user_without_phone_is_identified_by_bsuid(connector, load):
    record = parse_one(connector, load, "threadline_username_user_no_phone.json")
    assert record.sender == Handle(WHATSAPP, "PL.1502576394655843")
    assert not any(h.kind == PHONE for h in (record.sender, *record.also_known_as))
    assert record.meta["bsuid"] == "PL.1502576394655843"
    assert record.meta["username"] == "@ola.nowak"
    assert record.sender_name == "Ola"
    assert record.text == "Cześć, mam pytanie o fakturę"


def test_sender_name_is_taken_from_the_matching_contact(connector, load):
    _, payload = load("threadline_batch_multi_entry.json")
    value = payload["entry"][0]["changes"][0]["value"]
    value["contacts"].reverse()        # order of contacts[] must not matter
    first, second = connector.parse({}, payload)[:2]
    assert first.sender_name == "Ольга Смирнова" and second.sender_name == "Paweł Żółkiewski"


# --- message kinds ---------------------------------------------------------------------------

@pytest.mark.parametrize("name, content_type, media_id, mime, caption", [
    ("pywa_message__image.json", "photo", "65463453", "image/jpeg", ""),
    ("pywa_message__video.json", "video", "765756756", "video/mp4", "caption"),
    ("pywa_message__audio.json", "audio", "1234567890987654321", "audio/ogg; codecs=opus", ""),
    ("pywa_message__voice.json", "voice", "1234567890987654321", "audio/ogg; codecs=opus", ""),
    ("pywa_message__document.json", "document", "1234567890987654321", "application/pdf",
     "caption"),
    ("pywa_message__static_sticker.json", "sticker", "1234567890987654321", "image/webp", ""),
    ("pywa_message__animated_sticker.json", "sticker", "1234567890987654321", "image/webp", ""),
])
def test_media_kinds(connector, load, name, content_type, media_id, mime, caption):
    _, payload = load(name)
    source = message_of(payload)[message_of(payload)["type"]]
    record = connector.parse({}, payload)[0]
    assert record.content_type == content_type
    assert record.text == caption
    (attachment,) = record.attachments
    assert attachment.remote_ref == media_id and attachment.content_type == mime
    assert attachment.data is None            # fetched later via download_media
    (media,) = record.meta["media"]
    assert media["id"] == media_id and media["sha256"] == source["sha256"]
    assert media["mime_type"] == mime


def test_document_keeps_its_filename_and_sticker_its_animation(connector, load):
    doc = parse_one(connector, load, "pywa_message__document.json")
    assert doc.attachments[0].filename == "filename.pdf"
    sticker = parse_one(connector, load, "pywa_message__animated_sticker.json")
    assert sticker.meta["media"][0]["animated"] is True
    assert sticker.attachments[0].filename.endswith(".webp")


def test_location_with_name_and_bare_location(connector, load):
    named = parse_one(connector, load, "pywa_message__chosen_location.json")
    assert named.content_type == "location"
    assert "Facebook HQ" in named.text and "1 Hacker Way" in named.text
    assert named.meta["location"]["latitude"] == 37.4611978
    bare = parse_one(connector, load, "pywa_message__current_location.json")
    assert "12.25089, 43.90539" in bare.text
    assert bare.meta["location"] == {"latitude": 12.25089, "longitude": 43.90539}


def test_shared_contacts_become_unverified_evidence(connector, load):
    record = parse_one(connector, load, "pywa_message__contacts.json")
    assert record.content_type == "contact"
    assert "Chandler Bing: +1 555-555-5555" in record.text and "Rachel Green" in record.text
    assert Handle(PHONE, "+15555555555", verified=False) in record.evidence
    assert len(record.evidence) == 3
    assert all(not h.verified for h in record.evidence)
    assert record.sender == Handle(PHONE, SAMPLE_PHONE)   # the sharer, not the card


def test_contact_card_email_and_national_phone_use_default_region(connector, load,
                                                                  offline_settings):
    record = parse_one(connector, load, "threadline_contacts_with_email.json", offline_settings)
    assert Handle(PHONE, "+48601234568", verified=False) in record.evidence
    assert Handle(EMAIL, "m.wisniewska@example.pl", verified=False) in record.evidence
    assert "Małgorzata Wiśniewska" in record.text


def test_button_and_list_replies_take_their_title(connector, load):
    button = parse_one(connector, load, "pywa_callback_button__button.json")
    assert button.text == "title"
    assert button.meta["interactive"] == {"type": "button_reply", "id": "callback_data",
                                          "title": "title", "description": None}
    assert button.reply_to_external_id == "wamid.xyzxyz"
    listed = parse_one(connector, load, "pywa_callback_selection__description.json")
    assert listed.text == "title"
    assert listed.meta["interactive"]["description"] == "description"
    quick = parse_one(connector, load, "pywa_callback_button__quick_reply.json")
    assert quick.text == "title" and quick.meta["button"]["payload"] == "callback_data"
    assert quick.reply_to_external_id == "wamid.xyzxyz=="
    # the id of the pressed button / row / quick reply is the message's button_id
    assert button.button_id == listed.button_id == quick.button_id == "callback_data"


def test_quick_reply_without_context_matches_contact_by_bsuid(connector, load):
    record = parse_one(connector, load, "pywa_callback_button__quick_reply_without_context.json")
    assert record.reply_to_external_id is None
    assert record.meta["bsuid"] == SAMPLE_BSUID and record.sender_name == "Test Name"


def test_reaction_points_at_reacted_message(connector, load):
    record = parse_one(connector, load, "pywa_message__reaction.json")
    assert record.kind == "reaction"
    assert record.text == "😮"
    assert record.reply_to_external_id == "wamid.yzxyzx="
    assert record.meta["reaction_removed"] is False


@pytest.mark.parametrize("name", ["pywa_message__unreaction_empty.json",
                                  "pywa_message__unreaction_no_emoji.json"])
def test_removed_reaction_has_empty_text(connector, load, name):
    record = parse_one(connector, load, name)
    assert record.kind == "reaction" and record.text == ""
    assert record.reply_to_external_id == "wamid.yzxyzx="
    assert record.meta["reaction_removed"] is True


def test_order_items_and_summary(connector, load):
    record = parse_one(connector, load, "pywa_message__order.json")
    order = record.meta["order"]
    assert order["catalog_id"] == "354160437058781"
    assert [i["product_retailer_id"] for i in order["product_items"]] == [
        "HAMBURGER", "FRENCH_FRIES", "SODA"]
    assert record.content_type == "order"
    assert "3 × HAMBURGER" in record.text and "total 180 ILS" in record.text


def test_referral_becomes_ad_source(connector, load):
    record = parse_one(connector, load, "pywa_message__referral.json")
    assert record.text == "BODY"
    assert record.source["channel"] == "whatsapp"
    assert record.source["ad"]["source_id"] == "ADID"
    assert record.source["ad"]["ctwa_clid"] == "CTWA_CLID"
    assert record.source["ad"]["headline"] == "AD_TITLE"


def test_reply_context_and_forward_flags(connector, load):
    reply = parse_one(connector, load, "pywa_message__reply.json")
    assert reply.reply_to_external_id == "wamid.xyzxyz=="
    assert "forwarded" not in reply.meta
    forwarded = parse_one(connector, load, "pywa_message__forwarded.json")
    assert forwarded.meta["forwarded"] is True and forwarded.reply_to_external_id is None
    many = parse_one(connector, load, "pywa_message__forwarded_many_times.json")
    assert many.meta["frequently_forwarded"] is True


def test_edit_carries_new_content_and_target(connector, load):
    record = parse_one(connector, load, "pywa_edited_message__image.json")
    assert record.kind == "edit"
    assert record.external_id == "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQUFERjg0NDEzNDdFODU3MUMxMAA="
    assert record.reply_to_external_id == (
        "wamid.HBgLMTQxMjU1NTA4MjkVAgASGBQzQUNCNjk5RDUwNUZGMUZEM0VBRAA=")
    assert record.text == "Updated image caption"
    assert record.attachments[0].remote_ref == "1234567890"
    assert record.sender == Handle(PHONE, "+16505551234")


def test_edit_of_text(connector, load):
    _, payload = load("pywa_message__text.json")
    message = message_of(payload)
    message.update(type="edit", edit={"original_message_id": "wamid.ORIG",
                                      "message": {"type": "text",
                                                  "text": {"body": "Исправлено: zamówienie"}}})
    del message["text"]
    (record,) = connector.parse({}, payload)
    assert (record.kind, record.text, record.reply_to_external_id) == (
        "edit", "Исправлено: zamówienie", "wamid.ORIG")


def test_revoke_targets_original(connector, load):
    record = parse_one(connector, load, "pywa_deleted_message__revoke.json")
    assert record.kind == "revoke"
    assert record.external_id == "<WHATSAPP_MESSAGE_ID>"
    assert record.reply_to_external_id == "<ORIGINAL_WHATSAPP_MESSAGE_ID>"
    # The sample's "from" is a placeholder, not a phone: it must not become a PHONE identity.
    assert record.sender.kind == WHATSAPP


@pytest.mark.parametrize("name, shown", [
    ("pywa_message__unsupported.json", "131051 Message type unknown"),
    ("pywa_message__unsupported_with_type.json", "pool"),
    ("pywa_message__interactive_message_with_err.json", "Unsupported webhook payload"),
])
def test_unsupported_explains_itself(connector, load, name, shown):
    record = parse_one(connector, load, name)
    assert record.content_type == "unsupported"
    assert shown in record.text
    assert record.text.startswith("[Unsupported WhatsApp message")


def test_unknown_future_type_is_kept_as_unsupported(connector, load):
    _, payload = load("pywa_message__text.json")
    message_of(payload).update(type="hologram", hologram={"id": "1"})
    (record,) = connector.parse({}, payload)
    assert record.content_type == "unsupported" and "hologram" in record.text


def test_number_change(connector, load):
    record = parse_one(connector, load, "pywa_system__phone_number_change.json")
    assert isinstance(record, NumberChange)
    assert record.old == Handle(PHONE, "+972987654321")
    assert record.new == Handle(PHONE, "+972912345678")
    assert record.at == datetime(2025, 7, 30, 4, 55, 15, tzinfo=timezone.utc)
    assert record.external_id == "wamid.xyzxyz=="


def test_number_change_legacy_shape(connector, load):
    _, payload = load("pywa_system__phone_number_change.json")
    message_of(payload)["system"] = {"body": "User A changed from 48601234567 to 48601234999",
                                     "new_wa_id": "48601234999",
                                     "type": "customer_changed_number"}
    message_of(payload)["from"] = "48601234567"
    (record,) = connector.parse({}, payload)
    assert record.old == Handle(PHONE, "+48601234567")
    assert record.new == Handle(PHONE, "+48601234999")


def test_identity_change_is_ignored_with_reason(connector, load):
    record = parse_one(connector, load, "pywa_system__identity_change.json")
    assert isinstance(record, Ignored) and "customer_identity_changed" in record.reason


# --- statuses --------------------------------------------------------------------------------

@pytest.mark.parametrize("name, status", [
    ("pywa_message_status__sent.json", "sent"),
    ("pywa_message_status__delivered.json", "delivered"),
    ("pywa_message_status__read.json", "read"),
    ("pywa_message_status__played.json", "read"),
    ("pywa_message_status__group.json", "read"),
])
def test_statuses(connector, load, name, status):
    record = parse_one(connector, load, name)
    assert isinstance(record, StatusUpdate)
    assert record.status == status and record.error is None
    assert record.at.tzinfo is not None


def test_failed_status_has_code_title_and_details(connector, load):
    record = parse_one(connector, load, "pywa_message_status__failed.json")
    assert record.status == "failed"
    assert record.external_id == "wamid.xyzxyz"
    assert record.error == ("130472 User's number is part of an experiment: Failed to send "
                            "message because this user's phone number is part of an experiment")
    assert record.at == datetime(2023, 7, 15, 0, 20, 58, tzinfo=timezone.utc)


def test_unknown_status_is_ignored(connector, load):
    _, payload = load("pywa_message_status__sent.json")
    payload["entry"][0]["changes"][0]["value"]["statuses"][0]["status"] = "deleted"
    (record,) = connector.parse({}, payload)
    assert isinstance(record, Ignored) and "deleted" in record.reason


# --- what is not a message -------------------------------------------------------------------

def test_non_messages_field_is_ignored(connector, load):
    record = parse_one(connector, load, "threadline_account_update.json")
    assert isinstance(record, Ignored) and "account_update" in record.reason


def test_other_object_is_ignored(connector):
    (record,) = connector.parse({}, {"object": "page", "entry": []})
    assert isinstance(record, Ignored) and "page" in record.reason


# --- malformed -------------------------------------------------------------------------------

@pytest.mark.parametrize("path", [
    ("object",), ("entry",), ("entry", 0, "changes"), ("entry", 0, "changes", 0, "value"),
    ("entry", 0, "changes", 0, "value", "messages", 0, "id"),
    ("entry", 0, "changes", 0, "value", "messages", 0, "timestamp"),
    ("entry", 0, "changes", 0, "value", "messages", 0, "type"),
    ("entry", 0, "changes", 0, "value", "messages", 0, "text"),
])
def test_missing_required_field_fails_loudly(connector, load, path):
    _, payload = load("pywa_message__text.json")
    target = payload
    for key in path[:-1]:
        target = target[key]
    del target[path[-1]]
    with pytest.raises(MalformedPayload) as err:
        connector.parse({}, payload)
    assert repr(path[-1]) in str(err.value)


def test_missing_sender_fails_loudly(connector, load):
    _, payload = load("pywa_message__text.json")
    del message_of(payload)["from"]
    payload["entry"][0]["changes"][0]["value"]["contacts"] = []
    with pytest.raises(MalformedPayload, match="'from'"):
        connector.parse({}, payload)


def test_bad_timestamp_fails_loudly(connector, load):
    _, payload = load("pywa_message__text.json")
    message_of(payload)["timestamp"] = "yesterday"
    with pytest.raises(MalformedPayload, match="timestamp"):
        connector.parse({}, payload)


def test_parse_does_not_mutate_payload(connector, load):
    _, payload = load("threadline_batch_multi_entry.json")
    before = copy.deepcopy(payload)
    connector.parse({}, payload)
    assert payload == before
