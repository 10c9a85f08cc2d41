"""The Campaigns page (`/campaigns`): segments built with a live count, campaigns with their
progress per channel (live over Socket.IO `campaign.progress`); and the public one-click
unsubscribe page of campaign emails (`/unsubscribe/<token>`, RFC 8058)."""
from __future__ import annotations

from flask import Blueprint, abort, render_template, request
from flask_babel import gettext as _
from flask_login import login_required
from sqlalchemy import select

from app.domain import optouts
from app.infra.models import Campaign, CampaignRecipient, Channel, Customer, Team, utcnow
from app.infra.state import db

bp = Blueprint("campaigns", __name__)
public = Blueprint("unsubscribe", __name__)


def _strings() -> dict[str, str]:
    return {
        "campaigns": _("Campaigns"), "new_campaign": _("New campaign"),
        "segment": _("Segment"), "segments": _("Segments"), "new_segment": _("New segment"),
        "segment_name": _("Segment name"), "save_segment": _("Save segment"),
        "tags_any": _("Has any of the tags"), "tags_hint": _("comma-separated"),
        "utm_source": _("Came from (UTM source)"), "utm_campaign": _("UTM campaign"),
        "ordered_within": _("Ordered in the last N days"), "orders_min": _("At least N orders"),
        "wrote_within": _("Wrote in the last N days"), "language": _("Language"),
        "items_contain": _("Bought an item containing"),
        "contacted_before": _("Not messaged by us in the last N days"),
        "consent_on": _("Not opted out of the channel"),
        "handles": _("Has a handle on"), "any": _("Any"), "team": _("Team"),
        "exclude_opted_out": _("Leave out customers who opted out anywhere"),
        "customers_count": _("Customers in the segment"), "counting": _("Counting…"),
        "name": _("Campaign name"), "text": _("Message"),
        "text_hint": _("Variables: {name}, {first_name}, {company}"),
        "email_subject": _("Email subject"), "wa_template": _("WhatsApp template (outside the 24-hour window)"),
        "create": _("Create campaign"), "create_start": _("Create and start"),
        "start": _("Start"), "pause": _("Pause"), "resume": _("Resume"), "cancel": _("Cancel"),
        "cancel_confirm": _("Cancel this campaign? Nothing more will be sent."),
        "status_draft": _("Draft"), "status_scheduled": _("Scheduled"),
        "status_running": _("Sending"), "status_paused": _("Paused"), "status_done": _("Done"),
        "status_cancelled": _("Cancelled"),
        "queued": _("Queued"), "sent": _("Sent"), "delivered": _("Delivered"), "read": _("Read"),
        "failed": _("Failed"), "replied": _("Replied"), "opted_out": _("Opted out"),
        "skipped": _("Not sent"), "skipped_opted_out": _("opted out"),
        "skipped_no_channel": _("no channel to reach them"),
        "skipped_window_closed": _("WhatsApp window closed"),
        "skipped_unreachable": _("blocked or bounced"),
        "channel": _("Channel"), "progress": _("Progress"), "total": _("Total"),
        "no_campaigns": _("No campaigns yet."), "no_segments": _("Save a segment first."),
        "error": _("Could not save"), "saved": _("Saved"),
        "per_channel": _("Sent per channel"),
        "ordered": _("Ordered after the campaign"),
        "one_each": _("Each customer gets the message once, on the channel they last wrote "
                      "from (or the next one they can be reached on)."),
    }


@bp.get("/campaigns")
@login_required
def index():
    channels = [{"id": c.id, "name": c.name, "kind": c.kind} for c in db.session.scalars(
        select(Channel).where(Channel.kind != "crm").order_by(Channel.name))]
    teams = [{"id": t.id, "name": t.name} for t in db.session.scalars(select(Team).order_by(Team.name))]
    db.session.commit()
    return render_template("campaigns.html", strings=_strings(),
                           meta={"channels": channels, "teams": teams})


# --- the public unsubscribe page -----------------------------------------------------------

def _unsubscribe_target(token: str):
    found = optouts.read_unsubscribe_token(token)
    if found is None:
        abort(404)
    customer_id, channel_id, campaign_id = found
    if db.session.get(Customer, customer_id) is None or db.session.get(Channel, channel_id) is None:
        abort(404)
    return customer_id, channel_id, campaign_id


@public.route("/unsubscribe/<token>", methods=["GET", "POST"])
def unsubscribe(token: str):
    """GET: a page with one button (link scanners only GET); POST: the opt-out, from that
    button or from the mail client's one-click (List-Unsubscribe-Post)."""
    customer_id, channel_id, campaign_id = _unsubscribe_target(token)
    done = False
    if request.method == "POST":
        optouts.record(db.session, customer_id, channel_id, "unsubscribe_link",
                       campaign_id=campaign_id)
        if campaign_id:
            recipient = db.session.scalar(select(CampaignRecipient).where(
                CampaignRecipient.campaign_id == campaign_id,
                CampaignRecipient.customer_id == customer_id))
            if recipient is not None and recipient.opted_out_at is None:
                recipient.opted_out_at = utcnow()
        db.session.commit()
        done = True
        if request.form.get("List-Unsubscribe") == "One-Click":
            return "", 204
    channel = db.session.get(Channel, channel_id)
    campaign = db.session.get(Campaign, campaign_id) if campaign_id else None
    db.session.commit()
    return render_template("unsubscribe.html", done=done, channel=channel, campaign=campaign,
                           token=token)
