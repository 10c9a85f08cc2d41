"""The one door for inbound traffic.

Webhooks, IMAP sync, Telegram polling and the widget all call `receive()` with a raw
payload: it is stored first (a repeated delivery is a no-op insert on the unique
(channel, external_id)), then `process_event()` parses it through the channel's connector
and applies the records: dedupe, resolve the customer, place the message in a conversation,
commit, then publish. A payload that fails keeps its raw event, marked failed with the
error; `threadline events replay` runs it again.

The drain (`process_received`) applies a batch of received events set-based (`apply_set`):
the same result as `process_event` one by one, with a handful of statements per batch
instead of a unit of work per event.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable

from sqlalchemy import and_, func, or_, select, tuple_, update
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from connectors import get_connector
from connectors.base import (
    Handle,
    Ignored,
    Inbound,
    StatusUpdate,
    bounded_inbound,
    is_unparsed,
    load_json,
    unparsed_bytes,
    without_nul,
)

from app.infra.schemas import conversation_schema, customer_schema, message_schema
from app.infra.db import after_commit
from app.infra.logs import register_channel_secrets
from app.infra.models import (
    Attachment,
    Channel,
    Conversation,
    Customer,
    Event,
    Identity,
    InboundEvent,
    Message,
    utcnow,
)
from app.infra.events import record_event
from app.infra.state import config, db, queue
from app.infra.storage import save_attachment
from app.domain.customers import canonical
from app.domain.suggestions import suggest

log = logging.getLogger(__name__)

# Delivery statuses only move forward; a late "delivered" never undoes "read".
STATUS_RANK = {"queued": 0, "sending": 1, "sent": 2, "delivered": 3, "read": 4}


@dataclass(frozen=True)
class Received:
    event_id: int | None
    duplicate: bool


_RECEIVE_STATEMENTS: dict[str, Any] = {}


def _receive_statement(dialect: str):
    """INSERT ... ON CONFLICT DO NOTHING RETURNING id, built once per dialect: the values
    come as parameters, so each webhook skips building and caching a new statement."""
    stmt = _RECEIVE_STATEMENTS.get(dialect)
    if stmt is None:
        table = InboundEvent.__table__
        stmt = ((postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)
                .on_conflict_do_nothing(index_elements=["channel_id", "external_id"])
                .returning(table.c.id))
        _RECEIVE_STATEMENTS[dialect] = stmt
    return stmt


def receive(channel: Channel, external_id: str, payload: dict[str, Any],
            process: str = "queue") -> Received:
    """Store one raw delivery and have it processed.

    `channel`: anything with the channel's `id` (a Channel, or the webhook door's cached
    snapshot, app/infra/channel_cache.py).
    process: "queue" (a job; the webhook answers at once), "inline" (now, in this thread),
    or "none" (the caller processes it).

    One Core INSERT in the session's transaction and its commit (no ORM unit of work: this
    is the acknowledgement path of every webhook).
    """
    session = db.session
    payload = without_nul(payload)   # PostgreSQL stores no NUL in jsonb
    connection = session.connection()
    now = utcnow()
    event_id = connection.execute(_receive_statement(connection.dialect.name), {
        "channel_id": channel.id, "external_id": str(external_id)[:500], "payload": payload,
        "status": "received", "attempts": 0, "created_at": now,
        "enqueued_at": now if process == "queue" else None}).scalar()
    session.commit()
    if event_id is None:
        log.info("duplicate delivery ignored: channel %s event %s", channel.id, external_id)
        return Received(None, True)
    if process == "queue":
        queue.wake("process_received")
    elif process == "inline":
        process_event(event_id)
    return Received(event_id, False)


RACE_RETRIES = 3


def process_event(event_id: int) -> str:
    """Parse and apply one stored event in one transaction; returns its final status.

    No savepoints on this hot path (each costs two round trips): when a concurrent
    transaction wins a race for the same customer, conversation or message, the unique
    constraint fails ours, and the whole event is applied again on top of what won.
    """
    for attempt in range(1, RACE_RETRIES + 1):
        try:
            return _process_once(event_id)
        except IntegrityError as exc:
            db.session.rollback()
            if attempt == RACE_RETRIES:
                return _mark_failed(event_id, exc)
            log.info("inbound event %s lost a race (%s); applying it again", event_id,
                     type(exc.orig).__name__ if exc.orig else "IntegrityError")
    raise AssertionError("unreachable")


def _process_once(event_id: int) -> str:
    session = db.session
    event = session.get(InboundEvent, event_id, with_for_update=True)
    if event is None:
        raise LookupError(f"inbound event {event_id} does not exist")
    if event.status == "processed":
        session.rollback()
        return event.status
    try:
        _apply_event(session, event)
        session.flush()
    except IntegrityError:
        raise
    except Exception as exc:  # keep the raw event; an admin sees the error and can replay it
        session.rollback()
        return _mark_failed(event_id, exc)
    session.commit()
    return event.status


def _apply_event(session: Session, event: InboundEvent) -> None:
    """Parse and apply one event in the caller's transaction. A payload the connector cannot
    parse marks the event failed right here (parsing touches no rows); an error while
    applying propagates, and the caller rolls back."""
    channel = session.get(Channel, event.channel_id)
    records = _parse_event(event, channel)
    if records is not None:
        apply_records(session, channel, records)
        _mark_done(event, "processed", None)


def _parse_event(event: InboundEvent, channel: Channel) -> list[Any] | None:
    """The connector's records of the event; None when the payload does not parse (the event
    is marked failed here: parsing touches no rows)."""
    connector = get_connector(channel.kind)
    register_channel_secrets(connector, channel.settings)
    try:
        payload = event.payload
        if is_unparsed(payload):   # kept raw at the door: read again (its error, or a replay)
            payload = load_json(unparsed_bytes(payload) or b"")
        return connector.parse(channel.settings, payload)
    except Exception as exc:
        log.warning("inbound event %s failed: %s: %s", event.id, type(exc).__name__, exc)
        _mark_done(event, "failed", f"{type(exc).__name__}: {exc}"[:2000])
        return None


def _mark_done(event: InboundEvent, status: str, error: str | None) -> None:
    # set together after applying: one UPDATE of the event row, not one per autoflush
    event.status, event.error = status, error
    event.attempts += 1
    event.processed_at = utcnow()


def process_received() -> int:
    """The ingest drain: apply received events in batches of `jobs.ingest_batch`, each batch
    in one transaction, until none is left; returns how many events it took.

    Webhooks only `wake` this job (app/jobs.py), so a burst of a thousand messages costs a
    handful of jobs and commits instead of a thousand of each. PostgreSQL rows are claimed
    with SKIP LOCKED, so several workers drain side by side; SQLite has one writer anyway.
    A batch that fails while applying is rolled back and its events go one by one through
    `process_event`, which re-applies lost races and marks a broken event failed alone.
    """
    queue.awake("process_received")
    limit = int(config["jobs"]["ingest_batch"])
    taken = 0
    while True:
        batch = _claim_received(limit)
        if not batch:
            return taken
        taken += len(batch)
        if len(batch) == limit:
            queue.wake("process_received")  # more are waiting: let another worker join in
        _apply_batch(batch)


def _claim_received(limit: int) -> list[InboundEvent]:
    return list(db.session.scalars(
        select(InboundEvent).where(InboundEvent.status == "received")
        .order_by(InboundEvent.id).limit(limit).with_for_update(skip_locked=True)))


def _apply_batch(batch: list[InboundEvent]) -> None:
    session = db.session
    event_ids = [event.id for event in batch]
    # The session's identity map holds objects weakly: a channel, customer or identity that
    # no object of the next event refers to would be read again by it. Held (hold_in_batch)
    # until the batch ends, each is read once per batch: ingest only reads them, or fills
    # in what is empty.
    session.info[_HELD] = []
    try:
        apply_set(session, batch)
        session.commit()
        return
    except IntegrityError as exc:
        # a race lost to another drain (PostgreSQL: the same new customer in both batches):
        # what won is committed now, so the batch is applied again set-wise on top of it,
        # once, before falling back to one by one (≈10× the statements per event)
        session.info.pop(_HELD, None)
        session.rollback()
        log.info("batch of %s inbound events lost a race (%s); applying it again",
                 len(event_ids), type(exc.orig).__name__ if exc.orig else "IntegrityError")
    except Exception as exc:
        _one_by_one(session, event_ids, exc)
        return
    session.info[_HELD] = []
    try:
        again = list(session.scalars(
            select(InboundEvent).where(InboundEvent.id.in_(event_ids),
                                       InboundEvent.status == "received")
            .order_by(InboundEvent.id).with_for_update()))
        if again:
            apply_set(session, again)
        session.commit()
    except Exception as exc:
        _one_by_one(session, event_ids, exc)


def _one_by_one(session, event_ids: list[int], exc: Exception) -> None:
    """A batch that failed is rolled back and its events applied each in its own
    transaction, so a bad payload fails alone."""
    session.info.pop(_HELD, None)
    session.rollback()
    log.info("batch of %s inbound events rolled back (%s: %s); applying them one by one",
             len(event_ids), type(exc).__name__, exc)
    for event_id in event_ids:
        process_event(event_id)


_HELD = "ingest.held"
HELD_TYPES = (Channel, Customer, Identity)


def hold_in_batch(session: Session, instance: Any) -> None:
    """Session listener (loaded_as_persistent, pending_to_persistent; app/wiring.py): while
    a batch is applied, its channels, customers and identities stay in the session."""
    held = session.info.get(_HELD)
    if held is not None and isinstance(instance, HELD_TYPES):
        held.append(instance)


# SQLite numbers a row max(rowid) + 1 itself, but SQLAlchemy sends an INSERT … RETURNING per
# row there (a multi-row RETURNING's order is not guaranteed): a batch's 300 messages were
# 1,000+ statements. Its writer holds the write lock from BEGIN (BEGIN IMMEDIATE,
# app/infra/db.py), so the drain numbers its new rows the same way and the flush sends one
# executemany INSERT per table.
NUMBERED_TYPES = (Customer, Identity, Conversation, Message, Event)


def number_new_rows(session: Session, _flush_context, _instances) -> None:
    """before_flush (app/wiring.py): on SQLite, while the drain applies a batch, its new rows
    get their ids in the order they were added, as SQLite would give them."""
    if session.info.get(_HELD) is None or session.get_bind().dialect.name != "sqlite":
        return
    by_type: dict[type, list[Any]] = {}
    for obj in session.new:
        if type(obj) in NUMBERED_TYPES and obj.id is None:
            by_type.setdefault(type(obj), []).append(obj)
    for model, objects in by_type.items():
        if len(objects) < 2:
            continue
        objects.sort(key=lambda o: sa_inspect(o).insert_order)
        top = session.execute(select(func.max(model.id)).execution_options(
            autoflush=False)).scalar() or 0
        for n, obj in enumerate(objects, start=top + 1):
            obj.id = n
            if model is Event and obj.depth is None:
                obj.depth = 0   # its default, given: an unset one costs a RETURNING per row


def release_batch(session: Session) -> None:
    """after_commit / after_rollback: the batch's objects are let go."""
    session.info.pop(_HELD, None)


