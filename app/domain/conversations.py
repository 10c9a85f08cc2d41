"""Conversations: the rules of a change (assign, status, snooze, labels, priority, team),
checked, applied, and published as `conversation.updated` in the same transaction."""
from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.domain.errors import Conflict, DomainError
from app.infra.db import after_commit
from app.infra.events import record_event
from app.infra.models import Agent, Conversation, Team, utcnow
from app.infra.schemas import conversation_schema
from app.infra.state import queue


def apply_patch(session: Session, conversation: Conversation, patch: dict[str, Any]) -> None:
    """One change to one conversation, checked, with its conversation.updated event."""
    if patch.get("status") == "snoozed" and not patch.get("snoozed_until"):
        raise DomainError("snoozed_until", "snoozed_until is required",
                          reason="required when snoozing")
    if patch.get("assignee_id") is not None:
        assignee = session.get(Agent, patch["assignee_id"])
        if assignee is None or not assignee.active:
            raise DomainError("assignee_id", "unknown agent", reason="no such active agent")
    if patch.get("team_id") is not None and session.get(Team, patch["team_id"]) is None:
        raise DomainError("team_id", "unknown team", reason="no such team")
    if "status" in patch and patch["status"] != "resolved":
        check_reopen(session, conversation)
    if patch.get("status") == "resolved" and conversation.status != "resolved":
        conversation.resolved_at = utcnow()
    if "status" in patch and patch["status"] != "snoozed":
        conversation.snoozed_until = None
    if "labels" in patch:
        patch["labels"] = list(dict.fromkeys(label.strip() for label in patch["labels"]
                                             if label.strip()))
    for key, value in patch.items():
        setattr(conversation, key, value)
    session.flush()
    record_event(session, "conversation.updated", conversation_schema.dump(conversation),
                 conversation.channel_id)


def check_reopen(session: Session, conversation: Conversation) -> None:
    """At most one open conversation per customer: reopening an old one needs the newer one
    resolved."""
    if conversation.status != "resolved":
        return
    other = session.scalar(select(Conversation.id).where(
        Conversation.customer_id == conversation.customer_id, Conversation.status != "resolved",
        Conversation.id != conversation.id))
    if other is not None:
        raise Conflict(None, f"the customer already has open conversation {other}")


def mark_read(session: Session, conversation: Conversation) -> bool:
    """Unread count back to 0, published; False when it was read already."""
    if not conversation.unread_count:
        return False
    conversation.unread_count = 0
    session.flush()
    record_event(session, "conversation.updated", conversation_schema.dump(conversation),
                 conversation.channel_id)
    # WhatsApp read receipts (blue ticks), when the channel's mark_read setting is on
    after_commit(session, lambda: queue.enqueue("send_read_receipt", conversation.id))
    return True
