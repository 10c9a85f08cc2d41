"""The durable outbox: a reply is a queued message committed with the action that made it;
the `send_message` job sends it through the channel's connector.

Nothing is sent that was not first committed; nothing committed is silently dropped: a
send claimed by a worker is held by a lease (`jobs.lease` seconds, renewed while the worker
lives); the sweeper takes back a claim whose lease lapsed and queues it again, and after the
last attempt the message is failed with the error, visible and retryable. Delivery to the
channel is at least once: a worker killed after the channel took the message but before its
result was committed leaves a send that goes out again (email repeats carry the same
Message-ID; WhatsApp gets the same `biz_opaque_callback_data`).
"""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import os
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from flask import current_app
from sqlalchemy import and_, bindparam, delete, exists, func, or_, select, update
from sqlalchemy.orm import Session, aliased, joinedload, selectinload
from sqlalchemy.orm.attributes import set_committed_value

from connectors import get_connector
from connectors.base import (
    Button,
    ChannelError,
    Handle,
    Outbound,
    OutboundAttachment,
    PermanentError,
    SendResult,
    TransientError,
)

from app.domain.errors import DomainError
from app.domain.handles import (  # noqa: F401  (CHANNEL_IDENTITY_KINDS: also read from here)
    CHANNEL_IDENTITY_KINDS,
    can_reach,
    handle_forms,
)
from app.infra.schemas import conversation_schema, message_schema
from app.infra.db import after_commit
from app.infra.logs import register_channel_secrets
from app.infra.models import (
    Agent,
    Attachment,
    CannedReply,
    Channel,
    Conversation,
    Event,
    Identity,
    InboundEvent,
    Message,
    utcnow,
)
from app.infra.events import record_event, record_events
from app.infra.state import config, db, pacer, queue
from app.infra.storage import attachment_path

log = logging.getLogger(__name__)

# channel kind -> callbacks(message_id) run after a send of that kind is committed (the
# site widget pushes the reply to the visitor's open browser tabs this way)
SENT_HOOKS: dict[str, list] = {}
# callbacks(session, message, channel) run in the transaction that marks a send failed for
# good (a Telegram user who blocked the bot is opted out of campaigns this way)
FAILED_HOOKS: list = []


class ReplyError(DomainError):
    """The reply cannot be queued (no channel to reach the customer, ...): 422 on `field`;
    a message that cannot be retried: 409."""

    def __init__(self, message: str, field: str | None = "channel_id", status: int | None = None):
        super().__init__(field, message, status)
        self.args = (message,)  # str(exc): the message alone, as before


def customer_channel_ids(session: Session, customer_id: int) -> list[int]:
    """Channels the customer wrote from, most recent first."""
    rows = session.execute(
        select(Message.channel_id, Message.id)
        .where(Message.customer_id == customer_id, Message.direction == "in")
        .order_by(Message.id.desc()).limit(500))
    return list(dict.fromkeys(row.channel_id for row in rows if row.channel_id))


# built once (a statement object keeps its cache key): every reply asks
_LATEST_INBOUND = (
    select(Channel, Message.created_at).join(Channel, Channel.id == Message.channel_id)
    .where(Message.customer_id == bindparam("customer_id"), Message.direction == "in")
    .order_by(Message.id.desc()).limit(1))


def latest_inbound(session: Session, customer_id: int) -> tuple[Channel, object] | None:
    """The channel of the customer's latest inbound message (the first of
    `customer_channel_ids`) and when that message came, in one statement."""
    row = session.execute(_LATEST_INBOUND, {"customer_id": customer_id}).first()
    return (row[0], row[1]) if row is not None else None


def choose_channel(session: Session, conversation: Conversation,
                   channel_id: int | None) -> Channel:
    """The channel of the customer's latest inbound message, unless the agent picked another
    of the customer's channels."""
    if channel_id is None:
        return _default_channel(session, conversation)[0]
    available = customer_channel_ids(session, conversation.customer_id)
    if channel_id is None:
        if not available:
            raise ReplyError("the customer has written on no channel we can answer on")
        channel_id = available[0]
    elif channel_id not in available:
        raise ReplyError(f"channel {channel_id} is not one of this customer's channels")
    channel = session.get(Channel, channel_id)
    if channel is None or not channel.active:
        raise ReplyError(f"channel {channel_id} is not active")
    return channel


def _default_channel(session: Session, conversation: Conversation) -> tuple[Channel, object]:
    """`choose_channel` without a pick: the latest inbound message's channel, and when the
    customer last wrote on it (what WhatsApp's window is judged by)."""
    latest = latest_inbound(session, conversation.customer_id)
    if latest is None:
        raise ReplyError("the customer has written on no channel we can answer on")
    channel, at = latest
    if not channel.active:
        raise ReplyError(f"channel {channel.id} is not active")
    return channel, at


def reply_token(conversation_id: int) -> str:
    """Conversation id plus a MAC, so a forged reply address cannot pick a conversation."""
    mac = hmac.new(config["secret_key"].encode(), f"conv:{conversation_id}".encode(),
                   hashlib.sha256).hexdigest()[:12]
    return f"{conversation_id}-{mac}"