def _mark_failed(event_id: int, exc: Exception) -> str:
    log.warning("inbound event %s failed: %s: %s", event_id, type(exc).__name__, exc)
    session = db.session
    event = session.get(InboundEvent, event_id, with_for_update=True)
    event.status, event.error = "failed", f"{type(exc).__name__}: {exc}"[:2000]
    event.attempts += 1
    event.processed_at = utcnow()
    session.commit()
    return event.status


def replay_failed(event_ids: list[int] | None = None,
                  progress: Callable[[int, int, str], None] | None = None) -> dict[str, int]:
    """Run failed events again (all failed ones, or the given ids)."""
    session = db.session
    query = select(InboundEvent.id).where(InboundEvent.status == "failed").order_by(InboundEvent.id)
    if event_ids:
        query = select(InboundEvent.id).where(InboundEvent.id.in_(event_ids)).order_by(InboundEvent.id)
    ids = list(session.scalars(query))
    counts: dict[str, int] = {}
    for n, event_id in enumerate(ids, 1):
        session.execute(update(InboundEvent).where(InboundEvent.id == event_id)
                        .values(status="received"))
        session.commit()
        status = process_event(event_id)
        counts[status] = counts.get(status, 0) + 1
        if progress:
            progress(n, len(ids), status)
    return counts


