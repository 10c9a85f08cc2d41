"""The site chat's email fallback: an agent answered while the visitor was gone. Replies the
widget never reported delivered or read within `jobs.widget_email_delay` seconds are sent,
batched per conversation, as one email through the webchat channel's `email_channel` (or
the first email channel), when the visitor left an email address. Runs with the sweeper."""
from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import select

from app.infra.db import after_commit
from app.infra.models import Channel, Conversation, Identity, Message, utcnow
from app.infra.state import config, db, queue

log = logging.getLogger(__name__)
BATCH = 200


def _visitor_email(session, conversation: Conversation) -> str | None:
    metas = session.scalars(select(Message.meta).where(
        Message.conversation_id == conversation.id, Message.direction == "in")
        .order_by(Message.id.desc()).limit(50))
    for meta in metas:
        if meta and meta.get("contact_email"):
            return meta["contact_email"]
    return session.scalar(select(Identity.value).where(
        Identity.customer_id == conversation.customer_id, Identity.kind == "email",
        Identity.reachable.is_(True)).limit(1))


def _email_channel(session, webchat: Channel) -> Channel | None:
    wanted = str(webchat.settings.get("email_channel") or "").strip()
    query = select(Channel).where(Channel.kind == "email", Channel.active.is_(True))
    if wanted:
        query = query.where((Channel.name == wanted) | (Channel.id == (int(wanted) if wanted.isdigit() else -1)))
    return session.scalar(query.order_by(Channel.id).limit(1))


def email_unseen_replies() -> int:
    """Queue one email per conversation with unseen widget replies; returns how many."""
    session = db.session
    now = utcnow()
    due_before = now - timedelta(seconds=float(config["jobs"]["widget_email_delay"]))
    candidates = session.scalars(
        select(Message).join(Channel, Channel.id == Message.channel_id).where(
            Channel.kind == "webchat", Message.direction == "out", Message.status == "sent",
            Message.sent_at < due_before, Message.sent_at > due_before - timedelta(days=2))
        .order_by(Message.id).limit(BATCH)).all()
    pending: dict[int, list[Message]] = {}
    for message in candidates:
        if "emailed" not in message.meta:
            pending.setdefault(message.conversation_id, []).append(message)
    queued = []
    for conversation_id, replies in pending.items():
        conversation = session.get(Conversation, conversation_id)
        address = _visitor_email(session, conversation)
        email_channel = _email_channel(session, session.get(Channel, replies[0].channel_id))
        outcome = "queued"
        if address is None or email_channel is None:
            outcome = "no visitor email" if address is None else "no email channel"
        else:
            email = Message(conversation_id=conversation.id, customer_id=conversation.customer_id,
                            channel_id=email_channel.id, direction="out", status="queued",
                            text="\n\n".join(r.text for r in replies),
                            subject=conversation.subject or "Re: your chat with us",
                            created_at=now, enqueued_at=now,
                            meta={"to": f"email:{address}", "fallback_for": [r.id for r in replies]})
            session.add(email)
            session.flush()
            queued.append(email.id)
        for reply in replies:
            reply.meta = {**reply.meta, "emailed": outcome}
    if queued:
        after_commit(session, lambda: queue.wake("send_queued"))
    session.commit()
    if queued:
        log.info("widget: %d unseen repl(ies) emailed to visitors", len(queued))
    return len(queued)
