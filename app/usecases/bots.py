"""Outside bots (issue 18): a bot registered by an admin holds the new conversations of its
channels (Conversation.handled_by = "bot:<id>"), gets the customer's messages as signed JSON
events, and acts through /api/v1 with its own token. Whatever goes wrong hands the
conversation to people, with a note saying why: a customer never waits on a dead bot.

- Taking: a conversation opened by a customer's message on a channel an active bot serves
  starts held by the bot (`take_new_conversation`, an ingest hook wired in app/wiring.py).
- Events: the bots' reader of the committed event log (cursor "bots" in automation_cursor,
  like the rules engine) turns each customer message (`message.created`, direction in, not
  an auto-reply or bounce) of a held conversation, and each "return to bot", into a
  `BotDelivery` row; the job `deliver_bot_event` POSTs it, signed like outgoing webhooks:
      X-Threadline-Timestamp: <unix seconds>
      X-Threadline-Signature: sha256=<hex HMAC-SHA256(bot secret, "<timestamp>.<raw body>")>
      X-Threadline-Delivery: <id, the same on every retry: deduplicate by it>
- Failure: 5xx, a time-out (the bot's `timeout_seconds`) or no connection is retried
  (ATTEMPTS in all, backoff as for sends); after the last, and at once on a 4xx, the
  conversation is handed off. A deactivated or deleted bot hands off all it holds.
- Events for reports: `bot.handoff` {bot, reason, conversation_id} and `bot.resolved`.
"""
from __future__ import annotations

import json
import logging
import time
from datetime import timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from app.domain.bots import bot_for_channel, bot_id_of, holder
from app.domain.errors import Conflict
from app.domain.webhook_targets import private_target
from app.infra.db import after_commit
from app.infra.events import record_event
from app.infra.models import (
    Agent,
    Bot,
    BotDelivery,
    Channel,
    Conversation,
    Event,
    Message,
    Team,
    utcnow,
)
from app.infra.schemas import conversation_schema, message_schema
from app.infra.state import db, queue
from app.usecases import distribution
from app.usecases.distribution import add_activity, conversation_changed
from app.usecases.event_reader import EventReader
from app.usecases.hooks import signed_headers
from app.usecases.outbox import backoff_delay, revive_and_claim_due

log = logging.getLogger(__name__)

JOB = "run_bots"
DELIVER_JOB = "deliver_bot_event"
BATCH = 200
MAX_BATCHES = 50
ATTEMPTS = 3          # tries of one event before the conversation goes to people
MAX_LOG_ENTRIES = 10


# --- taking a new conversation (an ingest hook) ------------------------------------------

_PREFETCHED = "bots.for_channel"


def remember_bots(session: Session, _customer_ids: list[int]):
    """Ingest's batch prefetch (ingest.BATCH_PREFETCH): while a set of inbound messages is
    applied, each channel's bot is looked up once, not once per new conversation. Returns
    the function that forgets them."""
    session.info[_PREFETCHED] = {}
    return lambda: session.info.pop(_PREFETCHED, None)


def take_new_conversation(session: Session, conversation: Conversation, channel, inbound) -> None:
    """A customer's first message on a channel an active outside bot serves: the bot holds
    the new conversation. An auto-reply or a bounce never starts a bot conversation."""
    if conversation.handled_by is not None or getattr(inbound, "automated", False):
        return
    prefetched = session.info.get(_PREFETCHED)
    if prefetched is not None:
        if channel.id not in prefetched:
            prefetched[channel.id] = bot_for_channel(session, channel.id)
        bot = prefetched[channel.id]
    else:
        bot = bot_for_channel(session, channel.id)
    if bot is not None:
        conversation.handled_by = holder(bot)


# --- hand-off, return, release --------------------------------------------------------------

def handoff(session: Session, conversation: Conversation, who: str, name: str,
            reason: str, agent_id: int | None = None, team_id: int | None = None) -> None:
    """The bot `who` ("bot:<id>", called `name`) lets go: people hold the conversation, a
    note in the thread says why, `bot.handoff` is logged for reports, and the conversation
    goes to its team's distribution (or waits, visibly, in the queue)."""
    conversation.handled_by = None
    text = f"Handed off to people by bot {name}: {reason}"
    note = Message(conversation_id=conversation.id, customer_id=conversation.customer_id,
                   channel_id=None, direction="note", author_id=agent_id, text=text,
                   status="received", automated=True, created_at=utcnow(),
                   meta={"bot": who, "handoff": reason})
    session.add(note)
    session.flush()
    record_event(session, "message.created", message_schema.dump(note), conversation.channel_id)
    record_event(session, "bot.handoff", {"bot": who, "reason": reason,
                                          "conversation_id": conversation.id},
                 conversation.channel_id)
    team = session.get(Team, team_id) if team_id is not None else \
        distribution.team_for(session, conversation)
    if conversation.status == "open" and conversation.assignee_id is None:
        if team is not None:
            distribution.distribute(session, conversation, team,
                                    reason=f"handed off by bot {name}")
        elif conversation.waiting_since is None:
            conversation.waiting_since = utcnow()   # unassigned, visible in the inbox
    conversation_changed(session, conversation)


