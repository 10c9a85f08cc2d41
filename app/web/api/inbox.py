"""What the live inbox needs besides plain conversations and messages: the page's bootstrap
data, unread counts per view, the customer's whole timeline, search, bulk actions, canned
replies, attachments and the agent's profile."""
from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

from apiflask import abort
from flask import send_file
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from app.domain.access import can_see_conversation, visible_channel_ids
from app.infra.models import (
    Agent,
    Attachment,
    CannedReply,
    Channel,
    Conversation,
    Customer,
    Deal,
    Message,
    Note,
    Order,
    Team,
    utcnow,
)
from app.usecases.outbox import CHANNEL_IDENTITY_KINDS
from app.infra.events import record_event
from app.domain.search import search_customers, search_messages, snippet, terms
from app.infra.db import after_commit
from app.infra.state import db, queue
from app.web.api import bp, current_agent, token_auth
from app.infra.inbox_schemas import (
    BootstrapOut,
    BulkIn,
    BulkOut,
    CannedReplyIn,
    CannedReplyList,
    CannedReplyOut,
    CannedReplyPatch,
    InboxAgentOut,
    ProfilePatch,
    SearchOut,
    SearchQuery,
    TimelineOut,
    ViewCountsOut,
)
from app.infra.schemas import ConversationOut, conversation_schema

WHATSAPP_WINDOW = timedelta(hours=24)


def _agent_out(agent: Agent) -> dict:
    return {"id": agent.id, "name": agent.name, "email": agent.email, "role": agent.role,
            "locale": agent.locale, "team_ids": [t.id for t in agent.teams]}


def _require_admin() -> None:
    if not current_agent().is_admin:
        abort(403, "admins only")


def _visible_conversation(conversation_id: int) -> Conversation:
    conversation = db.session.get(Conversation, conversation_id)
    if conversation is None or not can_see_conversation(current_agent(), conversation):
        abort(404, "conversation not found")
    return conversation


def _labels_in_use(channels: set[int] | None) -> list[str]:
    stmt = select(Conversation.labels).where(Conversation.status != "resolved") \
        .order_by(Conversation.last_activity_at.desc()).limit(2000)
    if channels is not None:
        stmt = stmt.where(Conversation.channel_id.in_(channels or [-1]))
    found: set[str] = set()
    for labels in db.session.scalars(stmt):
        found.update(str(label) for label in labels or [])
    return sorted(found)


@bp.get("/inbox/bootstrap")
@bp.auth_required(token_auth)
@bp.output(BootstrapOut)
@bp.doc(summary="Everything the inbox page needs once: me, agents, teams, my channels, "
                "labels, canned replies")
def bootstrap():
    agent = current_agent()
    channels = visible_channel_ids(agent)
    agents = db.session.scalars(select(Agent).where(Agent.active.is_(True))
                                .options(selectinload(Agent.teams)).order_by(Agent.name))
    channel_stmt = select(Channel).order_by(Channel.name)
    if channels is not None:
        channel_stmt = channel_stmt.where(Channel.id.in_(channels or [-1]))
    teams = db.session.scalars(select(Team).order_by(Team.name))
    if not agent.is_admin:
        mine = {t.id for t in agent.teams}
        teams = [t for t in teams if t.id in mine]
    return {
        "me": _agent_out(agent),
        "agents": [_agent_out(a) for a in agents],
        "teams": list(teams),
        "channels": list(db.session.scalars(channel_stmt)),
        "labels": _labels_in_use(channels),
        "canned_replies": list(db.session.scalars(select(CannedReply)
                                                  .order_by(CannedReply.shortcut))),
    }


@bp.get("/inbox/views")
@bp.auth_required(token_auth)
@bp.output(ViewCountsOut)
@bp.doc(summary="Unread conversations per view, and every conversation per view (totals; "
                "two grouped queries, resolved ones left out)")
def view_counts():
    agent = current_agent()
    channels = visible_channel_ids(agent)
    base = [Conversation.status != "resolved"]
    if channels is not None:
        base.append(Conversation.channel_id.in_(channels or [-1]))
    counts = _tally(agent, base + [Conversation.unread_count > 0])
    totals = _tally(agent, base)
    return {"counts": counts, "totals": totals}


