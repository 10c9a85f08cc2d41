"""My notifications (mentions, assignments, new messages in my conversations): the header's
bell and its options, and the inbox's Mentions view."""
from __future__ import annotations

from apiflask import abort
from sqlalchemy import case, func, select

from app.domain import notifications as domain
from app.domain.access import visible_channel_ids
from app.infra.models import Agent, Conversation, Notification
from app.infra.notification_schemas import (
    MentionsOut,
    NotificationPage,
    NotificationQuery,
    PrefsIO,
    ReadIn,
    ReadOut,
)
from app.infra.state import db
from app.web.api.base import bp, current_agent, token_auth
from app.web.api.paging import id_cursor

MENTIONS_LIMIT = 200


def _unread(agent: Agent, kind: str | None = None) -> int:
    stmt = select(func.count()).select_from(Notification).where(
        Notification.agent_id == agent.id, Notification.read_at.is_(None))
    if kind:
        stmt = stmt.where(Notification.kind == kind)
    return db.session.scalar(stmt) or 0


def _out(rows: list[Notification]) -> list[dict]:
    names = dict(db.session.execute(select(Agent.id, Agent.name).where(
        Agent.id.in_({n.actor_id for n in rows if n.actor_id} or {-1}))).all())
    customers = {c.id: c.customer.name for c in db.session.scalars(select(Conversation).where(
        Conversation.id.in_({n.conversation_id for n in rows} or {-1})))}
    return [domain.notification_out(n, customers.get(n.conversation_id), names.get(n.actor_id))
            for n in rows]


@bp.get("/notifications")
@bp.auth_required(token_auth)
@bp.input(NotificationQuery, location="query", arg_name="query")
@bp.output(NotificationPage)
@bp.doc(summary="My notifications, newest first (cursor pagination); `unread` counts all")
def list_notifications(query):
    agent = current_agent()
    stmt = select(Notification).where(Notification.agent_id == agent.id)
    if query["kind"]:
        stmt = stmt.where(Notification.kind == query["kind"])
    if query["unread"]:
        stmt = stmt.where(Notification.read_at.is_(None))
    if query["cursor"]:
        stmt = stmt.where(Notification.id < id_cursor(query["cursor"]))
    rows = list(db.session.scalars(stmt.order_by(Notification.id.desc())
                                   .limit(query["limit"] + 1)))
    next_cursor = str(rows[query["limit"] - 1].id) if len(rows) > query["limit"] else None
    return {"items": _out(rows[:query["limit"]]), "next_cursor": next_cursor,
            "unread": _unread(agent)}


@bp.post("/notifications/read")
@bp.auth_required(token_auth)
@bp.input(ReadIn, arg_name="data")
@bp.output(ReadOut)
@bp.doc(summary="Mark notifications read: `ids`, or `all` (optionally of one `kind` or "
                "`conversation_id`)")
def read_notifications(data):
    agent = current_agent()
    narrowed = data["kind"] is not None or data["conversation_id"] is not None
    if not data.get("ids") and not data["all"] and not narrowed:
        abort(422, "nothing to mark", detail={"json": {"ids": ["give ids, or all: true"]}})
    ids = None if data["all"] or (narrowed and not data.get("ids")) else data.get("ids")
    marked = domain.mark_read(db.session, agent, ids, kind=data["kind"],
                              conversation_id=data["conversation_id"])
    db.session.commit()
    return {"marked": marked, "unread": _unread(agent)}


@bp.get("/notifications/settings")
@bp.auth_required(token_auth)
@bp.output(PrefsIO)
@bp.doc(summary="My notification options")
def get_prefs():
    return domain.prefs(db.session, current_agent())


@bp.put("/notifications/settings")
@bp.auth_required(token_auth)
@bp.input(PrefsIO, arg_name="data")
@bp.output(PrefsIO)
@bp.doc(summary="Save my notification options (sound, unread count in the tab title)")
def put_prefs(data):
    found = domain.save_prefs(db.session, current_agent(), data)
    db.session.commit()
    return found


@bp.get("/mentions")
@bp.auth_required(token_auth)
@bp.output(MentionsOut)
@bp.doc(summary="Conversations whose notes mention me: unread mentions first, then newest")
def list_mentions():
    agent = current_agent()
    unread = func.sum(case((Notification.read_at.is_(None), 1), else_=0))
    rows = db.session.execute(
        select(Notification.conversation_id, func.max(Notification.created_at), unread)
        .where(Notification.agent_id == agent.id, Notification.kind == "mention")
        .group_by(Notification.conversation_id)).all()
    channels = visible_channel_ids(agent)
    by_id = {c.id: c for c in db.session.scalars(select(Conversation).where(
        Conversation.id.in_([r[0] for r in rows] or [-1])))}
    ids: dict[int, list[int]] = {}
    for nid, cid in db.session.execute(select(Notification.id, Notification.conversation_id).where(
            Notification.agent_id == agent.id, Notification.kind == "mention",
            Notification.read_at.is_(None))):
        ids.setdefault(cid, []).append(nid)
    items = [{"conversation": by_id[cid], "unread": int(n or 0), "last_at": last,
              "ids": ids.get(cid, [])} for cid, last, n in rows
             if cid in by_id and (channels is None or by_id[cid].channel_id in channels)]
    items.sort(key=lambda i: (i["unread"] == 0, -i["last_at"].timestamp()))
    return {"items": items[:MENTIONS_LIMIT], "unread": sum(i["unread"] for i in items)}