def bot_handoff(session: Session, conversation: Conversation, bot: Bot, reason: str,
                team_id: int | None = None) -> None:
    """The bot's own hand-off (POST /conversations/<id>/handoff)."""
    from app.domain.errors import DomainError

    if conversation.handled_by != holder(bot):
        raise Conflict(None, "the bot does not hold this conversation")
    if team_id is not None and session.get(Team, team_id) is None:
        raise DomainError("team_id", "unknown team", reason="no such team")
    handoff(session, conversation, holder(bot), bot.name, reason, agent_id=bot.agent_id,
            team_id=team_id)


def bot_resolved(session: Session, conversation: Conversation, bot: Bot) -> None:
    """The bot resolved the conversation: logged for reports (handled by the bot alone)."""
    record_event(session, "bot.resolved", {"bot": holder(bot),
                                           "conversation_id": conversation.id},
                 conversation.channel_id)


def return_to_bot(session: Session, conversation: Conversation, agent: Agent) -> Bot:
    """An agent gives the conversation back to the bot serving its channel."""
    bot = bot_for_channel(session, conversation.channel_id)
    if bot is None:
        raise Conflict(None, "no active bot serves this conversation's channel")
    if conversation.status == "resolved":
        raise Conflict(None, "the conversation is resolved")
    if conversation.handled_by == holder(bot):
        return bot
    conversation.handled_by = holder(bot)
    conversation.assignee_id = None
    conversation.waiting_since = None
    add_activity(session, conversation, "bot", f"returned to bot {bot.name} by {agent.name}",
                 actor_id=agent.id, details={"bot": holder(bot)})
    record_event(session, "bot.returned", {"bot": holder(bot), "conversation_id": conversation.id,
                                           "by": agent.id}, conversation.channel_id)
    conversation_changed(session, conversation)
    return bot


def release_conversations(session: Session, bot: Bot, reason: str,
                          keep_channels: list[int] | None = None) -> int:
    """Every unresolved conversation the bot holds goes to people (bot deactivated or
    deleted), or those outside `keep_channels` (channels taken from the bot). Returns how
    many."""
    stmt = select(Conversation).where(Conversation.handled_by == holder(bot),
                                      Conversation.status != "resolved")
    if keep_channels is not None:
        stmt = stmt.where(Conversation.channel_id.not_in(keep_channels or [-1]))
    held = list(session.scalars(stmt.order_by(Conversation.id)))
    for conversation in held:
        handoff(session, conversation, holder(bot), bot.name, reason, agent_id=bot.agent_id)
    return len(held)


def delete_bot(session: Session, bot: Bot) -> int:
    """Its conversations go to people, its token stops working (the agent is deactivated,
    kept as the author of the bot's messages), its pending deliveries go with it."""
    released = release_conversations(session, bot, "the bot was deleted")
    bot.agent.active = False
    session.delete(bot)
    session.flush()
    return released


# --- the reader of the event log ------------------------------------------------------------

def _wanted(event: Event) -> bool:
    payload = event.payload if isinstance(event.payload, dict) else {}
    if event.type == "message.created":
        return payload.get("direction") == "in" and not payload.get("automated")
    return event.type == "bot.returned"


READER = EventReader("bots", JOB, _wanted, what="bots", logger=log)


def run_bots() -> int:
    """The job: every committed event past the bots' cursor. Returns how many were read."""
    queued: list[int] = []

    def collect(_session: Session, _event: Event, delivery_id: int | None) -> None:
        if delivery_id is not None:
            queued.append(delivery_id)

    def enqueue_deliveries(session: Session) -> None:
        for delivery_id in queued:
            after_commit(session, lambda d=delivery_id: queue.enqueue(DELIVER_JOB, d))
        queued.clear()

    return READER.run(db.session, handle_event, BATCH,
                      kinds=("message.created", "bot.returned"), after_event=collect,
                      before_commit=enqueue_deliveries, prepare=prepare_batch,
                      max_batches=MAX_BATCHES)


