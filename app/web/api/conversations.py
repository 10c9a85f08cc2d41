"""Conversations and their messages."""
from __future__ import annotations

import base64
from datetime import datetime

from apiflask import abort
from sqlalchemy import and_, or_, select, text
from sqlalchemy.orm import selectinload

from app.domain.access import can_see_conversation, visible_channel_ids
from app.infra.schemas import (
    ConversationOut,
    ConversationPage,
    ConversationPatch,
    MessageOut,
    MessagePage,
    MessageQuery,
    NoteIn,
    conversation_schema,
)
from app.infra.models import Agent, Conversation, Customer, Message, Team, utcnow
from app.usecases.distribution import record_manual_change
from app.usecases.outbox import ReplyError, add_note, enqueue_reply, retry_message
from app.infra.events import record_event
from app.infra.state import db
from app.infra.events import notify_agent
from app.web.api import bp, current_agent, token_auth
from app.infra.inbox_schemas import InboxConversationQuery
from app.web.api.uploads import ReplyWithAttachmentsIn, load_upload_token


def _encode_cursor(*parts) -> str:
    raw = "|".join(p.isoformat() if isinstance(p, datetime) else str(p) for p in parts)
    return base64.urlsafe_b64encode(raw.encode()).decode()


def _decode_cursor(cursor: str) -> list[str]:
    try:
        return base64.urlsafe_b64decode(cursor.encode()).decode().split("|")
    except Exception:
        abort(422, "invalid cursor", detail={"query": {"cursor": ["not a cursor we issued"]}})


def get_visible_conversation(conversation_id: int) -> Conversation:
    conversation = db.session.get(Conversation, conversation_id)
    # 404 rather than 403: an agent learns nothing about conversations they may not see
    if conversation is None or not can_see_conversation(current_agent(), conversation):
        abort(404, "conversation not found")
    return conversation


@bp.get("/conversations")
@bp.auth_required(token_auth)
@bp.input(InboxConversationQuery, location="query", arg_name="query")
@bp.output(ConversationPage)
@bp.doc(summary="List conversations, newest activity first (keyset pagination)")
def list_conversations(query):
    agent = current_agent()
    stmt = select(Conversation).options(
        selectinload(Conversation.customer).selectinload(Customer.identities))
    if query["status"] != "all":
        stmt = stmt.where(Conversation.status == query["status"])
    channels = visible_channel_ids(agent)
    if channels is not None:
        stmt = stmt.where(Conversation.channel_id.in_(channels or [-1]))
    if query["channel_id"]:
        stmt = stmt.where(Conversation.channel_id == query["channel_id"])
    if query["team_id"]:
        stmt = stmt.where(Conversation.team_id == query["team_id"])
    if query["label"]:
        stmt = stmt.where(_has_label(query["label"]))
    assignee = query["assignee"]
    if assignee == "me":
        stmt = stmt.where(Conversation.assignee_id == agent.id)
    elif assignee == "none":
        stmt = stmt.where(Conversation.assignee_id.is_(None))
    elif assignee:
        if not assignee.isdigit():
            abort(422, "invalid assignee", detail={"query": {"assignee": ["me, none or an id"]}})
        stmt = stmt.where(Conversation.assignee_id == int(assignee))
    if query["cursor"]:
        ts, _, cid = "|".join(_decode_cursor(query["cursor"])).rpartition("|")
        try:
            last_at, last_id = datetime.fromisoformat(ts), int(cid)
        except ValueError:
            abort(422, "invalid cursor", detail={"query": {"cursor": ["not a cursor we issued"]}})
        stmt = stmt.where(or_(Conversation.last_activity_at < last_at,
                              and_(Conversation.last_activity_at == last_at,
                                   Conversation.id < last_id)))
    limit = query["limit"]
    rows = list(db.session.scalars(
        stmt.order_by(Conversation.last_activity_at.desc(), Conversation.id.desc())
        .limit(limit + 1)))
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = _encode_cursor(rows[-1].last_activity_at, rows[-1].id)
    return {"items": rows, "next_cursor": next_cursor}


def _has_label(label: str):
    if db.dialect == "postgresql":
        import json

        return text("conversations.labels @> CAST(:labels AS jsonb)").bindparams(
            labels=json.dumps([label]))
    return text("EXISTS (SELECT 1 FROM json_each(conversations.labels) WHERE value = :label)") \
        .bindparams(label=label)


@bp.get("/conversations/<int:conversation_id>")
@bp.auth_required(token_auth)
@bp.output(ConversationOut)
def get_conversation(conversation_id: int):
    return get_visible_conversation(conversation_id)


@bp.patch("/conversations/<int:conversation_id>")
@bp.auth_required(token_auth)
@bp.input(ConversationPatch, arg_name="patch")
@bp.output(ConversationOut)
@bp.doc(summary="Assign, change status, label, set priority")
def update_conversation(conversation_id: int, patch):
    conversation = get_visible_conversation(conversation_id)
    apply_patch(conversation, patch)
    db.session.commit()
    return conversation


