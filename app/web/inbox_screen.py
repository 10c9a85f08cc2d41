"""What the inbox page's screen needs besides the base strings (issue 19): feedback, errors
said for a person, snooze presets, the offline banner, shortcut help, the card's editing and
its first-touch source, the phone layout's back buttons. Kept apart from app.web.inbox so the
language work and the screen work change different files."""
from __future__ import annotations

from flask_babel import gettext as _

from app.infra.state import config


def page_boot() -> dict:
    """Boot data the template puts in the page: the upload limit checked before uploading."""
    return {"max_upload_bytes": int(config["storage"]["max_attachment_bytes"])}


def screen_strings() -> dict[str, str]:
    return {
        # errors, feedback
        "err_network": _("Could not reach the server. Check the connection; nothing you "
                         "typed is lost."),
        "err_server": _("The server had a problem (error {status}). Try again in a moment."),
        "err_forbidden": _("You may not do that."),
        "err_not_found": _("It is no longer there (deleted or moved)."),
        "empty_reply": _("Write a message first."),
        "file_too_large": _("{name} is {size} MB: files up to {max} MB can be attached."),
        "resolved_done": _("Conversation resolved."), "undo": _("Undo"),
        "offline_banner": _("Reconnecting… your draft is kept. Sending resumes when the "
                            "connection is back."),
        "message_text": _("Message text"), "select": _("Select"), "cancel": _("Cancel"),
        # sidebar
        "total_conversations": _("Conversations"), "unread_conversations": _("Unread"),
        # snooze
        "snooze_later_today": _("Later today"), "snooze_tomorrow": _("Tomorrow 9:00"),
        "snooze_next_week": _("Next week"), "snoozed_until": _("Snoozed until"),
        "until": _("until"),
        "later_conversation": _("Later conversation"),
        # shortcut help
        "shortcut_help": _("Keyboard shortcuts"), "close": _("Close"),
        "key_move": _("next / previous conversation"), "key_open": _("open the conversation"),
        "key_reply": _("reply"), "key_note": _("internal note"), "key_resolve": _("resolve"),
        "key_select": _("select for bulk actions"), "key_search": _("search"),
        "key_send": _("send"), "key_help": _("this help"),
        # visitor typing
        "customer_typing": _("{name} is typing…"),
        # the card
        "name": _("Name"), "email": _("Email"), "phone": _("Phone"), "company": _("Company"),
        "tags": _("Tags"), "tags_hint": _("comma separated"), "saved": _("Saved"),
        "saving": _("Saving…"), "source": _("First touch"), "handles": _("Handles"),
        "prechat": _("pre-chat form"), "site_visitor": _("site visitor"),
        "add_note_card": _("Add a note about the customer…"), "new_deal": _("New deal"),
        "deal_title": _("Deal title"), "amount": _("Amount"), "create_deal": _("Create deal"),
        "stage": _("Stage"), "expected_close": _("Expected close"),
        "src_channel": _("Channel"), "src_utm_source": _("UTM source"),
        "src_utm_medium": _("UTM medium"), "src_utm_campaign": _("UTM campaign"),
        "src_referrer": _("Referrer"), "src_landing": _("Landing page"),
        "src_ad": _("Ad click"), "src_payload": _("Deep link"),
        # phone layout
        "edit_details": _("Edit details"), "back": _("Back"), "show_card": _("Customer card"), "show_views": _("Views"),
    }