def prepare_batch(session: Session, events: list[Event]) -> list[Any]:
    """The batch's conversations with one query (held until it ends), and the bots of those
    a bot holds with another: handle_event then reads them from the session."""
    ids = {e.payload.get("conversation_id") for e in events if isinstance(e.payload, dict)}
    ids = sorted(i for i in ids if isinstance(i, int))
    held: list[Any] = list(session.scalars(select(Conversation).where(
        Conversation.id.in_(ids)))) if ids else []
    bot_ids = {bot_id_of(c.handled_by) for c in held if c.handled_by is not None}
    bot_ids.discard(None)
    if bot_ids:
        held += session.scalars(select(Bot).where(Bot.id.in_(sorted(bot_ids)))).all()
    return held


def event_body(event: Event, bot: Bot, conversation: Conversation) -> str:
    kind = "conversation.returned" if event.type == "bot.returned" else event.type
    data = event.payload if event.type == "message.created" else {}
    return json.dumps({"id": event.id, "type": kind, "bot": holder(bot),
                       "created_at": (event.created_at or utcnow()).isoformat(),
                       "conversation": conversation_schema.dump(conversation), "data": data},
                      ensure_ascii=False, separators=(",", ":"), default=str)


def handle_event(session: Session, event: Event) -> int | None:
    """A delivery for the bot holding the event's conversation; its id, or None."""
    if not _wanted(event):
        return None
    payload = event.payload if isinstance(event.payload, dict) else {}
    conversation = session.get(Conversation, payload.get("conversation_id"))
    if conversation is None or conversation.status == "resolved":
        return None
    bot_id = bot_id_of(conversation.handled_by)
    if bot_id is None:
        return None
    if event.type == "bot.returned" and payload.get("bot") != conversation.handled_by:
        return None
    bot = session.get(Bot, bot_id)
    if bot is None or not bot.active:
        # a bot gone without releasing its conversations (should not happen): people take it
        handoff(session, conversation, conversation.handled_by, bot.name if bot else f"#{bot_id}",
                "the bot is deactivated or deleted", agent_id=bot.agent_id if bot else None)
        return None
    if conversation.channel_id not in (bot.channel_ids or []):
        # the customer wrote on another of their channels, one the bot does not serve
        handoff(session, conversation, holder(bot), bot.name,
                "the customer wrote on a channel the bot does not serve", agent_id=bot.agent_id)
        return None
    exists = session.scalar(select(BotDelivery.id).where(BotDelivery.bot_id == bot.id,
                                                         BotDelivery.event_id == event.id))
    if exists is not None:
        return None
    now = utcnow()
    delivery = BotDelivery(bot_id=bot.id, conversation_id=conversation.id, event_id=event.id,
                           event_type="conversation.returned" if event.type == "bot.returned"
                           else event.type, body=event_body(event, bot, conversation),
                           status="pending", attempts=0, enqueued_at=now, log=[],
                           created_at=now)
    session.add(delivery)
    session.flush()
    return delivery.id


# --- delivery ------------------------------------------------------------------------------

def _claim(session: Session, delivery_id: int) -> bool:
    now = utcnow()
    result = session.execute(
        update(BotDelivery)
        .where(BotDelivery.id == delivery_id, BotDelivery.status == "pending",
               or_(BotDelivery.next_attempt_at.is_(None), BotDelivery.next_attempt_at <= now))
        .values(status="sending", locked_at=now, attempts=BotDelivery.attempts + 1)
        .execution_options(synchronize_session=False))
    session.commit()
    return result.rowcount == 1


def attempts_allowed() -> int:
    from app.infra.state import config

    return max(1, min(ATTEMPTS, int(config["jobs"]["max_attempts"])))


