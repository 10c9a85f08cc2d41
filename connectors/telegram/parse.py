"""Turn one raw Telegram `Update` (a dict, as JSON from the Bot API) into records.

We read the raw dict instead of `telegram.Update.de_json`: PTB's classes insist on fields
that real, older payloads lack (`is_bot`, `file_unique_id`, `chat.type` in Telegram's own
sample updates), and one such update would otherwise block a whole polling batch. Required
fields are read with `require`, so a truly broken update fails loudly as `MalformedPayload`.
"""
from __future__ import annotations

import html as htmllib
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Mapping

from connectors.base import (
    PHONE,
    TELEGRAM,
    Handle,
    Ignored,
    Inbound,
    InboundAttachment,
    MalformedPayload,
    Record,
    normalize_phone,
    require,
)

from .entities import render_html, sanitize


@dataclass(frozen=True)
class ReachabilityChange:
    """The user blocked (reachable=False) or unblocked/restarted (True) the bot."""

    handle: Handle
    reachable: bool
    at: datetime


TelegramRecord = Record | ReachabilityChange

# Update kinds we turn into records; also what we ask Telegram to deliver (setWebhook /
# getUpdates allowed_updates), so the bot is not woken up for traffic we would drop.
ALLOWED_UPDATES = ("message", "edited_message", "my_chat_member", "callback_query")

# Update kinds we know and deliberately drop (anything else is "unknown", also dropped).
_IGNORED_KINDS = {
    "channel_post": "channel posts are not customer messages",
    "edited_channel_post": "channel posts are not customer messages",
    "inline_query": "inline queries are not handled",
    "chosen_inline_result": "inline queries are not handled",
    "message_reaction": "reactions are not handled",
    "message_reaction_count": "reactions are not handled",
    "chat_member": "group membership changes are not handled",
    "chat_join_request": "join requests are not handled",
    "shipping_query": "payments are not handled",
    "pre_checkout_query": "payments are not handled",
    "poll": "poll state updates are not handled",
    "poll_answer": "poll answers are not handled",
}

# Message fields that describe the envelope, not the content.
_ENVELOPE = {
    "message_id", "message_thread_id", "from", "sender_chat", "sender_boost_count",
    "sender_business_bot", "date", "business_connection_id", "chat", "forward_origin",
    "forward_from", "forward_from_chat", "forward_from_message_id", "forward_signature",
    "forward_sender_name", "forward_date", "is_topic_message", "is_automatic_forward",
    "reply_to_message", "external_reply", "quote", "reply_to_story", "via_bot", "edit_date",
    "has_protected_content", "is_from_offline", "media_group_id", "author_signature",
    "entities", "caption_entities", "link_preview_options", "effect_id",
    "show_caption_above_media", "has_media_spoiler", "reply_markup", "paid_star_count",
}

# Messages Telegram generates itself (pins, joins, web-app access...): nothing to answer.
_SERVICE = {
    "new_chat_members", "left_chat_member", "new_chat_title", "new_chat_photo",
    "delete_chat_photo", "group_chat_created", "supergroup_chat_created",
    "channel_chat_created", "message_auto_delete_timer_changed", "migrate_to_chat_id",
    "migrate_from_chat_id", "pinned_message", "successful_payment", "refunded_payment",
    "users_shared", "chat_shared", "connected_website", "write_access_allowed",
    "proximity_alert_triggered", "boost_added", "chat_background_set", "forum_topic_created",
    "forum_topic_edited", "forum_topic_closed", "forum_topic_reopened",
    "general_forum_topic_hidden", "general_forum_topic_unhidden", "giveaway_created",
    "giveaway_completed", "video_chat_scheduled", "video_chat_started", "video_chat_ended",
    "video_chat_participants_invited", "web_app_data", "passport_data",
}

_START = re.compile(r"^/start(?:@\w+)?(?:\s+(?P<payload>\S.*))?$", re.DOTALL)


def utc(timestamp: Any, where: str) -> datetime:
    if not isinstance(timestamp, (int, float)) or isinstance(timestamp, bool):
        raise MalformedPayload(f"{where}: date must be a unix timestamp, got {timestamp!r}")
    return datetime.fromtimestamp(timestamp, tz=timezone.utc)


def external_id(chat_id: Any, message_id: Any) -> str:
    return f"{chat_id}:{message_id}"