# --- applying records -------------------------------------------------------------------

RecordHandler = Callable[[Session, Channel, Any], None]
# channel-specific side effects of a new inbound message (a WhatsApp order joins the CRM card)
AFTER_INBOUND: list[Callable[[Session, Channel, Inbound, Message], None]] = []
# a customer's message opened a new conversation (an outside bot takes it): app/wiring.py
NEW_CONVERSATION: list[Callable[[Session, Conversation, Channel, Inbound], None]] = []
# how each record type is applied (connectors may define their own types): app/wiring.py
RECORD_HANDLERS: dict[type, RecordHandler] = {}
# asked first where a new inbound message belongs: a conversation (even a resolved one, which
# stays resolved: the answer to a feedback question), or None for the usual placement
PLACEMENT_HOOKS: list[Callable[[Session, Customer, Channel, Inbound],
                               Conversation | None]] = []


def apply_records(session: Session, channel: Channel, records: list[Any]) -> None:
    for record in records:
        handler = RECORD_HANDLERS.get(type(record))
        if handler is None:
            raise TypeError(f"no handler for record type {type(record).__name__}")
        handler(session, channel, record)


def apply_ignored(session: Session, channel: Channel, record: Ignored) -> None:
    log.info("channel %s: ignored: %s", channel.id, record.reason)


def apply_inbound(session: Session, channel: Channel, inbound: Inbound) -> Message | None:
    # no NUL (PostgreSQL refuses it) and a bounded text, marked when cut; the raw event keeps all
    inbound = bounded_inbound(inbound, get_connector(channel.kind).max_text_chars)
    if inbound.kind == "edit":
        return _apply_edit(session, channel, inbound)
    if inbound.kind == "revoke":
        return _apply_revoke(session, channel, inbound)
    if inbound.kind == "reaction":
        return _apply_reaction(session, channel, inbound)
    return _add_inbound_message(session, channel, inbound)


def _find_message(session: Session, channel: Channel, external_id: str | None) -> Message | None:
    if not external_id:
        return None
    return session.scalar(select(Message).where(Message.channel_id == channel.id,
                                                Message.external_id == external_id))


