"""The event log: a reconnecting client asks for what it missed."""
from __future__ import annotations

from sqlalchemy import func, or_, select

from app.domain.access import visible_channel_ids
from app.infra.models import Event
from app.infra.state import db
from app.web.api.base import bp, current_agent, token_auth
from app.web.api.paging import page
from app.infra.schemas import EventPage, EventQuery


@bp.get("/events")
@bp.auth_required(token_auth)
@bp.input(EventQuery, location="query", arg_name="query")
@bp.output(EventPage)
@bp.doc(summary="Events after a given id, oldest first (what a reconnecting client missed)")
def list_events(query):
    stmt = select(Event).where(Event.id > query["after"])
    channels = visible_channel_ids(current_agent())
    if channels is not None:
        stmt = stmt.where(or_(Event.channel_id.in_(channels or [-1])))
    return page(stmt.order_by(Event.id), query["limit"])


@bp.get("/events/head")
@bp.auth_required(token_auth)
@bp.doc(summary="The newest event id: load state, then ask for events after it")
def events_head():
    return {"last_id": db.session.scalar(select(func.max(Event.id))) or 0}