def parse_update(settings: Mapping[str, Any], payload: Any) -> list[TelegramRecord]:
    if not isinstance(payload, dict):
        raise MalformedPayload(f"update must be a JSON object, got {type(payload).__name__}")
    update_id = require(payload, "update_id", "update")
    if not isinstance(update_id, int) or isinstance(update_id, bool):
        raise MalformedPayload(f"update: update_id must be an integer, got {update_id!r}")
    if "message" in payload:
        return [parse_message(settings, payload["message"], edited=False)]
    if "edited_message" in payload:
        return [parse_message(settings, payload["edited_message"], edited=True)]
    if "my_chat_member" in payload:
        return [parse_my_chat_member(payload["my_chat_member"])]
    if "callback_query" in payload:
        return [parse_callback_query(settings, payload["callback_query"])]
    kinds = sorted(k for k in payload if k != "update_id")
    for kind in kinds:
        if kind in _IGNORED_KINDS:
            return [Ignored(f"{kind}: {_IGNORED_KINDS[kind]}")]
    return [Ignored(f"unknown update kind: {', '.join(kinds) or '(empty update)'}")]


def parse_my_chat_member(update: Any) -> ReachabilityChange | Ignored:
    """A private chat's my_chat_member says whether the user blocked the bot."""
    chat = require(update, "chat", "my_chat_member")
    if _chat_type(chat) != "private":
        return Ignored(f"bot membership changed in {_chat_type(chat)} chat {chat.get('id')}")
    user = require(update, "from", "my_chat_member")
    status = require(require(update, "new_chat_member", "my_chat_member"), "status",
                     "my_chat_member.new_chat_member")
    at = utc(require(update, "date", "my_chat_member"), "my_chat_member")
    handle = Handle(TELEGRAM, str(require(user, "id", "my_chat_member.from")))
    if status == "kicked":
        return ReachabilityChange(handle, reachable=False, at=at)
    if status == "member":
        return ReachabilityChange(handle, reachable=True, at=at)
    return Ignored(f"my_chat_member status {status!r} does not change reachability")


def parse_callback_query(settings: Mapping[str, Any], query: Any) -> Inbound | Ignored:
    """A press on one of our inline keyboard's buttons: a message whose text is the button's
    title and whose `button_id` is its callback data. The app answers the callback query
    (answerCallbackQuery, meta["callback_query_id"]) so the customer's spinner stops."""
    query_id = str(require(query, "id", "callback_query"))
    user = require(query, "from", "callback_query")
    require(user, "id", "callback_query.from")
    data = query.get("data")
    if not isinstance(data, str) or not data:
        return Ignored(f"callback_query {query_id} without data (a game button)")
    if user.get("is_bot"):
        return Ignored(f"callback_query from bot {user.get('username') or user.get('id')}")
    message = query.get("message") if isinstance(query.get("message"), dict) else None
    meta: dict[str, Any] = {"callback_query_id": query_id}
    reply_to = None
    if message is not None:
        chat = require(message, "chat", "callback_query.message")
        chat_type = _chat_type(chat)
        if chat_type != "private" and not _truthy(settings.get("allow_groups")):
            return Ignored(f"callback_query in group chat {chat.get('id')} ({chat_type}): "
                           "groups are not enabled for this channel (setting allow_groups)")
        chat_id = require(chat, "id", "callback_query.message.chat")
        message_id = require(message, "message_id", "callback_query.message")
        meta.update(chat_id=chat_id, message_id=message_id)
        reply_to = external_id(chat_id, message_id)
    for key in ("username", "language_code"):
        if user.get(key):
            meta[key] = user[key]
    name = _full_name(user) or None
    return Inbound(
        external_id=f"callback:{query_id}",
        sender=Handle(TELEGRAM, str(user["id"])),
        sent_at=datetime.now(timezone.utc),    # a callback query carries no date
        text=_button_title(message, data) or data,
        sender_name=name,
        content_type="button",
        reply_to_external_id=reply_to,
        meta=meta,
        button_id=data,
    )


def _button_title(message: Mapping[str, Any] | None, data: str) -> str | None:
    """The pressed button's title, read from the keyboard of the message it belongs to."""
    rows = ((message or {}).get("reply_markup") or {}).get("inline_keyboard") or []
    for row in rows if isinstance(rows, list) else []:
        for button in row if isinstance(row, list) else []:
            if isinstance(button, dict) and button.get("callback_data") == data:
                return str(button.get("text") or "") or None
    return None