def conversation_for_token(token: str) -> int | None:
    conversation_id, _, _mac = token.partition("-")
    if conversation_id.isdigit() and hmac.compare_digest(reply_token(int(conversation_id)), token):
        return int(conversation_id)
    return None


def last_inbound_at(session: Session, customer_id: int, channel_id: int,
                    senders: list[str] | None = None):
    """When the customer last wrote on the channel (from one of `senders`, "kind:value",
    when given: WhatsApp's window is per number)."""
    stmt = select(Message.created_at).where(
        Message.customer_id == customer_id, Message.channel_id == channel_id,
        Message.direction == "in")
    if senders:
        stmt = stmt.where(Message.meta["from"].as_string().in_(senders))
    return session.scalar(stmt.order_by(Message.id.desc()).limit(1))


def reply_target(session: Session, conversation: Conversation, identity_id: int,
                 channel_id: int | None) -> tuple[Identity, int]:
    """The handle an agent picked ("reply here" on the card) and the channel to reach it on:
    the given one, else the customer's latest channel that can address that kind of handle."""
    identity = session.get(Identity, identity_id)
    if identity is None or identity.customer_id != conversation.customer_id:
        raise ReplyError(f"identity {identity_id} is not a handle of this customer",
                         field="identity_id")
    if channel_id is None:
        for candidate in customer_channel_ids(session, conversation.customer_id):
            channel = session.get(Channel, candidate)
            if channel is not None and channel.active and can_reach(channel.kind, identity.kind):
                return identity, candidate
        raise ReplyError(f"the customer wrote on no channel that reaches "
                         f"{identity.kind}:{identity.value}", field="identity_id")
    return identity, channel_id


_UNKNOWN = object()


def check_channel_rules(session: Session, conversation: Conversation, channel: Channel,
                        template: dict | None, identity: Identity | None = None,
                        inbound_at=_UNKNOWN) -> None:
    """Refuse what the channel would refuse, before anything is queued. `inbound_at`: when
    the customer last wrote on `channel`, when the caller knows it already (no identity
    picked); else it is read."""
    if identity is not None and not can_reach(channel.kind, identity.kind):
        raise ReplyError(f"a {channel.kind} channel cannot send to the {identity.kind} handle "
                         f"{identity.value}", field="identity_id")
    if channel.kind == "whatsapp" and template is None:
        from connectors.whatsapp import window_open

        if inbound_at is _UNKNOWN or identity is not None:
            senders = handle_forms(identity) if identity is not None else None
            inbound_at = last_inbound_at(session, conversation.customer_id, channel.id, senders)
        if not window_open(inbound_at, utcnow()):
            raise ReplyError("WhatsApp's 24-hour window is closed (the customer last wrote more "
                             "than 24 hours ago): send an approved template instead",
                             field="template")


def enqueue_reply(session: Session, conversation: Conversation, agent: Agent | None, text: str,
                  channel_id: int | None = None, subject: str | None = None,
                  automated: bool = False, template: dict | None = None,
                  attachments: list[dict] | None = None,
                  identity_id: int | None = None,
                  canned_reply_id: int | None = None,
                  meta: dict | None = None) -> Message:
    """Queue a reply. `attachments`: files already in storage, each {path, filename,
    content_type, size}; they become the message's Attachment rows, committed with it.
    `identity_id`: the customer's handle to send to (else the one they last wrote from).
    `meta`: extra fields of the message, e.g. {"buttons": [{"id", "title"}], "bot": ...}."""
    return queue_reply(session, conversation, agent, text, channel_id=channel_id,
                       subject=subject, automated=automated, template=template,
                       attachments=attachments, identity_id=identity_id,
                       canned_reply_id=canned_reply_id, meta=meta)[0]


def queue_reply(session: Session, conversation: Conversation, agent: Agent | None, text: str,
                channel_id: int | None = None, subject: str | None = None,
                automated: bool = False, template: dict | None = None,
                attachments: list[dict] | None = None,
                identity_id: int | None = None,
                canned_reply_id: int | None = None,
                meta: dict | None = None) -> tuple[Message, dict]:
    """`enqueue_reply`, also returning the message as its `message.created` event carries
    it (the API answers with it rather than serializing the message again).

    The common case (no channel or handle picked) reads the channel and the customer's
    latest inbound time in one statement; the conversation's customer and identities are
    best loaded with the conversation (the event's payload carries them)."""
    identity = None
    inbound_at = _UNKNOWN
    if identity_id is not None:
        identity, channel_id = reply_target(session, conversation, identity_id, channel_id)
    if channel_id is None:
        channel, inbound_at = _default_channel(session, conversation)
    else:
        channel = choose_channel(session, conversation, channel_id)
    check_channel_rules(session, conversation, channel, template, identity, inbound_at)
    if attachments and template:
        raise ReplyError("a WhatsApp template cannot carry attachments", field="attachments")
    if canned_reply_id is not None and session.get(CannedReply, canned_reply_id) is None:
        raise ReplyError("no such canned reply", field="canned_reply_id")
    now = utcnow()
    message = Message(conversation_id=conversation.id, customer_id=conversation.customer_id,
                      channel_id=channel.id, direction="out",
                      author_id=agent.id if agent else None, text=text,
                      subject=subject or conversation.subject, status="queued",
                      automated=automated, created_at=now, enqueued_at=now,
                      canned_reply_id=canned_reply_id,
                      meta={**(meta or {}),
                            **({"template": template} if template else {}),
                            **({"to": f"{identity.kind}:{identity.value}"} if identity else {})},
                      attachments=[Attachment(path=a["path"], filename=a["filename"],
                                              content_type=a["content_type"], size=a.get("size"))
                                   for a in attachments or ()])
    session.add(message)
    conversation.last_activity_at = now
    conversation.last_message_preview = (
        text or "📎 " + ", ".join(a["filename"] for a in attachments or ()))[:200]
    conversation.unread_count = 0
    session.flush()
    payload = message_schema.dump(message)
    record_event(session, "message.created", payload, conversation.channel_id)
    record_event(session, "conversation.updated", conversation_schema.dump(conversation),
                 conversation.channel_id)
    after_commit(session, lambda: queue.wake("send_queued"))
    return message, payload


