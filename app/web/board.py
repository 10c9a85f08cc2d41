"""The sales board (issue 8): deals by pipeline stage, moved by drag and drop, live for every
agent. Every signed-in agent sees the whole board: sales and support both work deals."""
from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from typing import Any

from flask import Blueprint, jsonify, render_template
from flask_babel import gettext as _
from flask_login import login_required
from sqlalchemy import func, select

from app.domain.customers import DEFAULT_OUTCOMES, DEFAULT_STAGES
from app.infra.schemas import deal_schema
from app.infra.models import Agent, Conversation, Customer, Deal, PipelineStage
from app.infra.state import db

bp = Blueprint("board", __name__)


def stage_names() -> dict[str, str]:
    """The default stages' names in the agent's language."""
    from flask_babel import pgettext

    return {"new": pgettext("deal stage", "New"), "qualified": pgettext("deal stage", "Qualified"),
            "proposal": pgettext("deal stage", "Proposal"),
            "negotiation": pgettext("deal stage", "Negotiation"),
            "won": pgettext("deal stage", "Won"), "lost": pgettext("deal stage", "Lost")}


def stages(in_use: list[str]) -> tuple[list[dict[str, Any]], bool]:
    """The board's columns and whether they are admin-defined. Admin-defined stages in
    their order (plus, at the end, any stage a deal still holds that is no longer defined);
    without any, the defaults followed by the other stages in use."""
    defined = list(db.session.scalars(select(PipelineStage).order_by(PipelineStage.position,
                                                                     PipelineStage.id)))
    if defined:
        columns = [{"key": s.key, "name": s.name, "outcome": s.outcome} for s in defined]
    else:
        columns = [{"key": key, "name": stage_names().get(key, key.title()),
                    "outcome": DEFAULT_OUTCOMES.get(key, "open")} for key in DEFAULT_STAGES]
    known = {c["key"] for c in columns}
    for key in in_use:
        if key not in known:
            known.add(key)
            columns.append({"key": key, "name": key, "outcome": "open", "extra": bool(defined)})
    return columns, bool(defined)


def board_data() -> dict[str, Any]:
    rows = db.session.execute(
        select(Deal, Customer.name, Customer.company)
        .join(Customer, Customer.id == Deal.customer_id)
        .order_by(Deal.expected_close.is_(None), Deal.expected_close, Deal.id)).all()
    # each deal links to its customer's latest conversation (the thread with the card)
    customer_ids = {deal.customer_id for deal, _name, _company in rows}
    latest = dict(db.session.execute(
        select(Conversation.customer_id, func.max(Conversation.id))
        .where(Conversation.customer_id.in_(customer_ids or [-1]))
        .group_by(Conversation.customer_id)).all())
    deals = []
    for deal, name, company in rows:
        item = deal_schema.dump(deal)
        item["customer_name"] = name or company or f"#{deal.customer_id}"
        item["conversation_id"] = latest.get(deal.customer_id)
        deals.append(item)
    in_use = list(dict.fromkeys(d["stage"] for d in deals))
    columns, defined = stages(in_use)
    agents = [{"id": a.id, "name": a.name} for a in db.session.scalars(
        select(Agent).order_by(Agent.name))]
    totals: dict[str, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    for d in deals:
        if d["amount"] is not None:
            totals[d["stage"]][d["currency"] or ""] += Decimal(d["amount"])
    db.session.commit()  # SQLite: end the read transaction
    return {"stages": columns, "stages_defined": defined, "deals": deals, "agents": agents,
            "totals": {k: {c: str(v) for c, v in t.items()} for k, t in totals.items()}}


def ui_strings() -> dict[str, str]:
    return {
        "board": _("Sales board"), "inbox": _("Inbox"), "total": _("Total"),
        "no_owner": _("No owner"), "closes": _("closes"), "deals": _("deals"),
        "moved": _("Moved"), "error": _("Something went wrong"), "live": _("Live"),
        "offline": _("Reconnecting…"),
        "owner": _("Owner"), "all_owners": _("All owners"), "stage": _("Stage"),
        "open_conversation": _("Conversation"), "open_customer": _("Open the customer's card"),
        "move_hint": _("Arrow keys ← → move the deal to another stage"),
        "moved_to": _("{title} moved to {stage}"),
    }


@bp.get("/board")
@login_required
def board():
    return render_template("board.html", strings=ui_strings())


@bp.get("/board/data")
@login_required
def data():
    return jsonify(board_data())