def _chat_type(chat: Mapping[str, Any]) -> str:
    # Telegram's own sample updates omit chat.type; user ids (private chats) are positive,
    # group and channel ids negative.
    chat_type = chat.get("type")
    if chat_type:
        return str(chat_type)
    chat_id = require(chat, "id", "message.chat")
    return "private" if isinstance(chat_id, int) and chat_id > 0 else "group"


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in {"1", "true", "yes", "on"}
    return bool(value)


def parse_message(settings: Mapping[str, Any], msg: Any, *, edited: bool) -> Inbound | Ignored:
    where = "edited_message" if edited else "message"
    chat = require(msg, "chat", where)
    chat_id = require(chat, "id", f"{where}.chat")
    message_id = require(msg, "message_id", where)
    sent_at = utc(require(msg, "date", where), where)
    chat_type = _chat_type(chat)
    if chat_type != "private" and not _truthy(settings.get("allow_groups")):
        return Ignored(f"group chat {chat_id} ({chat_type}): groups are not enabled "
                       "for this channel (setting allow_groups)")
    user = _sender(msg, chat, chat_type, where)
    if user.get("is_bot"):
        return Ignored(f"message from bot {user.get('username') or user.get('id')}")
    content = _content(msg)
    if isinstance(content, Ignored):
        return content
    return _build_inbound(msg, user, content, chat_id, chat_type, message_id, sent_at, edited)


def _sender(msg: Mapping[str, Any], chat: Mapping[str, Any], chat_type: str,
            where: str) -> Mapping[str, Any]:
    if "from" in msg:
        user = msg["from"]
        require(user, "id", f"{where}.from")
        return user
    if chat_type == "private":
        # In a private chat the chat is the user (chat.id == user id).
        return chat
    raise MalformedPayload(f"{where}: missing field 'from'")


@dataclass
class _Content:
    content_type: str
    text: str
    entities: list[dict[str, Any]] | None = None
    attachments: tuple[InboundAttachment, ...] = ()
    meta: dict[str, Any] | None = None
    evidence: tuple[Handle, ...] = ()
    also_known_as: tuple[Handle, ...] = ()


def _build_inbound(msg: Mapping[str, Any], user: Mapping[str, Any], content: _Content,
                   chat_id: Any, chat_type: str, message_id: Any, sent_at: datetime,
                   edited: bool) -> Inbound:
    meta: dict[str, Any] = {"chat_id": chat_id, "message_id": message_id, **(content.meta or {})}
    if chat_type != "private":
        meta.update(chat_type=chat_type, chat_title=msg["chat"].get("title"))
    for key in ("username", "language_code"):
        if user.get(key):
            meta[key] = user[key]
    for key in ("media_group_id", "message_thread_id"):
        if msg.get(key) is not None:
            meta[key] = msg[key]
    text = content.text
    html = render_html(text, content.entities)
    forward = _forward_info(msg)
    if forward:
        meta["forward"] = forward
        prefix = f"[Forwarded from {forward['name']}]"
        text = f"{prefix}\n{text}" if text else prefix
        if html is not None:
            html = sanitize(f"<i>{htmllib.escape(prefix)}</i><br>{html}")
    if msg.get("quote", {}).get("text"):
        meta["quote"] = msg["quote"]["text"]
    if edited:
        meta["original_sent_at"] = sent_at.isoformat()
        if msg.get("edit_date") is not None:
            sent_at = utc(msg["edit_date"], "edited_message.edit_date")
    name = " ".join(p for p in (user.get("first_name"), user.get("last_name")) if p) or None
    return Inbound(
        external_id=external_id(chat_id, message_id),
        sender=Handle(TELEGRAM, str(user["id"])),
        sent_at=sent_at,
        text=text,
        html=html,
        sender_name=name,
        kind="edit" if edited else "message",
        content_type=content.content_type,
        attachments=content.attachments,
        reply_to_external_id=_reply_to(msg, chat_id),
        evidence=content.evidence,
        also_known_as=content.also_known_as,
        source=None if edited else _deep_link(content),
        meta=meta,
    )


def _reply_to(msg: Mapping[str, Any], chat_id: Any) -> str | None:
    reply = msg.get("reply_to_message")
    if not reply:
        return None
    reply_chat = reply.get("chat", {}).get("id", chat_id)
    return external_id(reply_chat, require(reply, "message_id", "message.reply_to_message"))