def add_note(session: Session, conversation: Conversation, agent: Agent, text: str,
             meta: dict | None = None) -> Message:
    """An internal note: part of the thread, never sent to the customer."""
    message = Message(conversation_id=conversation.id, customer_id=conversation.customer_id,
                      channel_id=None, direction="note", author_id=agent.id, text=text,
                      status="received", created_at=utcnow())
    if meta:
        message.meta = meta
    session.add(message)
    session.flush()
    record_event(session, "message.created", message_schema.dump(message), conversation.channel_id)
    return message


def retry_message(session: Session, message: Message) -> None:
    """An agent asks to try a failed message again."""
    if message.direction != "out" or message.status != "failed":
        raise ReplyError("only a failed outbound message can be retried", field=None, status=409)
    now = utcnow()
    message.status, message.error, message.attempts = "queued", None, 0
    message.next_attempt_at, message.enqueued_at = None, now
    session.flush()
    record_event(session, "message.updated", message_schema.dump(message),
                 message.conversation.channel_id)
    after_commit(session, lambda: queue.wake("send_queued"))


# --- the send job ------------------------------------------------------------------------

def _recipient(session: Session, message: Message, channel: Channel) -> Handle:
    """An explicit recipient (the widget's email fallback); else the handle the customer last
    wrote from on this channel; else any matching identity."""
    if message.meta.get("to"):
        kind, _, value = message.meta["to"].partition(":")
        return Handle(kind, value, verified=False)
    latest = session.scalar(
        select(Message.meta).where(Message.customer_id == message.customer_id,
                                   Message.channel_id == channel.id, Message.direction == "in")
        .order_by(Message.id.desc()).limit(1))
    if latest and latest.get("from"):
        kind, _, value = latest["from"].partition(":")
        return Handle(kind, value)
    for identity in message.conversation.customer.identities:
        if can_reach(channel.kind, identity.kind):
            return Handle(identity.kind, identity.value, identity.verified)
    raise PermanentError(f"the customer has no {channel.kind} handle to send to")


def _references(session: Session, message: Message) -> tuple[str, ...]:
    rows = session.scalars(
        select(Message.external_id).where(Message.conversation_id == message.conversation_id,
                                          Message.channel_id == message.channel_id,
                                          Message.external_id.is_not(None),
                                          Message.id != message.id)
        .order_by(Message.id.desc()).limit(20))
    return tuple(reversed(list(rows)))


def build_outbound(session: Session, message: Message, channel: Channel,
                   to: Handle | None = None, references: tuple[str, ...] | None = None) -> Outbound:
    """`to`, `references`: already looked up for a whole round of sends (else queried)."""
    replied = session.get(Message, message.reply_to_id) if message.reply_to_id else None
    files = []
    for attachment in message.attachments:
        try:
            data = attachment_path(attachment.path).read_bytes()
        except (OSError, TypeError, ValueError) as exc:
            raise PermanentError(f"attachment {attachment.filename!r} cannot be read from "
                                 f"storage: {exc}") from None
        files.append(OutboundAttachment(attachment.filename, attachment.content_type, data))
    return Outbound(
        idempotency_key=message.uuid, to=to or _recipient(session, message, channel),
        text=message.text, html=message.html, subject=message.subject,
        reply_to_external_id=replied.external_id if replied else None,
        references=(references if references is not None else _references(session, message))
        if channel.kind == "email" else (),
        reply_token=reply_token(message.conversation_id), automated=message.automated,
        template=message.meta.get("template"), attachments=tuple(files),
        buttons=tuple(Button(str(b["id"]), str(b["title"])) for b in message.meta.get("buttons", [])),
        headers=tuple((str(k), str(v)) for k, v in (message.meta.get("headers") or {}).items()),
    )