def _add_inbound_message(session: Session, channel: Channel, inbound: Inbound) -> Message | None:
    if _find_message(session, channel, inbound.external_id) is not None:
        log.info("duplicate message %s on channel %s ignored", inbound.external_id, channel.id)
        return None
    album = _album_of(session, channel, inbound)
    if album is not None:
        return _add_to_album(session, album, inbound)
    returned = _returned_message(session, channel, inbound)
    if returned is not None:
        # a bounce or receipt from a mail server: it belongs to the thread of the message it
        # reports on, not to a new "customer" called MAILER-DAEMON
        customer, conversation, opened = returned.conversation.customer, returned.conversation, False
        _apply_delivery_report(session, returned, inbound)
    else:
        customer = resolve_customer(session, channel, inbound)
        conversation, opened = place_in_conversation(session, customer, channel, inbound)
        if opened:
            for hook in NEW_CONVERSATION:
                hook(session, conversation, channel, inbound)
    message = Message(
        conversation_id=conversation.id, customer_id=customer.id, channel_id=channel.id,
        direction="in", content_type=inbound.content_type, subject=inbound.subject,
        text=inbound.text, html=inbound.html, external_id=inbound.external_id,
        status="received", automated=inbound.automated, created_at=inbound.sent_at,
        meta={**inbound.meta, "from": f"{inbound.sender.kind}:{inbound.sender.value}",
              **({"button_id": inbound.button_id} if inbound.button_id else {})},
        attachments=[],  # a new message has none yet: saves a lazy SELECT per message
    )
    replied = _find_message(session, channel, inbound.reply_to_external_id)
    if replied is not None:
        message.reply_to_id = replied.id
    session.add(message)
    session.flush()  # a concurrent copy of this message fails here; process_event retries
    _store_attachments(session, message, inbound)
    for hook in AFTER_INBOUND:
        hook(session, channel, inbound, message)
    _touch_conversation(conversation, message, inbound)
    session.flush()
    if opened:
        record_event(session, "conversation.created", conversation_schema.dump(conversation),
                     conversation.channel_id)
    else:
        record_event(session, "conversation.updated", conversation_schema.dump(conversation),
                     conversation.channel_id)
    record_event(session, "message.created", message_schema.dump(message), conversation.channel_id)
    return message


def _album_of(session: Session, channel: Channel, inbound: Inbound) -> Message | None:
    """Telegram sends an album as one message per photo sharing a media_group_id; the
    thread shows it as one message, so later parts join the first."""
    group = inbound.meta.get("media_group_id")
    if not group:
        return None
    return session.scalar(select(Message).where(
        Message.channel_id == channel.id, Message.direction == "in",
        Message.meta["media_group_id"].as_string() == str(group)).limit(1))


def _add_to_album(session: Session, album: Message, inbound: Inbound) -> Message | None:
    parts = list(album.meta.get("album_parts", [album.external_id]))
    if inbound.external_id in parts:
        return None  # a repeated delivery of a part we have
    album.meta = {**album.meta, "album_parts": [*parts, inbound.external_id]}
    if inbound.text and inbound.text not in album.text:
        album.text = f"{album.text}\n{inbound.text}".strip()
    _store_attachments(session, album, inbound)
    _emit_message_updated(session, album)
    return album


def _returned_message(session: Session, channel: Channel, inbound: Inbound) -> Message | None:
    if not inbound.automated:
        return None
    reported = inbound.meta.get("bounced_message_id") or inbound.meta.get("original_message_id")
    return _find_message(session, channel, str(reported).strip("<>")) if reported else None


def _apply_delivery_report(session: Session, reported: Message, inbound: Inbound) -> None:
    """A bounce fails the message it returns and marks the address failing; a read receipt
    marks it read. A delayed-delivery notice changes nothing."""
    kind = inbound.meta.get("auto_kind")
    if kind == "bounce" and reported.direction == "out":
        recipients = inbound.meta.get("failed_recipients") or []
        reported.status = "failed"
        reported.error = f"bounced: {', '.join(recipients) or 'the recipient'} ({inbound.subject or ''})"[:2000]
        for address in recipients:
            identity = session.scalar(select(Identity).where(Identity.kind == "email",
                                                             Identity.value == address.lower()))
            if identity is not None:
                identity.reachable = False
    elif kind == "mdn" and reported.direction == "out" \
            and STATUS_RANK.get(reported.status, 99) < STATUS_RANK["read"]:
        reported.status = "read"
    else:
        return
    _emit_message_updated(session, reported)


def _store_attachments(session: Session, message: Message, inbound: Inbound) -> None:
    limit = _max_attachment_bytes()
    for item in inbound.attachments:
        attachment = Attachment(message_id=message.id, filename=item.filename,
                                content_type=item.content_type, size=item.size,
                                remote_ref=item.remote_ref, content_id=item.content_id,
                                error=item.error)
        if item.data is not None:
            attachment.size = len(item.data)
            if len(item.data) > limit:
                attachment.error = f"too large: {len(item.data)} bytes (limit {limit})"
            else:
                attachment.path = save_attachment(item.data, item.filename)
        session.add(attachment)
        message.attachments.append(attachment)
    if any(a.remote_ref and not a.path and not a.error for a in message.attachments):
        session.flush()
        after_commit(session, lambda: queue.enqueue("fetch_attachments", message.id))


