"""Notifications per agent: a mention in an internal note, a conversation assigned to them, a
new customer message in a conversation they hold. Each is a row (the bell's list, the Mentions
view) written in the change's transaction and pushed after commit as `notification.created` to
the agent's own browsers only (Socket.IO room `agent:<id>`).

Mentions: `@irina`, `@irina@example.com` or `@Ирина` (a first name) in the note's text, and
the ids the composer's autocomplete picked; only agents who exist and are active count. A
mentioned agent who may not see the conversation's channel (app.domain.access) is not
notified: the note keeps them under meta["mentions_unreachable"] so its author is told.

Assignments and new messages are seen by session listeners (wired in app/wiring.py) whatever
made them: the API, a rule, the distribution, the ingest worker. An agent who assigns a
conversation to themselves is not told (`acting_agent`)."""
from __future__ import annotations

import re
from typing import Any, Iterable

from sqlalchemy import inspect, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import PASSIVE_NO_INITIALIZE

from app.domain.access import can_see_conversation
from app.infra.db import after_commit
from app.infra.events import notify_agent
from app.infra.models import (
    Agent,
    Conversation,
    Message,
    Notification,
    NotificationPrefs,
    utcnow,
)

EVENT = "notification.created"
KINDS = ("mention", "assigned", "message")
# a handle after "@": letters of any script (Анна, Łukasz), digits, dots, dashes; an email
MENTION = re.compile(r"(?<![\w@])@([^\W_][\w.\-]*(?:@[\w.\-]+)?)", re.UNICODE)
ACTOR_KEY = "notifications.actor"
PENDING_KEY = "notifications.pending"
TEXT_MAX = 300


# --- mentions ----------------------------------------------------------------------------

def mention_handles(text: str) -> set[str]:
    return {h.casefold().rstrip(".-") for h in MENTION.findall(text or "")}


def mentioned_agents(session: Session, text: str, ids: Iterable[int] = ()) -> list[Agent]:
    """The active agents a note names: by handle in its text, or by id (the autocomplete's
    picks). Unknown and deactivated agents are left out."""
    handles = mention_handles(text)
    wanted = {int(i) for i in ids or () if str(i).lstrip("-").isdigit()}
    if not handles and not wanted:
        return []
    found = []
    for agent in session.scalars(select(Agent).where(Agent.active.is_(True)).order_by(Agent.id)):
        email = agent.email.casefold()
        names = agent.name.split()
        first = names[0].casefold() if names else ""
        if agent.id in wanted or email in handles or email.split("@")[0] in handles \
                or (first and first in handles):
            found.append(agent)
    return found


def note_mentions(session: Session, conversation: Conversation, author: Agent, text: str,
                  ids: Iterable[int] = ()) -> tuple[list[Agent], list[Agent]]:
    """(who the note mentions, those of them who cannot see the conversation). The author's
    own name is no mention."""
    agents = [a for a in mentioned_agents(session, text, ids) if a.id != author.id]
    unreachable = [a for a in agents if not can_see_conversation(a, conversation)]
    return agents, unreachable


def mention_meta(agents: list[Agent], unreachable: list[Agent]) -> dict[str, Any]:
    if not agents:
        return {}
    meta: dict[str, Any] = {"mentions": [a.id for a in agents]}
    if unreachable:
        meta["mentions_unreachable"] = [{"id": a.id, "name": a.name} for a in unreachable]
    return meta


def notify_mentions(session: Session, message: Message, author: Agent,
                    agents: list[Agent], unreachable: list[Agent]) -> list[Notification]:
    skip = {a.id for a in unreachable}
    conversation = session.get(Conversation, message.conversation_id)
    return [notify(session, a.id, "mention", conversation, message=message, actor=author,
                   text=message.text) for a in agents if a.id not in skip]


# --- the record and its push ---------------------------------------------------------------

def notification_out(n: Notification, customer: str | None = None,
                     actor: str | None = None) -> dict[str, Any]:
    return {"id": n.id, "kind": n.kind, "conversation_id": n.conversation_id,
            "message_id": n.message_id, "actor_id": n.actor_id, "actor_name": actor,
            "customer_name": customer, "text": n.text or "", "count": n.count or 1,
            "created_at": n.created_at.isoformat() if n.created_at else None,
            "read": n.read_at is not None}