def _claim(session: Session, message_id: int) -> bool:
    """Atomically move a due queued message to sending; False if someone else has it."""
    now = utcnow()
    result = session.execute(
        update(Message)
        .where(Message.id == message_id, Message.status == "queued",
               or_(Message.next_attempt_at.is_(None), Message.next_attempt_at <= now))
        .values(status="sending", locked_at=now, attempts=Message.attempts + 1)
        .execution_options(synchronize_session=False))
    session.commit()
    return result.rowcount == 1


def backoff_delay(attempt: int, retry_after: float | None = None) -> float:
    jobs = config["jobs"]
    if retry_after is not None:
        return float(retry_after)
    delay = min(float(jobs["backoff_max"]), float(jobs["backoff_base"]) * 2 ** (attempt - 1))
    return delay * random.uniform(0.5, 1.5)  # jitter: retries of many messages spread out


def send_message(message_id: int) -> str:
    """Send one message (the sweeper's retries); replies wake `send_queued` instead."""
    session = db.session
    if not _claim(session, message_id):
        return "skipped"
    with _lease([message_id]):
        return _send_claimed(session, message_id)


def _lease(ids: list[int]):
    """Renew the claims on these messages while this worker sends them (app/infra/queues)."""
    from app.infra.queues import Lease

    return Lease(db.engine, Message, ids, float(config["jobs"]["lease"]))


def _still_claimed(session: Session, message_id: int, attempts: int) -> bool:
    """Renew our claim just before the send, fenced by the attempt number the claim set: a
    claim the sweeper took back (its lease lapsed) and another worker took again has a
    higher number, and this worker must not send it a second time."""
    return session.execute(
        update(Message).where(Message.id == message_id, Message.status == "sending",
                              Message.attempts == attempts)
        .values(locked_at=utcnow()).execution_options(synchronize_session=False)
    ).rowcount == 1


def channel_rate(channel: Channel) -> float:
    """Sends per second the channel may make: its own setting `send_rate`, else
    `campaigns.<kind>_rate` (Telegram ≈30/s per bot, the WhatsApp number's tier, the SMTP
    server's limit). Every send of the channel counts: replies, bots and campaigns."""
    try:
        own = float(channel.settings.get("send_rate") or 0)
    except (TypeError, ValueError):
        own = 0
    return own or float(config["campaigns"].get(f"{channel.kind}_rate", 10.0))


# seconds between two sends to one chat, per channel kind: Telegram asks for about one per
# second in a chat. Bulk (campaign) messages wait for it; a conversation's replies do not
# (they mark the chat busy, so a campaign message never lands right after a reply).
CHAT_INTERVAL = {"telegram": 1.0}


def send_queued(until: float | None = None) -> int:
    """The outbox drain: claim due messages, per channel as many as the channel's pace allows
    within half a second (at most `jobs.send_batch` per channel), in one transaction; send
    them; until none is due. Returns how many it took.

    One claiming commit per round for every channel; the messages are loaded set-wise, the
    sends go out side by side on up to `jobs.send_parallel` threads (one chat's messages one
    after another, in order, each at its paced slot), and results are committed as sends
    finish, several in one commit when several finished together. A full round wakes
    another drain so a second worker joins in; PostgreSQL rows are claimed with SKIP LOCKED.
    A dead worker leaves only the messages it had claimed and not yet recorded ("sending")
    for the sweeper. `until` (time.monotonic()): claim no new round after it.
    """
    queue.awake("send_queued")
    limit = int(config["jobs"]["send_batch"])
    parallel = max(1, int(config["jobs"].get("send_parallel", 1)))
    taken = 0
    while until is None or time.monotonic() < until:
        claimed, full, waiting = _claim_paced(db.session, limit)
        if not claimed:
            if not waiting:
                return taken
            time.sleep(0.1)   # due messages wait for their channel's or chat's pace
            continue
        taken += len(claimed)
        if full:
            queue.wake("send_queued")
        with _lease(list(claimed)):
            _send_round(db.session, claimed, parallel)
    return taken