def _max_attachment_bytes() -> int:
    from app.infra.state import config

    return int(config["storage"]["max_attachment_bytes"])


def _touch_conversation(conversation: Conversation, message: Message, inbound: Inbound) -> None:
    conversation.last_activity_at = max(conversation.last_activity_at, message.created_at)
    conversation.last_inbound_at = message.created_at
    conversation.channel_id = message.channel_id
    conversation.last_message_preview = (inbound.text or inbound.content_type)[:200]
    if conversation.status != "resolved":   # an answer to feedback leaves it as it is
        conversation.unread_count += 1
    if conversation.status in ("pending", "snoozed"):
        conversation.status, conversation.snoozed_until = "open", None
    if not conversation.subject and inbound.subject:
        conversation.subject = inbound.subject[:500]


# --- customers ---------------------------------------------------------------------------

def _identity_lookup(session: Session, handles_: list[Handle]) -> dict[tuple[str, str], Identity]:
    if not handles_:
        return {}
    keys = [(h.kind, h.value) for h in handles_]
    rows = session.scalars(select(Identity).where(tuple_(Identity.kind, Identity.value).in_(keys)))
    return {(i.kind, i.value): i for i in rows}


def resolve_customer(session: Session, channel: Channel, inbound: Inbound) -> Customer:
    """Exact match of a verified handle links to its customer; otherwise a new customer.
    Extra verified handles join the customer; weaker evidence becomes merge suggestions."""
    verified = [inbound.sender, *[h for h in inbound.also_known_as if h.verified]]
    known = _identity_lookup(session, verified)
    sender_identity = known.get((inbound.sender.kind, inbound.sender.value))
    if sender_identity is None and known:
        sender_identity = next(iter(known.values()))
    if sender_identity is not None:
        customer = canonical(session, sender_identity.customer)
        _attach_handles(session, customer, verified, known)
    else:
        customer = _create_customer(session, channel, inbound, verified)
    _suggest_merges(session, customer, inbound.evidence, "handle mentioned by the customer")
    if inbound.source and not customer.source:
        customer.source = inbound.source
    if inbound.sender_name and not customer.name:
        customer.name = inbound.sender_name[:200]
    return customer


def _create_customer(session: Session, channel: Channel, inbound: Inbound,
                     handles_: list[Handle]) -> Customer:
    """A new customer with its identities. If a concurrent transaction creates one of the
    identities first, the unique (kind, value) fails this one and process_event retries."""
    customer = Customer(name=(inbound.sender_name or inbound.sender.value)[:200],
                        source=inbound.source or {"channel": channel.kind, "channel_id": channel.id})
    session.add(customer)
    session.flush()
    for handle in dict.fromkeys(handles_):
        session.add(Identity(customer_id=customer.id, kind=handle.kind, value=handle.value,
                             verified=handle.verified))
    session.flush()
    record_event(session, "customer.created", customer_schema.dump(customer), None)
    return customer


def _attach_handles(session: Session, customer: Customer, handles_: list[Handle],
                    known: dict[tuple[str, str], Identity]) -> None:
    for handle in handles_:
        identity = known.get((handle.kind, handle.value))
        if identity is None:
            session.add(Identity(customer_id=customer.id, kind=handle.kind,
                                 value=handle.value, verified=handle.verified))
            session.flush()
        elif canonical(session, identity.customer).id != customer.id:
            suggest(session, customer.id, identity.customer_id,
                     {"reason": "same verified handle", "handle": f"{handle.kind}:{handle.value}"},
                     score=90)


def _suggest_merges(session: Session, customer: Customer, evidence: tuple[Handle, ...],
                    reason: str) -> None:
    known = _identity_lookup(session, list(evidence))
    for (kind, value), identity in known.items():
        other = canonical(session, identity.customer)
        if other.id != customer.id:
            suggest(session, customer.id, other.id,
                     {"reason": reason, "handle": f"{kind}:{value}"}, score=60)


# --- conversations -----------------------------------------------------------------------

def open_conversation(session: Session, customer: Customer) -> Conversation | None:
    return session.scalar(select(Conversation).where(
        Conversation.customer_id == customer.id, Conversation.status != "resolved"))


def _referenced_conversation(session: Session, channel: Channel,
                             inbound: Inbound) -> Conversation | None:
    """Our reply token first, then the Message-IDs it answers, newest first."""
    from app.usecases.outbox import conversation_for_token

    for ref in inbound.thread_refs:
        conversation = None
        if ref.startswith("token:"):
            conversation_id = conversation_for_token(ref.removeprefix("token:"))
            conversation = session.get(Conversation, conversation_id) if conversation_id else None
        elif not ref.startswith("thread-index:"):
            referenced = _find_message(session, channel, ref.strip("<>"))
            conversation = referenced.conversation if referenced is not None else None
        if conversation is not None and conversation.status != "resolved":
            return conversation
    return None