def notify(session: Session, agent_id: int, kind: str, conversation: Conversation, *,
           message: Message | None = None, actor: Agent | None = None,
           text: str = "") -> Notification:
    """Write the agent's notification (new messages fold into their unread one of the same
    conversation) and push it after commit."""
    notification = None
    if kind == "message":
        with session.no_autoflush:
            notification = session.scalar(
                select(Notification).where(Notification.agent_id == agent_id,
                                           Notification.kind == "message",
                                           Notification.conversation_id == conversation.id,
                                           Notification.read_at.is_(None))
                .order_by(Notification.id.desc()).limit(1))
    if notification is None:
        notification = Notification(agent_id=agent_id, kind=kind, conversation_id=conversation.id,
                                    count=1)
        session.add(notification)
    else:
        notification.count = (notification.count or 1) + 1
    notification.message_id = message.id if message is not None else None
    notification.actor_id = actor.id if actor is not None else None
    notification.text = (text or "")[:TEXT_MAX]
    notification.created_at = utcnow()
    customer = conversation.customer.name if conversation.customer is not None else None
    actor_name = actor.name if actor is not None else None
    after_commit(session, lambda: notify_agent(
        agent_id, EVENT, notification_out(notification, customer, actor_name)))
    return notification


def mark_read(session: Session, agent: Agent, ids: Iterable[int] | None = None, *,
              kind: str | None = None, conversation_id: int | None = None) -> int:
    """Mark the agent's notifications read: the given ids, or all (of a kind, of a
    conversation). Returns how many changed."""
    stmt = update(Notification).where(Notification.agent_id == agent.id,
                                      Notification.read_at.is_(None))
    if ids is not None:
        stmt = stmt.where(Notification.id.in_([int(i) for i in ids] or [-1]))
    if kind is not None:
        stmt = stmt.where(Notification.kind == kind)
    if conversation_id is not None:
        stmt = stmt.where(Notification.conversation_id == conversation_id)
    result = session.execute(stmt.values(read_at=utcnow()).execution_options(
        synchronize_session="fetch"))
    return result.rowcount or 0


def prefs(session: Session, agent: Agent) -> NotificationPrefs:
    found = session.get(NotificationPrefs, agent.id)
    if found is None:
        found = NotificationPrefs(agent_id=agent.id, sound=False, title_badge=True)
    return found


def save_prefs(session: Session, agent: Agent, changes: dict[str, Any]) -> NotificationPrefs:
    found = prefs(session, agent)
    for key in ("sound", "title_badge"):
        if key in changes and changes[key] is not None:
            setattr(found, key, bool(changes[key]))
    session.add(found)
    session.flush()
    return found


# --- assignments and new messages, whatever made them (session listeners) -----------------

def acting_agent(session: Session, agent_id: int | None) -> None:
    """The agent behind the changes of this transaction (assigning oneself tells nobody)."""
    session.info[ACTOR_KEY] = agent_id


def collect(session: Session, _flush_context) -> None:
    """after_flush: note new customer messages and changed assignees (ids known now)."""
    pending = session.info.setdefault(PENDING_KEY, [])
    for obj in session.new:
        if isinstance(obj, Message) and obj.direction == "in":
            pending.append(("message", obj.conversation_id, obj.id))
        elif isinstance(obj, Conversation) and obj.assignee_id is not None:
            pending.append(("assigned", obj.id, obj.assignee_id))
    for obj in session.dirty:
        if isinstance(obj, Conversation):
            history = inspect(obj).get_history("assignee_id", PASSIVE_NO_INITIALIZE)
            if history.added and history.added[0] is not None and history.added != history.deleted:
                pending.append(("assigned", obj.id, history.added[0]))
    if not pending:
        session.info.pop(PENDING_KEY, None)


def create_pending(session: Session, _flush_context) -> None:
    """after_flush_postexec: write what `collect` saw (flushed with the rest on commit)."""
    pending = session.info.pop(PENDING_KEY, None)
    if not pending:
        return
    actor_id = session.info.get(ACTOR_KEY)
    # a conversation assigned in the transaction that brought its message: one notification
    assigned_now = {c for kind, c, _ in pending if kind == "assigned"}
    pending = [p for p in pending if p[0] == "assigned" or p[1] not in assigned_now]
    for kind, conversation_id, ref in pending:
        conversation = session.get(Conversation, conversation_id)
        if conversation is None or conversation.assignee_id is None:
            continue
        agent = session.get(Agent, conversation.assignee_id)
        if agent is None or not agent.active or not can_see_conversation(agent, conversation):
            continue
        if kind == "assigned":
            if ref != agent.id or actor_id == agent.id:
                continue
            actor = session.get(Agent, actor_id) if actor_id else None
            notify(session, agent.id, "assigned", conversation, actor=actor,
                   text=conversation.last_message_preview or "")
        else:
            message = session.get(Message, ref)
            if message is None:
                continue
            notify(session, agent.id, "message", conversation, message=message,
                   text=message.text or "")


def forget(session: Session) -> None:
    """after_commit / after_rollback: the next transaction starts with no actor."""
    session.info.pop(ACTOR_KEY, None)
    session.info.pop(PENDING_KEY, None)