def _claim_paced(session: Session, limit: int) -> tuple[dict, bool, bool]:
    """-> ({message id: (its slot, the channel's rate), or None: unpaced}, a channel had
    more than `limit` due, some due message waits for its pace)."""
    now = utcnow()
    due = (Message.status == "queued",
           or_(Message.next_attempt_at.is_(None), Message.next_attempt_at <= now))
    backlog = dict(session.execute(select(Message.channel_id, func.count()).where(*due)
                                   .group_by(Message.channel_id)).all())
    if not backlog:
        session.commit()
        return {}, False, False
    channels = {c.id: c for c in session.scalars(
        select(Channel).where(Channel.id.in_([c for c in backlog if c is not None])))}
    claimed: dict[int, tuple[float, float] | None] = {}
    full = waiting = False
    # A chat's messages go out in order: a message waits while an earlier one of the same
    # chat (channel, customer) is in flight or due. So a round takes at most one message per
    # chat, and two workers never send one chat's messages side by side; it also holds on
    # PostgreSQL, where a worker skips the rows another one is claiming (still "queued" in its
    # snapshot, so they block their later ones). An earlier message waiting for a retry does
    # not hold the chat up.
    earlier = aliased(Message)
    ahead = exists().where(
        earlier.channel_id == Message.channel_id, earlier.customer_id == Message.customer_id,
        earlier.id < Message.id,
        or_(earlier.status == "sending",
            and_(earlier.status == "queued",
                 or_(earlier.next_attempt_at.is_(None), earlier.next_attempt_at <= now))))
    for channel_id in sorted(backlog, key=lambda c: c or 0):
        rows = session.execute(
            select(Message.id, Message.customer_id, Message.meta).where(
                *due, ~ahead, Message.channel_id.is_(None) if channel_id is None
                else Message.channel_id == channel_id)
            .order_by(Message.id).limit(limit).with_for_update(skip_locked=True)).all()
        channel = channels.get(channel_id)
        if channel is None:   # no channel to pace by: the send fails with the reason
            claimed.update((row.id, None) for row in rows)
            continue
        key = f"channel:{channel_id}"
        room = pacer.budget(key, channel_rate(channel))
        if room < len(rows):
            waiting = True
            rows = rows[:room]
        interval = CHAT_INTERVAL.get(channel.kind, 0.0)
        if interval and rows:
            free = pacer.chats(key, [str(row.customer_id) for row in rows],
                               [bool((row.meta or {}).get("campaign_id")) for row in rows],
                               interval)
            waiting = waiting or not all(free)
            rows = [row for row, ok in zip(rows, free) if ok]
        rate = channel_rate(channel)
        for row, slot in zip(rows, pacer.take(key, rate, len(rows))):
            claimed[row.id] = (slot, rate)
        full = full or backlog[channel_id] > limit
    if claimed:
        session.execute(update(Message).where(Message.id.in_(list(claimed)))
                        .values(status="sending", locked_at=now, attempts=Message.attempts + 1)
                        .execution_options(synchronize_session=False))
    session.commit()
    return claimed, full, waiting


_senders: tuple[int, int, ThreadPoolExecutor] | None = None
_senders_lock = threading.Lock()


def _sender_pool(size: int) -> ThreadPoolExecutor:
    """One pool of send threads per process (a forked child makes its own)."""
    global _senders
    with _senders_lock:
        if _senders is None or _senders[0] != os.getpid() or _senders[1] < size:
            _senders = (os.getpid(), size,
                        ThreadPoolExecutor(max_workers=size, thread_name_prefix="threadline-send"))
        return _senders[2]


def _latest_senders(session: Session, messages: list[Message]) -> dict[tuple[int, int], dict]:
    """(customer, channel) -> meta of the customer's latest inbound message there, for every
    message without an explicit recipient: one query for the round."""
    wanted = [m for m in messages if not m.meta.get("to") and m.channel_id is not None]
    if not wanted:
        return {}
    latest = (select(func.max(Message.id))
              .where(Message.direction == "in",
                     Message.customer_id.in_({m.customer_id for m in wanted}),
                     Message.channel_id.in_({m.channel_id for m in wanted}))
              .group_by(Message.customer_id, Message.channel_id))
    return {(row.customer_id, row.channel_id): row.meta or {} for row in session.execute(
        select(Message.customer_id, Message.channel_id, Message.meta)
        .where(Message.id.in_(latest)))}


def _round_references(session: Session, messages: list[Message],
                      channels: dict[int, Channel]) -> dict[int, tuple[str, ...]]:
    """message id -> the external ids of earlier messages in its email thread (≤ 20)."""
    email = [m for m in messages if m.channel_id in channels
             and channels[m.channel_id].kind == "email"]
    if not email:
        return {}
    rows = session.execute(
        select(Message.id, Message.conversation_id, Message.channel_id, Message.external_id)
        .where(Message.conversation_id.in_({m.conversation_id for m in email}),
               Message.external_id.is_not(None))
        .order_by(Message.id)).all()
    out = {}
    for m in email:
        refs = [r.external_id for r in rows if r.conversation_id == m.conversation_id
                and r.channel_id == m.channel_id and r.id != m.id]
        out[m.id] = tuple(refs[-20:])
    return out


# seconds a finished send may wait to be recorded with the others that finish meanwhile (a
# worker killed in between sends those again, as one killed mid-send would)
RECORD_EVERY = 0.1


