"""How the app applies channel-specific records (besides Inbound / StatusUpdate, which
`app/ingest` handles for every channel)."""
from __future__ import annotations

import logging

from decimal import Decimal, InvalidOperation

from sqlalchemy import select
from sqlalchemy.orm import Session

from connectors.base import Inbound

from connectors.telegram import ReachabilityChange
from connectors.whatsapp import NumberChange

from app.infra.schemas import customer_schema
from app.infra.models import Channel, Customer, Identity, Message, Order
from app.infra.events import record_event

log = logging.getLogger(__name__)


def _identity(session: Session, kind: str, value: str) -> Identity | None:
    return session.scalar(select(Identity).where(Identity.kind == kind, Identity.value == value))


def _customer_updated(session: Session, customer: Customer, channel: Channel) -> None:
    session.flush()
    session.refresh(customer)
    record_event(session, "customer.updated", customer_schema.dump(customer), channel.id)


def apply_reachability(session: Session, channel: Channel, change: ReachabilityChange) -> None:
    """A Telegram user blocked (or unblocked) the bot: the card and composer show it."""
    identity = _identity(session, change.handle.kind, change.handle.value)
    if identity is None:
        log.info("reachability change for unknown %s ignored", change.handle)
        return
    if not change.reachable:   # a block is an opt-out of campaigns on this bot
        from app.domain import optouts

        optouts.record(session, identity.customer_id, channel.id, "blocked",
                       "the user blocked the bot")
    if identity.reachable != change.reachable:
        identity.reachable = change.reachable
        _customer_updated(session, identity.customer, channel)


def apply_number_change(session: Session, channel: Channel, change: NumberChange) -> None:
    """A WhatsApp user moved to a new number: the new handles join the same customer."""
    old = _identity(session, change.old.kind, change.old.value)
    if old is None:
        log.info("number change from unknown %s ignored", change.old)
        return
    customer = old.customer
    for handle in (change.new,):
        existing = _identity(session, handle.kind, handle.value)
        if existing is None:
            session.add(Identity(customer_id=customer.id, kind=handle.kind, value=handle.value,
                                 verified=handle.verified))
        elif existing.customer_id != customer.id:
            log.warning("number change to %s, which belongs to customer %s; left for an agent",
                        handle, existing.customer_id)
            return
    old.reachable = False
    _customer_updated(session, customer, channel)


def whatsapp_order_to_crm(session: Session, channel: Channel, inbound: Inbound,
                          message: Message) -> None:
    """An order sent from the WhatsApp catalog becomes an order on the customer's card."""
    order = inbound.meta.get("order") if channel.kind == "whatsapp" else None
    if not order:
        return
    items = [{"sku": i.get("product_retailer_id"), "qty": i.get("quantity", 1),
              "price": str(i.get("item_price")) if i.get("item_price") is not None else None,
              "currency": i.get("currency")} for i in order.get("product_items") or []]
    currencies = {i["currency"] for i in items if i["currency"]}
    try:
        total = sum((Decimal(i["price"]) * int(i["qty"]) for i in items if i["price"]), Decimal(0))
    except (InvalidOperation, ValueError):
        total = None
    session.add(Order(customer_id=message.customer_id, external_ref=f"whatsapp:{inbound.external_id}",
                      placed_at=inbound.sent_at, total=total if len(currencies) <= 1 else None,
                      currency=next(iter(currencies)) if len(currencies) == 1 else None,
                      status="new", items=items))
    session.flush()



def telegram_button_pressed(session: Session, channel: Channel, inbound: Inbound,
                            message: Message) -> None:
    """A Telegram button press: its callback query is answered after commit (a job, no
    network call inside the ingest transaction) so the customer's spinner stops."""
    query_id = inbound.meta.get("callback_query_id") if channel.kind == "telegram" else None
    if not query_id:
        return
    from app.infra.db import after_commit
    from app.infra.state import queue

    channel_id = channel.id
    after_commit(session, lambda: queue.enqueue("answer_callback", channel_id, str(query_id)))


def answer_callback(channel_id: int, callback_query_id: str) -> bool:
    """The job: answerCallbackQuery. A failure is logged only (Telegram forgets the query
    after a few seconds anyway; the press itself is already in the thread)."""
    from connectors.base import ChannelError
    from connectors.telegram import answer_callback as answer

    from app.infra.state import db

    session = db.session
    channel = session.get(Channel, channel_id)
    if channel is None:
        return False
    settings = dict(channel.settings)
    session.commit()
    try:
        answer(settings, callback_query_id)
    except ChannelError as exc:
        log.info("callback query %s not answered: %s", callback_query_id, exc)
        return False
    return True


def send_read_receipt(conversation_id: int) -> bool:
    """An agent opened the conversation: blue ticks for the customer's latest WhatsApp
    message, when the channel's `mark_read` setting is on. Returns whether one was sent."""
    from connectors.base import ChannelError
    from connectors.whatsapp import mark_read

    from app.infra.state import db

    session = db.session
    message = session.scalar(select(Message).join(Channel, Channel.id == Message.channel_id).where(
        Message.conversation_id == conversation_id, Message.direction == "in",
        Channel.kind == "whatsapp").order_by(Message.id.desc()).limit(1))
    if message is None or message.meta.get("read_receipt_sent"):
        return False
    channel = session.get(Channel, message.channel_id)
    if str(channel.settings.get("mark_read", "")).lower() not in ("1", "true", "yes", "on"):
        return False
    settings, wamid = dict(channel.settings), message.external_id
    session.commit()  # no transaction open while Meta answers
    try:
        mark_read(settings, wamid)
    except ChannelError as exc:
        log.info("read receipt for %s not sent: %s", wamid, exc)
        return False
    message = session.get(Message, message.id)
    message.meta = {**message.meta, "read_receipt_sent": True}
    session.commit()
    return True
