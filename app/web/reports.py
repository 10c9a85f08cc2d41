"""The Reports page (`/reports`, DESIGN 3b): charts and tables drawn in the browser from
`/api/v1/reports/<name>`. Admins see every channel; an agent sees their teams' channels."""
from __future__ import annotations

from flask import Blueprint, render_template
from flask_babel import gettext as _
from flask_login import current_user, login_required
from sqlalchemy import select

from app.domain.access import visible_channel_ids
from app.infra.models import Agent, Channel, Team, agent_teams, utcnow
from app.infra.state import db
from app.usecases.reports import account_zone, known_labels

bp = Blueprint("reports", __name__)


def _strings() -> dict[str, str]:
    return {
        "period": _("Period"), "today": _("Today"), "days7": _("Last 7 days"),
        "days30": _("Last 30 days"), "days90": _("Last 90 days"), "custom": _("Custom"),
        "from": _("From"), "to": _("To"), "channel": _("Channel"), "team": _("Team"),
        "agent": _("Agent"), "all": _("All"), "apply": _("Show"), "csv": _("CSV"),
        "loading": _("Loading…"), "error": _("Could not load the report"),
        "volume": _("Volume"), "per_day": _("Messages per day"),
        "per_channel": _("Messages and reach per channel"), "heatmap": _("Busiest hours"),
        "heatmap_hint": _("Customer messages by weekday and hour"),
        "date": _("Date"), "messages_in": _("Messages in"), "messages_out": _("Messages out"),
        "conversations": _("Conversations"), "customers": _("Customers"),
        "new_customers": _("New"), "returning_customers": _("Returning"),
        "speed": _("Response times"), "first_response": _("First response"),
        "next_response": _("Next response"), "resolution": _("Resolution"),
        "median": _("Median"), "p90": _("90th percentile"), "count": _("Count"),
        "total": _("Total"), "agents": _("Agents"), "handled": _("Handled"),
        "replies": _("Replies"), "canned_replies": _("With a canned reply"),
        "median_first_response": _("Median first response"), "resolved": _("Resolved"),
        "reopened": _("Reopened"), "canned": _("Canned replies"), "shortcut": _("Shortcut"),
        "title": _("Title"), "uses": _("Uses"), "share": _("Share of replies"),
        "by_agent": _("By agent"), "sources": _("Sources and revenue"),
        "source_channel": _("First channel"), "utm_source": _("UTM source"),
        "utm_medium": _("UTM medium"), "utm_campaign": _("UTM campaign"),
        "referrer": _("Referrer"), "deep_link": _("Deep link"), "buyers": _("Buyers"),
        "orders": _("Orders"), "revenue": _("Revenue"), "bot": _("Bot"),
        "automated_replies": _("Automated replies"),
        "bot_answered": _("Answered by the bot"), "bot_resolved": _("Resolved by the bot alone"),
        "bot_handed_off": _("Handed to people"), "csat": _("Customer satisfaction"),
        "none": _("No data for this period"), "unknown": _("(none)"),
        "weekdays": _("Mon Tue Wed Thu Fri Sat Sun"),
        "sec": _("s"), "min": _("min"), "hour": _("h"), "day": _("d"),
        "calendar_note": _("Calendar time. Medians and 90th percentiles are read from "
                           "histograms: within 3 per cent of the exact value."),
        "business_note": _("Business hours: only the open hours of the conversation's team "
                           "count (always open for a team without a schedule). Medians and "
                           "90th percentiles are read from histograms: within 3 per cent of the "
                           "exact value."),
        "hours": _("Time"), "calendar": _("Calendar"), "business": _("Business hours"),
        "label": _("Label"), "sla": _("SLA"), "sla_met": _("Met"), "sla_breached": _("Breached"),
        "sla_pending": _("Pending"), "met_share": _("Met in time"),
        "sla_note": _("Conversations whose SLA target fell due in the period: met in time, "
                      "breached (answered or resolved late, or overdue) or still pending."),
        "sla_by_channel": _("SLA by channel"), "sla_by_team": _("SLA by team"),
        "sla_by_agent": _("SLA by agent"), "unassigned": _("Unassigned"),
        "no_team": _("No team"),
        "bot_note": _("The answer bot is not set up yet: only automated replies are counted."),
        "csat_note": _("Feedback questions asked in the period; the average is over the "
                       "answers. Per agent: who held the conversation when it was resolved."),
        "csat_average": _("Average score"), "csat_asked": _("Asked"),
        "csat_answered": _("Answered"), "csat_rate": _("Response rate"),
        "csat_score": _("Score"), "csat_distribution": _("Answers by score"),
        "csat_answers": _("Answers"),
        "sources_note": _("Customers whose conversation started in the period, by the first-"
                          "touch source on their card, and the orders they placed in the period."),
        "chart": _("Chart"), "table": _("Table"),
    }


@bp.get("/reports")
@login_required
def index():
    channels = visible_channel_ids(current_user)
    stmt = select(Channel).where(Channel.kind != "crm").order_by(Channel.name)
    if channels is not None:
        stmt = stmt.where(Channel.id.in_(sorted(channels) or [-1]))
    channel_list = [{"id": c.id, "name": c.name, "kind": c.kind} for c in db.session.scalars(stmt)]
    if current_user.is_admin:
        teams = list(db.session.scalars(select(Team).order_by(Team.name)))
        agents = list(db.session.scalars(select(Agent).where(Agent.active.is_(True))
                                         .order_by(Agent.name)))
    else:
        teams = sorted(current_user.teams, key=lambda t: t.name)
        mates = select(agent_teams.c.agent_id).where(
            agent_teams.c.team_id.in_([t.id for t in teams] or [-1]))
        agents = list(db.session.scalars(select(Agent).where(
            Agent.active.is_(True), (Agent.id.in_(mates)) | (Agent.id == current_user.id))
            .order_by(Agent.name)))
    today = utcnow().astimezone(account_zone()).date().isoformat()
    meta = {"channels": channel_list, "today": today,
            "teams": [{"id": t.id, "name": t.name} for t in teams],
            "agents": [{"id": a.id, "name": a.name} for a in agents],
            "labels": known_labels()}
    db.session.commit()
    return render_template("reports.html", strings=_strings(), meta=meta)