def place_in_conversation(session: Session, customer: Customer, channel: Channel,
                          inbound: Inbound) -> tuple[Conversation, bool]:
    """The open conversation the message refers to (an email reply from a colleague Cc'd on
    the thread), else the customer's open conversation, else a new one (a message after
    resolution opens a new conversation; the timeline keeps the earlier ones)."""
    for hook in PLACEMENT_HOOKS:
        placed = hook(session, customer, channel, inbound)
        if placed is not None:
            return placed, False
    referenced = _referenced_conversation(session, channel, inbound)
    if referenced is not None:
        return referenced, False
    conversation = open_conversation(session, customer)
    if conversation is not None:
        return conversation, False
    # one open conversation per customer is a partial unique index: a concurrent message
    # that opened one first fails this flush, and process_event retries
    conversation = Conversation(customer_id=customer.id, channel_id=channel.id, status="open",
                                subject=inbound.subject, last_activity_at=inbound.sent_at,
                                created_at=min(inbound.sent_at, utcnow()))
    session.add(conversation)
    session.flush()
    return conversation, True


# --- edits, revokes, reactions, statuses -------------------------------------------------

def _emit_message_updated(session: Session, message: Message) -> None:
    session.flush()
    record_event(session, "message.updated", message_schema.dump(message),
                 message.conversation.channel_id)


def _apply_edit(session: Session, channel: Channel, inbound: Inbound) -> Message | None:
    message = _find_message(session, channel, inbound.external_id)
    if message is None:  # the original never reached us: keep the edited text as a message
        return _add_inbound_message(session, channel, inbound)
    if message.text != inbound.text:
        message.history = [*message.history, {"text": message.text,
                                              "until": inbound.sent_at.isoformat()}]
        message.text, message.html = inbound.text, inbound.html
        message.edited_at = inbound.sent_at
        _emit_message_updated(session, message)
    return message


def _apply_revoke(session: Session, channel: Channel, inbound: Inbound) -> Message | None:
    message = _find_message(session, channel, inbound.reply_to_external_id or inbound.external_id)
    if message is not None and not message.deleted:
        message.deleted = True
        _emit_message_updated(session, message)
    return message


def _apply_reaction(session: Session, channel: Channel, inbound: Inbound) -> Message | None:
    message = _find_message(session, channel, inbound.reply_to_external_id)
    if message is None:
        log.info("reaction to unknown message %s ignored", inbound.reply_to_external_id)
        return None
    reactions = dict(message.meta.get("reactions", {}))
    who = f"{inbound.sender.kind}:{inbound.sender.value}"
    if inbound.text:
        reactions[who] = inbound.text
    else:
        reactions.pop(who, None)  # an empty emoji removes the reaction
    message.meta = {**message.meta, "reactions": reactions}
    _emit_message_updated(session, message)
    return message


def apply_status(session: Session, channel: Channel, update_: StatusUpdate) -> None:
    message = session.scalar(select(Message).where(
        Message.channel_id == channel.id, Message.direction == "out",
        Message.external_id == update_.external_id))
    if message is None:
        log.info("status %s for unknown message %s ignored", update_.status, update_.external_id)
        return
    if update_.status == "failed":
        if message.status == "failed":
            return
        message.status, message.error = "failed", update_.error or "failed"
    elif STATUS_RANK.get(update_.status, -1) > STATUS_RANK.get(message.status, 99):
        message.status = update_.status
    else:
        return  # older or repeated news
    _emit_message_updated(session, message)


# --- set-based apply of a batch (issue 15) --------------------------------------------------

# called once per set of inbound messages applied together, with the ids of their customers,
# before the placement and new-conversation hooks run for each message: a hook that reads
# per customer or per channel reads for all of them at once (csat's open questions, the
# channels' outside bots). Returns a function called when the set is done (or None).
BATCH_PREFETCH: list[Callable[[Session, list[int]], Callable[[], None] | None]] = []


def apply_set(session: Session, events: list[InboundEvent]) -> None:
    """Apply a claimed batch of received events in the caller's transaction, set-based:
    every payload parsed first; then each run of plain inbound messages (no edit, revoke,
    reaction, album part, delivery report or email thread reference) is applied together
    with one query per kind (messages already there, identities with their customers, open
    conversations), one flush of the new customers and their identities, one flush of the
    new conversations and messages (multi-row INSERT ... RETURNING) and the conversations'
    unread/activity (folded in memory, message by message, as the one-by-one path would),
    and one conversation payload per touched conversation. The rest goes through the record
    handlers in order, between the runs. Same result as applying the events one by one
    (tests/usecases/test_ingest_set.py checks it over random batches). A payload that does
    not parse is marked failed alone; an error while applying propagates (the caller rolls
    the batch back and applies its events one by one)."""
    channel_ids = sorted({event.channel_id for event in events})
    channels = {channel.id: channel for channel in session.scalars(
        select(Channel).where(Channel.id.in_(channel_ids)))}
    inbound_handler = RECORD_HANDLERS.get(Inbound, apply_inbound)
    run: list[tuple[Channel, Inbound]] = []
    applied: list[InboundEvent] = []
    for event in events:
        channel = channels[event.channel_id]
        records = _parse_event(event, channel)
        if records is None:
            continue
        for record in records:
            if type(record) is Inbound and inbound_handler is apply_inbound:
                inbound = bounded_inbound(record, get_connector(channel.kind).max_text_chars)
                if _set_appliable(inbound):
                    run.append((channel, inbound))
                    continue
            if type(record) is Ignored and RECORD_HANDLERS.get(Ignored) is apply_ignored:
                apply_ignored(session, channel, record)   # a log line: the run goes on
                continue
            if run:
                _apply_inbound_set(session, run)
                run = []
            apply_records(session, channel, [record])
        applied.append(event)
    if run:
        _apply_inbound_set(session, run)
    for event in applied:
        _mark_done(event, "processed", None)