def _deep_link(content: _Content) -> dict[str, Any] | None:
    """`t.me/bot?start=PAYLOAD` arrives as the text "/start PAYLOAD": first-touch attribution."""
    if content.content_type != "text":
        return None
    match = _START.match(content.text.strip())
    if not match or not match.group("payload"):
        return None
    return {"channel": "telegram", "deep_link": match.group("payload").strip()}


def _forward_info(msg: Mapping[str, Any]) -> dict[str, Any] | None:
    origin = msg.get("forward_origin")
    if origin:
        return _forward_from_origin(origin)
    # Pre-7.0 Bot API fields, still in stored payloads.
    if msg.get("forward_from"):
        src = msg["forward_from"]
        name = _full_name(src) or src.get("title") or str(src.get("id"))
        return {"type": "user" if src.get("first_name") else "chat", "name": name,
                "id": src.get("id"), "date": msg.get("forward_date")}
    if msg.get("forward_from_chat"):
        src = msg["forward_from_chat"]
        return {"type": "chat", "name": src.get("title") or _full_name(src) or str(src.get("id")),
                "id": src.get("id"), "message_id": msg.get("forward_from_message_id"),
                "date": msg.get("forward_date")}
    if msg.get("forward_sender_name"):
        return {"type": "hidden_user", "name": msg["forward_sender_name"],
                "date": msg.get("forward_date")}
    return None


def _forward_from_origin(origin: Mapping[str, Any]) -> dict[str, Any]:
    kind = origin.get("type", "unknown")
    info: dict[str, Any] = {"type": kind, "date": origin.get("date")}
    if kind == "user" and origin.get("sender_user"):
        info.update(name=_full_name(origin["sender_user"]), id=origin["sender_user"].get("id"))
    elif kind == "hidden_user":
        info["name"] = origin.get("sender_user_name") or "hidden user"
    elif kind in ("chat", "channel"):
        src = origin.get("sender_chat") or origin.get("chat") or {}
        info.update(name=src.get("title") or str(src.get("id")), id=src.get("id"))
        if origin.get("message_id") is not None:
            info["message_id"] = origin["message_id"]
    info.setdefault("name", "unknown")
    if origin.get("author_signature"):
        info["author_signature"] = origin["author_signature"]
    return info


def _full_name(user: Mapping[str, Any]) -> str:
    return " ".join(p for p in (user.get("first_name"), user.get("last_name")) if p)


# ---- content kinds -------------------------------------------------------------------------

def _caption(msg: Mapping[str, Any]) -> tuple[str, list[dict[str, Any]] | None]:
    return msg.get("caption") or "", msg.get("caption_entities")


def _attachment(obj: Mapping[str, Any], where: str, filename: str,
                content_type: str) -> InboundAttachment:
    return InboundAttachment(
        filename=obj.get("file_name") or filename,
        content_type=obj.get("mime_type") or content_type,
        size=obj.get("file_size"),
        remote_ref=require(obj, "file_id", where),
    )


def _media(kind: str, filename: str, content_type: str) -> Callable[[Mapping[str, Any]], _Content]:
    def handler(msg: Mapping[str, Any]) -> _Content:
        text, entities = _caption(msg)
        att = _attachment(msg[kind], f"message.{kind}", filename, content_type)
        meta = {k: msg[kind][k] for k in ("duration", "title", "performer") if k in msg[kind]}
        return _Content(kind, text, entities, (att,), meta or None)
    return handler


def _text(msg: Mapping[str, Any]) -> _Content:
    return _Content("text", msg["text"], msg.get("entities"))


def _photo(msg: Mapping[str, Any]) -> _Content:
    sizes = msg["photo"]
    if not isinstance(sizes, list) or not sizes:
        raise MalformedPayload("message.photo: expected a non-empty list of sizes")
    # Telegram lists sizes smallest first, but compare anyway: the largest is the original.
    largest = max(sizes, key=lambda s: (s.get("width", 0) * s.get("height", 0),
                                        s.get("file_size") or 0))
    att = InboundAttachment(filename=f"photo_{msg['message_id']}.jpg", content_type="image/jpeg",
                            size=largest.get("file_size"),
                            remote_ref=require(largest, "file_id", "message.photo[]"))
    text, entities = _caption(msg)
    return _Content("photo", text, entities, (att,),
                    {"width": largest.get("width"), "height": largest.get("height")})