def apply_patch(conversation: Conversation, patch: dict) -> None:
    """One change to one conversation, checked, with its conversation.updated event."""
    if patch.get("status") == "snoozed" and not patch.get("snoozed_until"):
        abort(422, "snoozed_until is required", detail={"json": {"snoozed_until": ["required when snoozing"]}})
    if patch.get("assignee_id") is not None:
        assignee = db.session.get(Agent, patch["assignee_id"])
        if assignee is None or not assignee.active:
            abort(422, "unknown agent", detail={"json": {"assignee_id": ["no such active agent"]}})
    if patch.get("team_id") is not None and db.session.get(Team, patch["team_id"]) is None:
        abort(422, "unknown team", detail={"json": {"team_id": ["no such team"]}})
    if "status" in patch and patch["status"] != "resolved":
        _check_reopen(conversation)
    if patch.get("status") == "resolved" and conversation.status != "resolved":
        conversation.resolved_at = utcnow()
    if "status" in patch and patch["status"] != "snoozed":
        conversation.snoozed_until = None
    if "labels" in patch:
        patch["labels"] = list(dict.fromkeys(label.strip() for label in patch["labels"]
                                             if label.strip()))
    before = {"assignee_id": conversation.assignee_id, "team_id": conversation.team_id,
              "status": conversation.status}
    for key, value in patch.items():
        setattr(conversation, key, value)
    db.session.flush()
    record_manual_change(db.session, conversation, current_agent(), before)
    record_event(db.session, "conversation.updated", conversation_schema.dump(conversation),
                 conversation.channel_id)


def _check_reopen(conversation: Conversation) -> None:
    """At most one open conversation per customer: reopening an old one needs the newer one resolved."""
    if conversation.status != "resolved":
        return
    other = db.session.scalar(select(Conversation.id).where(
        Conversation.customer_id == conversation.customer_id, Conversation.status != "resolved",
        Conversation.id != conversation.id))
    if other is not None:
        abort(409, f"the customer already has open conversation {other}")


@bp.get("/conversations/<int:conversation_id>/messages")
@bp.auth_required(token_auth)
@bp.input(MessageQuery, location="query", arg_name="query")
@bp.output(MessagePage)
@bp.doc(summary="Messages of a conversation, newest first")
def list_messages(conversation_id: int, query):
    get_visible_conversation(conversation_id)
    stmt = (select(Message).options(selectinload(Message.attachments))
            .where(Message.conversation_id == conversation_id))
    if query["cursor"]:
        (last_id,) = _decode_cursor(query["cursor"])[:1]
        if not last_id.isdigit():
            abort(422, "invalid cursor")
        stmt = stmt.where(Message.id < int(last_id))
    limit = query["limit"]
    rows = list(db.session.scalars(stmt.order_by(Message.id.desc()).limit(limit + 1)))
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = _encode_cursor(rows[-1].id)
    return {"items": rows, "next_cursor": next_cursor}


@bp.post("/conversations/<int:conversation_id>/messages")
@bp.auth_required(token_auth)
@bp.input(ReplyWithAttachmentsIn, arg_name="reply")
@bp.output(MessageOut, status_code=201)
@bp.doc(summary="Send a reply (queued in the outbox, sent by a worker)")
def send_reply(conversation_id: int, reply):
    conversation = get_visible_conversation(conversation_id)
    agent = current_agent()
    files, errors = [], {}
    for index, token in enumerate(reply["attachments"]):
        try:
            files.append(load_upload_token(token, agent.id if agent else None))
        except ValueError as exc:
            errors[index] = [str(exc)]
    if errors:
        abort(422, "invalid attachments", detail={"json": {"attachments": errors}})
    try:
        message = enqueue_reply(db.session, conversation, agent, reply["text"],
                                channel_id=reply["channel_id"], subject=reply["subject"],
                                template=reply["template"], attachments=files,
                                identity_id=reply["identity_id"])
    except ReplyError as exc:
        db.session.rollback()
        abort(422, str(exc), detail={"json": {exc.field: [str(exc)]}})
    db.session.commit()
    return message


@bp.post("/conversations/<int:conversation_id>/notes")
@bp.auth_required(token_auth)
@bp.input(NoteIn, arg_name="note")
@bp.output(MessageOut, status_code=201)
@bp.doc(summary="Add an internal note (never sent to the customer)")
def create_note(conversation_id: int, note):
    conversation = get_visible_conversation(conversation_id)
    from app.web.api.inbox import mentioned_agents

    author = current_agent()
    message = add_note(db.session, conversation, author, note["text"])
    mentioned = [a for a in mentioned_agents(note["text"]) if a.id != author.id]
    if mentioned:
        message.meta = {**(message.meta or {}), "mentions": [a.id for a in mentioned]}
    db.session.commit()
    for agent in mentioned:
        if can_see_conversation(agent, conversation):
            notify_agent(agent.id, "mention", {
                "conversation_id": conversation.id, "message_id": message.id,
                "by": {"id": author.id, "name": author.name}, "text": note["text"][:300],
                "customer": conversation.customer.name})
    return message


@bp.post("/messages/<int:message_id>/retry")
@bp.auth_required(token_auth)
@bp.output(MessageOut)
@bp.doc(summary="Queue a failed outbound message again")
def retry(message_id: int):
    message = db.session.get(Message, message_id)
    if message is None or not can_see_conversation(current_agent(), message.conversation):
        abort(404, "message not found")
    try:
        retry_message(db.session, message)
    except ReplyError as exc:
        abort(409, str(exc))
    db.session.commit()
    return message