def _tally(agent: Agent, where: list) -> dict[str, int]:
    """Conversations per view among those `where` picks: open, mine, unassigned, snoozed,
    channel:<id>, team:<id>, label:<name>."""
    rows = db.session.execute(
        select(Conversation.status, Conversation.channel_id, Conversation.team_id,
               Conversation.assignee_id, func.count())
        .where(*where)
        .group_by(Conversation.status, Conversation.channel_id, Conversation.team_id,
                  Conversation.assignee_id))
    counts: dict[str, int] = {"open": 0, "mine": 0, "unassigned": 0, "snoozed": 0}
    for status, channel_id, team_id, assignee_id, n in rows:
        if status == "snoozed":
            counts["snoozed"] += n
            continue
        if status != "open":
            continue
        counts["open"] += n
        if assignee_id == agent.id:
            counts["mine"] += n
        if assignee_id is None:
            counts["unassigned"] += n
        counts[f"channel:{channel_id}"] = counts.get(f"channel:{channel_id}", 0) + n
        if team_id is not None:
            counts[f"team:{team_id}"] = counts.get(f"team:{team_id}", 0) + n
    labelled = db.session.scalars(select(Conversation.labels)
                                  .where(*where, Conversation.status == "open").limit(5000))
    for labels in labelled:
        for label in labels or []:
            counts[f"label:{label}"] = counts.get(f"label:{label}", 0) + 1
    return counts


def _templates(channel: Channel) -> list[dict]:
    """A WhatsApp channel's `templates` setting (names, or objects with name and language)."""
    if channel.kind != "whatsapp":
        return []
    out = []
    for item in channel.settings.get("templates") or []:
        if isinstance(item, str) and item.strip():
            out.append({"name": item.strip(), "language": "en"})
        elif isinstance(item, dict) and item.get("name"):
            out.append({"name": str(item["name"]), "language": str(item.get("language") or "en")})
    return out


def _reply_channels(customer_id: int) -> list[dict]:
    """The customer's channels, latest inbound first (the composer's default)."""
    rows = db.session.execute(
        select(Message.channel_id, func.max(Message.created_at))
        .where(Message.customer_id == customer_id, Message.direction == "in",
               Message.channel_id.is_not(None))
        .group_by(Message.channel_id))
    latest = {channel_id: at for channel_id, at in rows}
    if not latest:
        return []
    now = utcnow()
    channels = db.session.scalars(select(Channel).where(Channel.id.in_(latest)))
    result = [{"id": c.id, "kind": c.kind, "name": c.name, "last_inbound_at": latest[c.id],
               "identity_kinds": list(CHANNEL_IDENTITY_KINDS.get(c.kind, ())),
               "window_open": c.kind != "whatsapp" or (latest[c.id] is not None
                                                       and now - latest[c.id] < WHATSAPP_WINDOW),
               "templates": _templates(c)}
              for c in channels if c.active]
    return sorted(result, key=lambda r: r["last_inbound_at"], reverse=True)


@bp.get("/conversations/<int:conversation_id>/timeline")
@bp.auth_required(token_auth)
@bp.output(TimelineOut)
@bp.doc(summary="The customer's whole timeline: every conversation I may see, across "
                "channels, with the customer's card and the channels a reply can take")
