"""A customer's whole timeline across channels, with the card and the channels a reply can
take (the inbox's thread view)."""
from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from connectors.whatsapp import window_open

from app.domain import optouts
from app.domain.access import visible_channel_ids
from app.domain.handles import CHANNEL_IDENTITY_KINDS
from app.infra.inbox_schemas import TimelineOut
from app.infra.models import Channel, Conversation, Customer, Deal, Message, Note, Order, utcnow
from app.infra.state import db
from app.usecases import csat
from app.web.api.base import bp, current_agent, token_auth
from app.web.api.conversations import get_visible_conversation


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
               "window_open": c.kind != "whatsapp" or window_open(latest[c.id], now),
               "templates": _templates(c)}
              for c in channels if c.active]
    return sorted(result, key=lambda r: r["last_inbound_at"], reverse=True)



@bp.get("/conversations/<int:conversation_id>/timeline")
@bp.auth_required(token_auth)
@bp.output(TimelineOut)
@bp.doc(summary="The customer's whole timeline: every conversation I may see, across "
                "channels, with the customer's card and the channels a reply can take")
def timeline(conversation_id: int):
    conversation = get_visible_conversation(conversation_id)
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
        "csat": csat.for_customer(db.session, customer.id, limit=5),
        # channels the customer opted out of campaigns on (keyword, block, unsubscribe link)
        "opt_outs": optouts.of_customer(db.session, customer.id),
    }
    reply_channels = _reply_channels(customer.id)
    return {"conversation": conversation, "customer": customer, "card": card,
            "conversations": conversations, "messages": messages,
            "reply_channels": reply_channels,
            "default_channel_id": reply_channels[0]["id"] if reply_channels else None}