def _send_round(session: Session, claimed: dict, parallel: int) -> None:
    """Send one claimed round: load it set-wise, send side by side, each at its slot
    (app/infra/pace.py), record each result as it comes (sends that finished together are
    committed together)."""
    from concurrent.futures import FIRST_COMPLETED, wait

    from app.infra.pace import wait_until

    ids = sorted(claimed)
    messages = list(session.scalars(
        select(Message).where(Message.id.in_(ids)).order_by(Message.id)
        .options(selectinload(Message.attachments), joinedload(Message.conversation))
        .execution_options(populate_existing=True)).unique())
    channel_ids = {m.channel_id for m in messages if m.channel_id is not None}
    channels = {c.id: c for c in session.scalars(select(Channel).where(
        Channel.id.in_(channel_ids)))} if channel_ids else {}
    senders = _latest_senders(session, messages)
    references = _round_references(session, messages, channels)
    ready: list[tuple[Message, Channel, Outbound]] = []
    for message in messages:
        channel = channels.get(message.channel_id)
        try:
            if channel is None:
                raise PermanentError("the message's channel was deleted")
            latest = senders.get((message.customer_id, channel.id))
            to = None
            if not message.meta.get("to") and latest and latest.get("from"):
                kind, _, value = latest["from"].partition(":")
                to = Handle(kind, value)
            outbound = build_outbound(session, message, channel, to=to,
                                      references=references.get(message.id, ()))
        except PermanentError as exc:
            _fail(message, str(exc))
            _record_result(session, message, channel)
            continue
        except Exception as exc:
            log.exception("building message %s failed unexpectedly", message.id)
            _retry_or_fail(message, f"{type(exc).__name__}: {exc}", None)
            _record_result(session, message, channel)
            continue
        ready.append((message, channel, outbound))
    # no transaction stays open while the channels answer (on SQLite: the write lock)
    session.commit()
    for channel in channels.values():
        register_channel_secrets(get_connector(channel.kind), channel.settings)
    chats: dict[tuple[int, int], list[tuple[Message, Channel, Outbound]]] = {}
    for item in ready:
        chats.setdefault((item[1].id, item[0].customer_id), []).append(item)

    the_pacer = pacer._get_current_object()

    def send_chat(items):
        results = []
        for message, channel, outbound in items:
            try:
                paced = claimed.get(message.id)
                if paced:
                    slot, rate = paced
                    if time.time() > slot + 1.0 / rate:   # behind: no catching up in a burst
                        slot = the_pacer.take(f"channel:{channel.id}", rate)[0]
                    wait_until(slot)
                if channel.state.get("demo"):   # `threadline demo` channels reach nobody
                    result = SendResult(external_id=f"demo:{outbound.idempotency_key}")
                else:
                    result = get_connector(channel.kind).send(channel.settings, outbound)
                results.append((message, channel, result))
            except Exception as exc:   # recorded by the caller, in its session
                results.append((message, channel, exc))
        return results

    async def fresh_slot(key: str, rate: float) -> float:
        if the_pacer.redis is None:
            return the_pacer.take(key, rate)[0]
        # a Redis round trip: not on the loop, where every other send of the round waits
        loop = asyncio.get_running_loop()
        return (await loop.run_in_executor(None, the_pacer.take, key, rate))[0]

    # requests in flight on the loop at once: as many as the threads would carry, twice
    # (a round's sends wait for their slots, not for each other; a round is ≤ 0.5 s of pace)
    in_flight = asyncio.Semaphore(2 * parallel)

    async def send_chat_async(connector, items):
        """send_chat on the connector's event loop: the round's chats side by side there."""
        results = []
        for message, channel, outbound in items:
            try:
                paced = claimed.get(message.id)
                if paced:
                    slot, rate = paced
                    key = f"channel:{channel.id}"
                    for _ in range(3):   # woken late (a busy loop): a fresh slot, no burst
                        if time.time() > slot + 1.0 / rate:
                            slot = await fresh_slot(key, rate)
                        delay = slot - time.time()
                        if delay <= 0:
                            break
                        await asyncio.sleep(delay)
                if channel.state.get("demo"):
                    result = SendResult(external_id=f"demo:{outbound.idempotency_key}")
                else:
                    async with in_flight:
                        result = await connector.send_async(channel.settings, outbound)
                results.append((message, channel, result))
            except Exception as exc:
                results.append((message, channel, exc))
        return results

    # the earliest slots first: a thread waiting for its slot never holds up an earlier one
    order = sorted(chats.values(), key=lambda items: (claimed.get(items[0][0].id) or (0.0,))[0])
    if parallel > 1 and len(order) > 1:
        pending = set()
        threaded = []
        for items in order:
            connector = get_connector(items[0][1].kind)
            if connector.submit is not None and connector.send_async is not None:
                pending.add(connector.submit(send_chat_async(connector, items)))
            else:
                threaded.append(items)
        if threaded:
            pool = _sender_pool(parallel)
            pending.update(pool.submit(send_chat, items) for items in threaded)
        # results are recorded in groups: what finished within RECORD_EVERY of the group's
        # first (one UPDATE, one INSERT of events, one commit each), not a commit per send
        batch: list = []
        since = 0.0
        while pending:
            timeout = max(0.0, since + RECORD_EVERY - time.monotonic()) if batch else None
            done, pending = wait(pending, timeout=timeout, return_when=FIRST_COMPLETED)
            if done and not batch:
                since = time.monotonic()
            batch.extend(result for future in done for result in future.result())
            if batch and (not pending or time.monotonic() >= since + RECORD_EVERY):
                _apply_outcomes(session, batch)
                session.commit()
                batch = []
    else:
        for items in order:
            for result in send_chat(items):
                _apply_outcomes(session, [result])
                session.commit()


class _Outcome:
    """A message as `_set_outcome` sees it: reads fall through to the message, writes are
    collected (for one UPDATE of many rows instead of the ORM's unit of work)."""

    def __init__(self, message: Message) -> None:
        self.__dict__.update(_message=message, values={})

    def __getattr__(self, name: str):
        values = self.__dict__["values"]
        return values[name] if name in values else getattr(self.__dict__["_message"], name)

    def __setattr__(self, name: str, value) -> None:
        self.__dict__["values"][name] = value