def _set_appliable(inbound: Inbound) -> bool:
    return (inbound.kind not in ("edit", "revoke", "reaction") and not inbound.thread_refs
            and not inbound.meta.get("media_group_id")
            and not (inbound.automated and (inbound.meta.get("bounced_message_id")
                                            or inbound.meta.get("original_message_id"))))


def _existing_messages(session: Session, keys: set[tuple[int, str]]) -> dict[tuple[int, str], int]:
    """(channel id, external id) -> message id, of the given keys that exist: one query."""
    if not keys:
        return {}
    by_channel: dict[int, list[str]] = {}
    for channel_id, external_id in sorted(keys):
        by_channel.setdefault(channel_id, []).append(external_id)
    where = or_(*(and_(Message.channel_id == channel_id, Message.external_id.in_(external_ids))
                  for channel_id, external_ids in by_channel.items()))
    return {(channel_id, external_id): message_id for message_id, channel_id, external_id
            in session.execute(select(Message.id, Message.channel_id, Message.external_id)
                               .where(where))}


def _identities_of(session: Session, items: list[tuple[Channel, Inbound]]
                   ) -> dict[tuple[str, str], Identity]:
    """Every handle the messages name (sender, verified aliases, evidence) that is known, with
    its customer and the customer's identities: one query per kind."""
    keys = {(h.kind, h.value) for _, inbound in items
            for h in (inbound.sender, *inbound.also_known_as, *inbound.evidence)}
    if not keys:
        return {}
    rows = session.scalars(select(Identity).where(tuple_(Identity.kind, Identity.value)
                                                  .in_(sorted(keys)))
                           .options(selectinload(Identity.customer)
                                    .selectinload(Customer.identities)))
    return {(identity.kind, identity.value): identity for identity in rows}


def _ensure_ids(session: Session, *customers: Customer) -> None:
    if any(customer.id is None for customer in customers):
        session.flush()


def _resolve_in_set(session: Session, channel: Channel, inbound: Inbound,
                    identities: dict[tuple[str, str], Identity],
                    created: list[Customer]) -> Customer:
    """resolve_customer over the set's identities (the prefetched ones and those this set
    made): the same decisions, without a query per message."""
    verified = [inbound.sender, *[h for h in inbound.also_known_as if h.verified]]
    known = {(h.kind, h.value): identities[(h.kind, h.value)] for h in verified
             if (h.kind, h.value) in identities}
    sender_identity = known.get((inbound.sender.kind, inbound.sender.value))
    if sender_identity is None and known:
        sender_identity = next(iter(known.values()))
    if sender_identity is not None:
        customer = canonical(session, sender_identity.customer)
        for handle in verified:
            identity = identities.get((handle.kind, handle.value))
            if identity is None:
                identity = Identity(customer=customer, kind=handle.kind, value=handle.value,
                                    verified=handle.verified)
                session.add(identity)
                identities[(handle.kind, handle.value)] = identity
            else:
                other = canonical(session, identity.customer)
                if other is not customer:
                    _ensure_ids(session, customer, other)
                    suggest(session, customer.id, identity.customer_id,
                             {"reason": "same verified handle",
                              "handle": f"{handle.kind}:{handle.value}"}, score=90)
    else:
        customer = Customer(name=(inbound.sender_name or inbound.sender.value)[:200],
                            source=inbound.source or {"channel": channel.kind,
                                                      "channel_id": channel.id},
                            identities=[])
        session.add(customer)
        for handle in dict.fromkeys(verified):
            identity = Identity(customer=customer, kind=handle.kind, value=handle.value,
                                verified=handle.verified)
            session.add(identity)
            identities[(handle.kind, handle.value)] = identity
        created.append(customer)
    for kind, value in dict.fromkeys((h.kind, h.value) for h in inbound.evidence):
        identity = identities.get((kind, value))
        if identity is None:
            continue
        other = canonical(session, identity.customer)
        if other is not customer:
            _ensure_ids(session, customer, other)
            suggest(session, customer.id, other.id,
                     {"reason": "handle mentioned by the customer", "handle": f"{kind}:{value}"},
                     score=60)
    if inbound.source and not customer.source:
        customer.source = inbound.source
    if inbound.sender_name and not customer.name:
        customer.name = inbound.sender_name[:200]
    return customer


@dataclass
class _Placed:
    channel: Channel
    inbound: Inbound
    customer: Customer
    conversation: Conversation
    opened: bool
    message: Message
    reply_to: Message | None = None   # a message of the same set it answers