def timeline(conversation_id: int):
    conversation = _visible_conversation(conversation_id)
    agent = current_agent()
    channels = visible_channel_ids(agent)
    customer = db.session.scalar(select(Customer).where(Customer.id == conversation.customer_id)
                                 .options(selectinload(Customer.identities)))
    conv_stmt = select(Conversation).where(Conversation.customer_id == customer.id) \
        .options(selectinload(Conversation.customer).selectinload(Customer.identities)) \
        .order_by(Conversation.created_at, Conversation.id)
    if channels is not None:
        conv_stmt = conv_stmt.where(Conversation.channel_id.in_(channels or [-1]))
    conversations = list(db.session.scalars(conv_stmt))
    ids = [c.id for c in conversations] or [conversation.id]
    messages = list(reversed(list(db.session.scalars(
        select(Message).options(selectinload(Message.attachments))
        .where(Message.conversation_id.in_(ids))
        .order_by(Message.id.desc()).limit(500)))))
    card = {
        "orders": [{"id": o.id, "external_ref": o.external_ref, "status": o.status,
                    "total": str(o.total) if o.total is not None else None,
                    "currency": o.currency,
                    "placed_at": o.placed_at.isoformat() if o.placed_at else None}
                   for o in db.session.scalars(select(Order).where(Order.customer_id == customer.id)
                                               .order_by(Order.id.desc()).limit(10))],
        "deals": [{"id": d.id, "title": d.title, "stage": d.stage,
                   "amount": str(d.amount) if d.amount is not None else None,
                   "currency": d.currency, "owner_id": d.owner_id,
                   "expected_close": d.expected_close.isoformat() if d.expected_close else None}
                  for d in db.session.scalars(select(Deal).where(Deal.customer_id == customer.id)
                                              .order_by(Deal.id.desc()).limit(10))],
        "notes": [{"id": n.id, "text": n.text, "created_at": n.created_at.isoformat()}
                  for n in db.session.scalars(select(Note).where(Note.customer_id == customer.id)
                                              .order_by(Note.id.desc()).limit(10))],
    }
    reply_channels = _reply_channels(customer.id)
    return {"conversation": conversation, "customer": customer, "card": card,
            "conversations": conversations, "messages": messages,
            "reply_channels": reply_channels,
            "default_channel_id": reply_channels[0]["id"] if reply_channels else None}


@bp.post("/conversations/<int:conversation_id>/read")
@bp.auth_required(token_auth)
@bp.output(ConversationOut)
@bp.doc(summary="Mark the conversation read (unread count back to 0)")
def mark_read(conversation_id: int):
    conversation = _visible_conversation(conversation_id)
    if conversation.unread_count:
        conversation.unread_count = 0
        db.session.flush()
        record_event(db.session, "conversation.updated", conversation_schema.dump(conversation),
                     conversation.channel_id)
        # WhatsApp read receipts (blue ticks), when the channel's mark_read setting is on
        after_commit(db.session, lambda: queue.enqueue("send_read_receipt", conversation.id))
        db.session.commit()
    return conversation


@bp.post("/conversations/bulk")
@bp.auth_required(token_auth)
@bp.input(BulkIn, arg_name="bulk")
@bp.output(BulkOut)
@bp.doc(summary="Apply one change (assign, status, labels, priority) to several conversations")
def bulk_update(bulk):
    from app.web.api.conversations import apply_patch

    ids = bulk.pop("ids")
    if not bulk:
        abort(422, "nothing to change", detail={"json": {"_schema": ["give at least one field"]}})
    items = []
    for conversation_id in dict.fromkeys(ids):
        conversation = db.session.get(Conversation, conversation_id)
        if conversation is None or not can_see_conversation(current_agent(), conversation):
            abort(404, f"conversation {conversation_id} not found")
        apply_patch(conversation, dict(bulk))
        items.append(conversation)
    db.session.commit()
    return {"items": items}


@bp.get("/search")
@bp.auth_required(token_auth)
@bp.input(SearchQuery, location="query", arg_name="query")
@bp.output(SearchOut)
@bp.doc(summary="Customers by name, email, phone or handle; messages by text")
def search(query):
    agent = current_agent()
    channels = visible_channel_ids(agent)
    q = query["q"]
    customers = search_customers(db.session, q, limit=10)
    # an agent finds only customers with a conversation they may see
    latest: dict[int, int] = {}
    if customers:
        stmt = select(Conversation.customer_id, func.max(Conversation.id)) \
            .where(Conversation.customer_id.in_([c.id for c in customers])) \
            .group_by(Conversation.customer_id)
        if channels is not None:
            stmt = stmt.where(Conversation.channel_id.in_(channels or [-1]))
        latest = {customer_id: cid for customer_id, cid in db.session.execute(stmt)}
        customers = [c for c in customers if c.id in latest]
    messages = search_messages(db.session, q, channels, limit=query["limit"])
    owners = {c.id: c for c in db.session.scalars(
        select(Customer).options(selectinload(Customer.identities))
        .where(Customer.id.in_({m.customer_id for m in messages} or [-1])))}
    return {
        "query": q, "terms": terms(q), "customers": customers,
        "customer_conversations": {str(k): v for k, v in latest.items()},
        "messages": [{"message": m, "snippet": snippet(m.text, q),
                      "customer": owners.get(m.customer_id)} for m in messages],
    }