def _apply_outcomes(session: Session, results: list) -> None:
    """Record sends that finished together: one UPDATE of their rows (executemany, not the
    ORM's unit of work) and one INSERT of their message.updated events (which no flush
    listener acts on). A send failed for good goes through the session as before: the
    FAILED_HOOKS act on it (a blocked bot opts the customer out)."""
    rows, events, sent = [], [], []
    for message, channel, outcome in results:
        change = _Outcome(message)
        _set_outcome(change, outcome)
        values = {**change.values, "locked_at": None}
        if values.get("status") == "failed" and channel is not None and FAILED_HOOKS:
            for key, value in values.items():
                setattr(message, key, value)
            for hook in FAILED_HOOKS:
                hook(session, message, channel)
            session.flush()
        else:
            for key, value in values.items():   # what the event shows; the row: below
                set_committed_value(message, key, value)
            rows.append({"id": message.id, **values})
        events.append(("message.updated", message_schema.dump(message),
                       message.conversation.channel_id))
        if message.status == "sent" and channel is not None:
            sent.append((message.id, channel.kind))
    _update_rows(session, rows)
    record_events(session, events)
    for message_id, kind in sent:
        for hook in SENT_HOOKS.get(kind, ()):
            after_commit(session, lambda hook=hook, message_id=message_id: hook(message_id))


def _update_rows(session: Session, rows: list[dict]) -> None:
    """Messages' new values by id: one executemany per set of changed columns (Core, no
    ORM bulk machinery)."""
    table = Message.__table__
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault(tuple(sorted(row)), []).append(row)
    for keys, group in groups.items():
        session.execute(table.update().where(table.c.id == bindparam("_id")),
                        [{"_id": row["id"], **{k: row[k] for k in keys if k != "id"}}
                         for row in group])


def _set_outcome(message: Message, outcome) -> None:
    if isinstance(outcome, SendResult):
        message.status, message.error = "sent", None
        message.external_id = outcome.external_id
        message.sent_at = utcnow()
        if outcome.extra_ids:
            message.meta = {**message.meta, "extra_ids": list(outcome.extra_ids)}
    elif isinstance(outcome, PermanentError):
        _fail(message, str(outcome))
    elif isinstance(outcome, TransientError):
        _retry_or_fail(message, str(outcome), outcome.retry_after)
    elif isinstance(outcome, ChannelError):
        _retry_or_fail(message, str(outcome), None)
    else:
        log.error("sending message %s failed unexpectedly", message.id, exc_info=outcome)
        _retry_or_fail(message, f"{type(outcome).__name__}: {outcome}", None)


def _record_result(session: Session, message: Message, channel: Channel | None) -> None:
    message.locked_at = None
    if message.status == "failed" and channel is not None:
        for hook in FAILED_HOOKS:
            hook(session, message, channel)
    session.flush()
    _record_event_and_hooks(session, message, channel)


def _record_event_and_hooks(session: Session, message: Message, channel: Channel | None) -> None:
    record_event(session, "message.updated", message_schema.dump(message),
                 message.conversation.channel_id)
    if message.status == "sent" and channel is not None:
        message_id = message.id
        for hook in SENT_HOOKS.get(channel.kind, ()):
            after_commit(session, lambda hook=hook: hook(message_id))


def _send_claimed(session: Session, message_id: int) -> str:
    # the claim updated the row behind the session's back: load what it wrote
    message = session.get(Message, message_id, populate_existing=True)
    channel = session.get(Channel, message.channel_id)
    connector = get_connector(channel.kind)
    register_channel_secrets(connector, channel.settings)
    attempts = message.attempts
    try:
        outbound = build_outbound(session, message, channel)
        if not _still_claimed(session, message_id, attempts):
            session.rollback()
            log.warning("message %s: claim lapsed before its send; left to its new owner",
                        message_id)
            return "skipped"
        # no transaction stays open while the channel answers (it may take seconds)
        session.commit()
        from app.infra.pace import wait_until

        # a retry taken by itself keeps the channel's pace too
        wait_until(pacer.take(f"channel:{channel.id}", channel_rate(channel))[0])
        if channel.state.get("demo"):  # `threadline demo` channels reach no real customer
            result = SendResult(external_id=f"demo:{outbound.idempotency_key}")
        else:
            result = connector.send(channel.settings, outbound)
    except PermanentError as exc:
        _fail(message, str(exc))
    except TransientError as exc:
        _retry_or_fail(message, str(exc), exc.retry_after)
    except ChannelError as exc:
        _retry_or_fail(message, str(exc), None)
    except Exception as exc:  # an unexpected bug or network error: retried, then shown
        log.exception("sending message %s failed unexpectedly", message_id)
        _retry_or_fail(message, f"{type(exc).__name__}: {exc}", None)
    else:
        message.status, message.error = "sent", None
        message.external_id = result.external_id
        message.sent_at = utcnow()
        if result.extra_ids:
            message.meta = {**message.meta, "extra_ids": list(result.extra_ids)}
    message.locked_at = None
    if message.status == "failed":
        for hook in FAILED_HOOKS:
            hook(session, message, channel)
    session.flush()
    record_event(session, "message.updated", message_schema.dump(message),
                 message.conversation.channel_id)
    if message.status == "sent":
        for hook in SENT_HOOKS.get(channel.kind, ()):
            after_commit(session, lambda hook=hook: hook(message.id))
    session.commit()
    return message.status