def _apply_inbound_set(session: Session, items: list[tuple[Channel, Inbound]]) -> None:
    """Apply plain inbound messages together, in their order (see apply_set)."""
    wanted = {(channel.id, inbound.external_id) for channel, inbound in items
              if inbound.external_id}
    wanted |= {(channel.id, inbound.reply_to_external_id) for channel, inbound in items
               if inbound.reply_to_external_id}
    existing = _existing_messages(session, wanted)
    identities = _identities_of(session, items)

    # who: each message's customer, in order (a sender new in this set is made once)
    seen: set[tuple[int, str]] = set(existing)
    created: list[Customer] = []
    todo: list[tuple[Channel, Inbound, Customer]] = []
    for channel, inbound in items:
        if inbound.external_id:
            key = (channel.id, inbound.external_id)
            if key in seen:
                log.info("duplicate message %s on channel %s ignored", inbound.external_id,
                         channel.id)
                continue
            seen.add(key)
        todo.append((channel, inbound, _resolve_in_set(session, channel, inbound, identities,
                                                       created)))
    if not todo:
        return
    if created:
        session.flush()   # the new customers and identities: one INSERT each

    customer_ids = sorted({customer.id for _, _, customer in todo})
    cleanups = [hook(session, customer_ids) for hook in BATCH_PREFETCH]
    try:
        placed = _place_in_set(session, todo, existing)
    finally:
        for cleanup in cleanups:
            if cleanup is not None:
                cleanup()
    session.flush()   # the new conversations and messages, the conversations' changes
    for item in placed:
        if item.reply_to is not None:
            item.message.reply_to_id = item.reply_to.id
        if item.inbound.attachments:
            _store_attachments(session, item.message, item.inbound)
        for hook in AFTER_INBOUND:
            hook(session, item.channel, item.inbound, item.message)
    session.flush()

    # the log: a new customer, then each conversation once (its state after the set), then
    # the messages, in the order the one-by-one path logs them
    fresh = {id(customer) for customer in created}
    logged: set[int] = set()
    for item in placed:
        if id(item.customer) in fresh and id(item.customer) not in logged:
            logged.add(id(item.customer))
            record_event(session, "customer.created", customer_schema.dump(item.customer), None)
        conversation = item.conversation
        if id(conversation) not in logged:
            logged.add(id(conversation))
            record_event(session, "conversation.created" if item.opened else
                         "conversation.updated", conversation_schema.dump(conversation),
                         conversation.channel_id)
        record_event(session, "message.created", message_schema.dump(item.message),
                     item.message.channel_id)


def _place_in_set(session: Session, todo: list[tuple[Channel, Inbound, Customer]],
                  existing: dict[tuple[int, str], int]) -> list[_Placed]:
    open_by_customer: dict[int, Conversation] = {}
    for conversation in session.scalars(select(Conversation).where(
            Conversation.customer_id.in_([customer.id for _, _, customer in todo]),
            Conversation.status != "resolved")):
        open_by_customer[conversation.customer_id] = conversation
    added: dict[tuple[int, str], Message] = {}
    placed: list[_Placed] = []
    for channel, inbound, customer in todo:
        conversation, opened = None, False
        for hook in PLACEMENT_HOOKS:
            conversation = hook(session, customer, channel, inbound)
            if conversation is not None:
                break
        if conversation is None:
            conversation = open_by_customer.get(customer.id)
            if conversation is not None and conversation.status == "resolved":
                conversation = None   # resolved meanwhile (by a hook): a new one opens
        if conversation is None:
            conversation = Conversation(customer=customer, channel_id=channel.id, status="open",
                                        subject=inbound.subject,
                                        last_activity_at=inbound.sent_at,
                                        created_at=min(inbound.sent_at, utcnow()),
                                        unread_count=0, last_message_preview="")
            session.add(conversation)
            open_by_customer[customer.id] = conversation
            opened = True
            for hook in NEW_CONVERSATION:
                hook(session, conversation, channel, inbound)
        message = Message(
            conversation=conversation, customer_id=customer.id, channel_id=channel.id,
            direction="in", content_type=inbound.content_type, subject=inbound.subject,
            text=inbound.text, html=inbound.html, external_id=inbound.external_id,
            status="received", automated=inbound.automated, created_at=inbound.sent_at,
            meta={**inbound.meta, "from": f"{inbound.sender.kind}:{inbound.sender.value}",
                  **({"button_id": inbound.button_id} if inbound.button_id else {})},
            attachments=[],
        )
        item = _Placed(channel, inbound, customer, conversation, opened, message)
        if inbound.reply_to_external_id:
            key = (channel.id, inbound.reply_to_external_id)
            if key in existing:
                message.reply_to_id = existing[key]
            elif key in added:
                item.reply_to = added[key]
        if inbound.external_id:
            added[(channel.id, inbound.external_id)] = message
        session.add(message)
        _touch_conversation(conversation, message, inbound)
        placed.append(item)
    return placed