@bp.get("/attachments/<int:attachment_id>")
@bp.auth_required(token_auth)
@bp.doc(summary="Download an attachment (inline for images with ?inline=1)")
def download_attachment(attachment_id: int):
    from flask import request

    from app.infra.storage import attachment_path

    attachment = db.session.get(Attachment, attachment_id)
    if attachment is None:
        abort(404, "attachment not found")
    message = db.session.get(Message, attachment.message_id)
    if message is None or not can_see_conversation(current_agent(), message.conversation):
        abort(404, "attachment not found")
    if not attachment.path:
        abort(404, attachment.error or "the attachment has not been downloaded yet")
    path: Path = attachment_path(attachment.path)
    inline = request.args.get("inline") == "1" and attachment.content_type.startswith("image/") \
        and attachment.content_type != "image/svg+xml"
    response = send_file(path, mimetype=attachment.content_type if inline
                         else "application/octet-stream",
                         as_attachment=not inline, download_name=attachment.filename)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response


# --- canned replies ------------------------------------------------------------------------

@bp.get("/canned-replies")
@bp.auth_required(token_auth)
@bp.output(CannedReplyList)
@bp.doc(summary="Canned replies (inserted in the composer with /shortcut)")
def list_canned():
    return {"items": list(db.session.scalars(select(CannedReply).order_by(CannedReply.shortcut)))}


def _shortcut_taken(shortcut: str, exclude: int | None = None) -> None:
    stmt = select(CannedReply.id).where(CannedReply.shortcut == shortcut)
    if exclude:
        stmt = stmt.where(CannedReply.id != exclude)
    if db.session.scalar(stmt):
        abort(422, "shortcut taken", detail={"json": {"shortcut": ["already in use"]}})


@bp.post("/canned-replies")
@bp.auth_required(token_auth)
@bp.input(CannedReplyIn, arg_name="data")
@bp.output(CannedReplyOut, status_code=201)
@bp.doc(summary="Add a canned reply (admins)")
def create_canned(data):
    _require_admin()
    _shortcut_taken(data["shortcut"])
    reply = CannedReply(created_by_id=current_agent().id, **data)
    db.session.add(reply)
    db.session.commit()
    return reply


@bp.patch("/canned-replies/<int:reply_id>")
@bp.auth_required(token_auth)
@bp.input(CannedReplyPatch, arg_name="data")
@bp.output(CannedReplyOut)
@bp.doc(summary="Change a canned reply (admins)")
def update_canned(reply_id: int, data):
    _require_admin()
    reply = db.session.get(CannedReply, reply_id) or abort(404, "canned reply not found")
    if "shortcut" in data:
        _shortcut_taken(data["shortcut"], exclude=reply_id)
    for key, value in data.items():
        setattr(reply, key, value)
    db.session.commit()
    return reply


@bp.delete("/canned-replies/<int:reply_id>")
@bp.auth_required(token_auth)
@bp.output({}, status_code=204)
@bp.doc(summary="Delete a canned reply (admins)")
def delete_canned(reply_id: int):
    _require_admin()
    reply = db.session.get(CannedReply, reply_id) or abort(404, "canned reply not found")
    db.session.delete(reply)
    db.session.commit()
    return ""


# --- me ------------------------------------------------------------------------------------

@bp.patch("/inbox/me")
@bp.auth_required(token_auth)
@bp.input(ProfilePatch, arg_name="data")
@bp.output(InboxAgentOut)
@bp.doc(summary="My profile: display name, interface language (en, ru; null = browser's)")
def update_me(data):
    agent = current_agent()
    for key, value in data.items():
        setattr(agent, key, value)
    db.session.commit()
    return _agent_out(agent)


MENTION = re.compile(r"@([\w.\-]+(?:@[\w.\-]+)?)", re.UNICODE)


def mentioned_agents(text: str) -> list[Agent]:
    """`@irina`, `@irina@demo.threadline.local` or `@Ирина` (a first name) name an agent."""
    handles = {h.lower().rstrip(".") for h in MENTION.findall(text or "")}
    if not handles:
        return []
    found = []
    for agent in db.session.scalars(select(Agent).where(Agent.active.is_(True))):
        local = agent.email.split("@")[0].lower()
        first = (agent.name.split() or [""])[0].lower()
        if agent.email.lower() in handles or local in handles or first in handles:
            found.append(agent)
    return found