def _fail(message: Message, error: str) -> None:
    message.status, message.error = "failed", error[:2000]
    log.warning("message %s failed: %s", message.id, error)


def _retry_or_fail(message: Message, error: str, retry_after: float | None) -> None:
    if message.attempts >= int(config["jobs"]["max_attempts"]):
        _fail(message, f"{error} (after {message.attempts} attempts)")
        return
    delay = backoff_delay(message.attempts, retry_after)
    message.status, message.error = "queued", error[:2000]
    message.next_attempt_at = utcnow() + timedelta(seconds=delay)
    message.enqueued_at = None  # the sweeper enqueues it when it is due
    log.info("message %s: attempt %s failed (%s); retry in %.1fs",
             message.id, message.attempts, error, delay)


# --- the sweeper -------------------------------------------------------------------------

def revive_and_claim_due(session: Session, model, waiting: str, now, stale,
                         lapsed=None) -> tuple[int, list[int]]:
    """For any outbox-shaped table (status, locked_at, next_attempt_at, enqueued_at): put rows
    a dead worker left "sending" (its lease not renewed since `lapsed`) back to `waiting`,
    and mark the due ones enqueued now (unless a job for them was queued after `stale`).
    Returns (revived, due ids); the caller enqueues them after commit."""
    from app.infra.queues import Lease

    lapsed = stale if lapsed is None else lapsed
    lapsed_claims = [model.status == "sending", model.locked_at < lapsed]
    held = Lease.held(model)   # this process still works on these: late renewals, not dead
    if held:
        lapsed_claims.append(model.id.not_in(held))
    revived = session.execute(
        update(model).where(*lapsed_claims)
        .values(status=waiting, locked_at=None, next_attempt_at=None, enqueued_at=None)
        .execution_options(synchronize_session=False)).rowcount
    due = list(session.scalars(
        select(model.id).where(
            model.status == waiting,
            or_(model.next_attempt_at.is_(None), model.next_attempt_at <= now),
            or_(model.enqueued_at.is_(None), model.enqueued_at < stale))
        .order_by(model.id).limit(1000)))
    if due:
        session.execute(update(model).where(model.id.in_(due)).values(enqueued_at=now)
                        .execution_options(synchronize_session=False))
    return revived, due


def sweep() -> dict[str, int]:
    """Re-queue sends and inbound events a dead worker left behind, and due retries; drop
    events older than `events.retention_days` from the event log. (The "sweep" job also
    sweeps outgoing webhooks and widget emails: app/wiring.sweep.)"""
    session = db.session
    now = utcnow()
    stale = now - timedelta(seconds=float(config["jobs"]["stale_after"]))
    lapsed = now - timedelta(seconds=float(config["jobs"]["lease"]))
    revived, due = revive_and_claim_due(session, Message, "queued", now, stale, lapsed)
    events = list(session.scalars(
        select(InboundEvent.id).where(InboundEvent.status == "received",
                                      InboundEvent.created_at < stale,
                                      or_(InboundEvent.enqueued_at.is_(None),
                                          InboundEvent.enqueued_at < stale))
        .order_by(InboundEvent.id).limit(1000)))
    if events:
        session.execute(update(InboundEvent).where(InboundEvent.id.in_(events))
                        .values(enqueued_at=now).execution_options(synchronize_session=False))
    retention = now - timedelta(days=float(config["events"]["retention_days"]))
    pruned = session.execute(delete(Event).where(Event.created_at < retention)
                             .execution_options(synchronize_session=False)).rowcount
    # Wake the drains whenever work waits, not only after `stale_after`: what a killed
    # process acknowledged (or a job lost with it) is taken within one sweep interval.
    # A wake is one Redis SET NX when a drain is already on its way.
    received = session.scalar(select(InboundEvent.id)
                              .where(InboundEvent.status == "received").limit(1))
    queued = session.scalar(select(Message.id).where(
        Message.status == "queued",
        or_(Message.next_attempt_at.is_(None), Message.next_attempt_at <= now)).limit(1))
    session.commit()
    if received is not None:
        queue.wake("process_received")
    if queued is not None:
        queue.wake("send_queued")
    for message_id in due:
        queue.enqueue("send_message", message_id)
    for event_id in events:
        queue.enqueue("process_event", event_id)
    if revived or due or events:
        log.info("sweep: %s stale sends revived, %s sends and %s events queued",
                 revived, len(due), len(events))
    return {"revived": revived, "queued": len(due), "events": len(events), "pruned": pruned,
            "woken": int(received is not None) + int(queued is not None)}