def deliver_bot_event(delivery_id: int) -> str:
    """One attempt at POSTing the event to the bot. 2xx: delivered. 5xx, time-out, no
    connection: retried with backoff; after the last attempt (and at once on any other
    answer) failed, and the conversation goes to people with the reason."""
    import httpx

    from app.infra.queues import Lease
    from app.infra.state import config

    session = db.session
    if not _claim(session, delivery_id):
        return "skipped"
    delivery = session.get(BotDelivery, delivery_id)
    bot = session.get(Bot, delivery.bot_id)
    body = delivery.body.encode()
    headers = signed_headers(bot.secret, delivery.event_type, delivery.id, body,
                             "Threadline-Bots/1")
    url, timeout = bot.url, float(bot.timeout_seconds or 10)
    session.commit()   # no transaction open while we wait on the network
    started = time.monotonic()
    status_code, error, why, retry = None, None, None, False
    refused = private_target(url)
    with Lease(db.engine, BotDelivery, [delivery_id], float(config["jobs"]["lease"])):
        if refused:
            error, why = f"refused: {refused}", f"refused: {refused}"
        else:
            try:
                response = httpx.post(url, content=body, headers=headers, timeout=timeout,
                                      follow_redirects=False)
                status_code = response.status_code
                if not 200 <= status_code < 300:
                    error = f"HTTP {status_code}: {response.text[:200]}"
                    why = f"HTTP {status_code}"
                    retry = status_code >= 500
            except httpx.TimeoutException as exc:
                error, why, retry = f"{type(exc).__name__}: {exc}"[:500], "timeout", True
            except httpx.HTTPError as exc:
                error, why, retry = f"{type(exc).__name__}: {exc}"[:500], "unreachable", True
    entry = {"at": utcnow().isoformat(), "attempt": delivery.attempts,
             "status_code": status_code, "error": error,
             "ms": round((time.monotonic() - started) * 1000)}
    delivery = session.get(BotDelivery, delivery_id)
    if delivery is None:   # the bot was deleted meanwhile
        session.commit()
        return "gone"
    delivery.log = [*delivery.log, entry][-MAX_LOG_ENTRIES:]
    delivery.response_status, delivery.locked_at = status_code, None
    if error is None:
        delivery.status, delivery.error, delivery.delivered_at = "delivered", None, utcnow()
        delivery.next_attempt_at = None
    elif retry and delivery.attempts < attempts_allowed():
        delivery.status, delivery.error = "pending", error
        delivery.next_attempt_at = utcnow() + timedelta(seconds=backoff_delay(delivery.attempts))
        delivery.enqueued_at = None   # the sweep queues it when due
        log.info("bot delivery %s: attempt %s failed (%s)", delivery.id, delivery.attempts, error)
    else:
        delivery.status = "failed"
        delivery.error = f"{error} (after {delivery.attempts} attempts)"
        _gave_up(session, delivery, why or "error")
    session.commit()
    return delivery.status


def _gave_up(session: Session, delivery: BotDelivery, why: str) -> None:
    bot = session.get(Bot, delivery.bot_id)
    conversation = session.get(Conversation, delivery.conversation_id)
    if bot is None or conversation is None or conversation.handled_by != holder(bot):
        return   # people hold it already
    handoff(session, conversation, holder(bot), bot.name, f"did not answer: {why}",
            agent_id=bot.agent_id)


RELEASE_JOB = "release_bot_conversations"


def release_on_disabled_channels() -> int:
    """Conversations a bot (outside or the answer bot) holds on a channel that was disabled go
    to people with a note: the bot can no longer answer there, and the customer must not wait
    on it. Run after a channel change (app/wiring.py CHANNEL_HOOKS) and by the sweep."""
    from app.usecases import answer_bot

    queue.awake(RELEASE_JOB)
    session = db.session
    held = list(session.scalars(
        select(Conversation).join(Channel, Channel.id == Conversation.channel_id)
        .where(Conversation.handled_by.is_not(None), Conversation.status != "resolved",
               Channel.active.is_(False)).order_by(Conversation.id)))
    reason = "its channel was disabled"
    for conversation in held:
        if conversation.handled_by == answer_bot.BOT:
            answer_bot.handoff(session, conversation, "channel_disabled", why=reason,
                               tell_customer=False)
            continue
        bot_id = bot_id_of(conversation.handled_by)
        bot = session.get(Bot, bot_id) if bot_id is not None else None
        if bot is None:
            conversation.handled_by = None
            conversation_changed(session, conversation)
        else:
            handoff(session, conversation, holder(bot), bot.name, reason, agent_id=bot.agent_id)
    session.commit()
    return len(held)


def wake_release() -> None:
    """CHANNEL_HOOKS: a channel changed; if it was disabled, its bot-held conversations go."""
    try:
        queue.wake(RELEASE_JOB)
    except Exception:   # the sweep releases them a little later
        log.exception("could not wake the release of bot conversations")


def sweep() -> dict[str, Any]:
    """From the periodic sweep: due retries and deliveries a dead worker left behind, and a
    wake for the reader (a lost wake delays an event by one sweep at most)."""
    from app.infra.state import config

    session = db.session
    now = utcnow()
    stale = now - timedelta(seconds=float(config["jobs"]["stale_after"]))
    lapsed = now - timedelta(seconds=float(config["jobs"]["lease"]))
    revived, due = revive_and_claim_due(session, BotDelivery, "pending", now, stale, lapsed)
    session.commit()
    for delivery_id in due:
        queue.enqueue(DELIVER_JOB, delivery_id)
    READER.wake()
    released = release_on_disabled_channels()
    return {"revived": revived, "queued": len(due), "released": released}
