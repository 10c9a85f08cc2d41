"""The agents' inbox page, and the interface language (Flask-Babel: en, ru, pl; the agent's
profile first, else the browser's Accept-Language)."""
from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, render_template, request
from flask_babel import Babel, gettext as _, pgettext
from flask_login import current_user, login_required

from app.domain.access import can_see_conversation
from app.infra.models import Conversation
from app.infra.state import db
from app.domain.customers import DEFAULT_STAGES
from app.web.board import stage_names
from app.web.inbox_screen import page_boot, screen_strings

bp = Blueprint("inbox", __name__)
LANGUAGES = ["en", "ru", "pl"]
babel = Babel()


def select_locale() -> str:
    if current_user and current_user.is_authenticated and current_user.locale in LANGUAGES:
        return current_user.locale
    return request.accept_languages.best_match(LANGUAGES) or "en"


@bp.record_once
def _init_babel(state) -> None:
    babel.init_app(state.app, locale_selector=select_locale)


@bp.app_context_processor
def _locale_in_templates() -> dict:
    from flask_babel import get_locale

    return {"get_locale": get_locale}


def ui_strings() -> dict[str, Any]:
    """Strings the JavaScript shows, translated on the server (no build step, no JS i18n)."""
    return {
        "all_open": _("All open"), "mine": _("Mine"), "unassigned": _("Unassigned"),
        # issue 18: conversations the answer bot holds, and its messages in the thread
        "bot_view": _("Bot"), "bot": _("Bot"), "bot_buttons": _("Buttons offered"),
        "pressed": _("Pressed"),
        "snoozed": _("Snoozed"), "resolved": _("Resolved"), "teams": _("Teams"),
        "channels": _("Channels"), "labels": _("Labels"), "views": _("Views"),
        "no_conversations": _("No conversations"), "load_more": _("Load more"),
        "reply": _("Reply"), "note": _("Note"), "send": _("Send"), "add_note": _("Add note"),
        "reply_placeholder": _("Reply… (Ctrl+Enter sends, / for canned replies)"),
        "note_placeholder": _("Internal note, visible to agents only… (@name mentions)"),
        "channel": _("Channel"), "subject": _("Subject"), "assign_me": _("Assign to me"),
        "assignee": _("Assignee"), "team": _("Team"), "nobody": _("Nobody"),
        "no_team": _("No team"), "status": _("Status"), "open": _("Open"),
        # the status select says what a conversation is, not which view lists it
        "status_snoozed": pgettext("conversation status", "Snoozed"),
        "status_resolved": pgettext("conversation status", "Resolved"),
        # names that come from the server's defaults, in the agent's language
        "stage_names": stage_names(),
        "team_names": {"Support": _("Support"), "Sales": _("Sales")},
        "order_statuses": {
            "new": pgettext("order status", "new"), "paid": pgettext("order status", "paid"),
            "processing": pgettext("order status", "processing"),
            "shipped": pgettext("order status", "shipped"),
            "delivered": pgettext("order status", "delivered"),
            "completed": pgettext("order status", "completed"),
            "cancelled": pgettext("order status", "cancelled"),
            "returned": pgettext("order status", "returned"),
            "refunded": pgettext("order status", "refunded")},
        "pending": _("Pending"), "snooze": _("Snooze"), "resolve": _("Resolve"),
        "reopen": _("Reopen"), "priority": _("Priority"), "low": _("Low"), "normal": _("Normal"),
        "high": _("High"), "urgent": _("Urgent"), "add_label": _("Add label…"),
        # outside bots (issue 18): the thread's actions bar
        "return_to_bot": _("Return to bot"), "returned_to_bot": _("Returned to the bot."),
        "bot_holds": _("Answered by bot"),
        "retry": _("Retry"), "queued": _("queued"), "sending": _("sending"), "sent": _("sent"),
        "delivered": _("delivered"), "read": _("read"), "failed": _("failed"),
        "received": _("received"), "internal_note": _("Internal note"),
        "earlier_conversation": _("Earlier conversation"), "show": _("Show"), "hide": _("Hide"),
        "viewing": _("viewing"), "typing": _("typing…"), "live": _("Live"),
        "offline": _("Reconnecting…"), "search_placeholder": _("Search customers and messages (/)"),
        "customers": _("Customers"), "messages": _("Messages"), "no_results": _("Nothing found"),
        "more_results": _("More results"),
        "collision": _("New messages arrived since you started typing. Look at them first; "
                       "press Send again to send anyway."),
        "wa_closed": _("WhatsApp 24-hour window is closed: only an approved template can be sent."),
        "template": _("Template name"),
        "tg_split": _("Longer than 4096 characters: Telegram gets it in {n} messages."),
        "email_subject": _("Email: the subject line goes with the reply."),
        "notifications": _("Notifications"), "notifications_on": _("Notifications on"),
        "notification_centre": _("Notification centre"),
        "notifications_unread": _("Notification centre: {n} unread"),
        "mark_all_read": _("Mark all read"), "no_notifications": _("No notifications yet"),
        "notif_mention": _("{name} mentioned you · {customer}"),
        "notif_assigned_by": _("{name} assigned you {customer}"),
        "notif_assigned": _("Assigned to you: {customer}"),
        "notif_message": _("New message from {customer}"),
        "notif_messages": _("{n} new messages from {customer}"),
        "notif_sound": _("Sound on a new notification"),
        "notif_title_badge": _("Unread count in the tab title"),
        "mentions_view": _("Mentions"), "unread_mentions": _("Unread mentions of you"),
        "mention_agents": _("Agents to mention"),
        "mention_unreachable": _("Not notified, they cannot see this conversation's channel: "
                                 "{names}"),
        "select_all": _("Select all"), "selected": _("{n} selected"), "apply": _("Apply"),
        "card": _("Customer"), "opted_out": _("Opted out of campaigns"),
        "opt_out_sources": {"keyword": _("asked by message"), "blocked": _("blocked the bot"),
                            "unsubscribe_link": _("unsubscribe link"), "agent": _("by an agent")},
        "orders": _("Orders"), "deals": _("Deals"), "notes": _("Notes"),
        "csat_title": _("Feedback"), "csat_average": _("average {avg} of 5 ({n} answers)"),
        "csat_waiting": _("asked, no answer yet"),
        "attachments": _("Attachments"), "download": _("Download"),
        "attach": _("Attach"), "attach_files": _("Attach files"), "uploading": _("uploading…"),
        "remove": _("Remove"), "choose_template": _("Choose a template…"),
        "no_templates": _("No approved templates are configured for this number "
                          "(channel setting `templates`)."),
        "no_channel": _("The customer wrote on no channel we can answer on."),
        "error": _("Something went wrong"), "pick_conversation": _("Pick a conversation"),
        "merge_suggestions": _("Merge suggestions"), "no_suggestions": _("No merge suggestions"),
        "score": _("Score"), "reject": _("Reject"), "review": _("Review"), "merge": _("Merge"),
        "merge_reason": _("Reason (optional)"),
        "merge_into": _("{other} is merged into {keep}. Choose the value to keep:"),
        "no_conflicts": _("No conflicting fields."), "moves": _("Moves"),
        "merged": _("Customers merged"), "unmerged": _("Merge undone"), "unmerge": _("Unmerge"),
        "merges": _("Merges"), "merged_from": _("Merged from customer #{id}"),
        "reply_here": _("Reply here"), "reply_here_via": _("Reply to this handle via {channel}"),
        "keep_customer": _("Customer to keep (the other is merged into it):"),
        "availability": _("Availability"),
        "availability_auto": _("Online while here"), "availability_online": _("Online"),
        "availability_away": _("Away"), "availability_offline": _("Offline"),
        "waiting": _("waiting"), "sla_due": _("due"),
        "snooze_until": _("Snooze until"), "shortcuts": _(
            "j/k move · Enter open · r reply · n note · e resolve · / search · x select"),
        **screen_strings(),
    }


@bp.get("/")
@login_required
def index():
    return render_template("inbox.html", strings=ui_strings(), conversation_id=None,
                           deal_stages=list(DEFAULT_STAGES), **page_boot())


@bp.get("/conversations/<int:conversation_id>")
@login_required
def conversation(conversation_id: int):
    """A deep link. The page answers 404 for a conversation the agent may not see."""
    found = db.session.get(Conversation, conversation_id)
    if found is None or not can_see_conversation(current_user, found):
        abort(404)
    return render_template("inbox.html", strings=ui_strings(), conversation_id=conversation_id,
                           deal_stages=list(DEFAULT_STAGES), **page_boot())