def _sticker(msg: Mapping[str, Any]) -> _Content:
    sticker = msg["sticker"]
    if sticker.get("is_animated"):
        filename, ctype = "sticker.tgs", "application/x-tgsticker"
    elif sticker.get("is_video"):
        filename, ctype = "sticker.webm", "video/webm"
    else:
        filename, ctype = "sticker.webp", "image/webp"
    att = _attachment(sticker, "message.sticker", filename, ctype)
    meta = {k: sticker[k] for k in ("emoji", "set_name") if sticker.get(k)}
    return _Content("sticker", sticker.get("emoji") or "[sticker]", None, (att,), meta)


def _location(msg: Mapping[str, Any]) -> _Content:
    loc = msg["location"]
    lat = require(loc, "latitude", "message.location")
    lon = require(loc, "longitude", "message.location")
    meta: dict[str, Any] = {"latitude": lat, "longitude": lon}
    if loc.get("live_period"):
        meta["live_period"] = loc["live_period"]
    return _Content("location", f"Location: {lat}, {lon}", None, (), meta)


def _venue(msg: Mapping[str, Any]) -> _Content:
    venue = msg["venue"]
    loc = require(venue, "location", "message.venue")
    lat = require(loc, "latitude", "message.venue.location")
    lon = require(loc, "longitude", "message.venue.location")
    title = venue.get("title", "")
    address = venue.get("address", "")
    meta = {"latitude": lat, "longitude": lon, "title": title, "address": address}
    label = ", ".join(p for p in (title, address) if p)
    return _Content("venue", f"Venue: {label} ({lat}, {lon})", None, (), meta)


def _contact(msg: Mapping[str, Any]) -> _Content:
    contact = msg["contact"]
    raw_phone = require(contact, "phone_number", "message.contact")
    phone = normalize_phone(str(raw_phone))
    name = _full_name(contact) or "unnamed"
    meta: dict[str, Any] = {"contact": {"name": name, "phone": phone, "phone_raw": raw_phone,
                                        "user_id": contact.get("user_id")}}
    evidence: tuple[Handle, ...] = ()
    aka: tuple[Handle, ...] = ()
    sender_id = (msg.get("from") or msg["chat"]).get("id")
    if phone and contact.get("user_id") is not None and contact["user_id"] == sender_id:
        # Telegram fills user_id only from its own records: the sender shared their own
        # number ("Share my phone"), so it is a verified handle of this customer.
        aka = (Handle(PHONE, phone),)
    elif phone:
        evidence = (Handle(PHONE, phone, verified=False),)
    return _Content("contact", f"Contact: {name}, {phone or raw_phone}", None, (), meta,
                    evidence, aka)


def _poll(msg: Mapping[str, Any]) -> _Content:
    poll = msg["poll"]
    options = [o.get("text", "") for o in poll.get("options", [])]
    text = f"Poll: {poll.get('question', '')}" + "".join(f"\n- {o}" for o in options)
    return _Content("poll", text)


def _dice(msg: Mapping[str, Any]) -> _Content:
    dice = msg["dice"]
    return _Content("dice", f"{dice.get('emoji', '🎲')} {dice.get('value', '')}".strip())


# Order matters: a venue message also carries `location`, an animation also `document`.
_HANDLERS: tuple[tuple[str, Callable[[Mapping[str, Any]], _Content]], ...] = (
    ("text", _text),
    ("photo", _photo),
    ("animation", _media("animation", "animation.mp4", "video/mp4")),
    ("document", _media("document", "document", "application/octet-stream")),
    ("voice", _media("voice", "voice.ogg", "audio/ogg")),
    ("audio", _media("audio", "audio.mp3", "audio/mpeg")),
    ("video", _media("video", "video.mp4", "video/mp4")),
    ("video_note", _media("video_note", "video_note.mp4", "video/mp4")),
    ("sticker", _sticker),
    ("venue", _venue),
    ("location", _location),
    ("contact", _contact),
    ("poll", _poll),
    ("dice", _dice),
)


def _content(msg: Mapping[str, Any]) -> _Content | Ignored:
    for key, handler in _HANDLERS:
        if key in msg:
            return handler(msg)
    service = sorted(k for k in msg if k in _SERVICE)
    if service:
        return Ignored(f"service message: {', '.join(service)}")
    if msg.get("caption"):
        return _Content("text", msg["caption"], msg.get("caption_entities"))
    unknown = sorted(k for k in msg if k not in _ENVELOPE and k != "caption")
    if unknown:
        # Something new a customer sent (a story, a giveaway...): show it rather than drop it.
        return _Content("unsupported", f"[unsupported Telegram message: {', '.join(unknown)}]",
                        meta={"unsupported": unknown})
    return Ignored("message without content")
