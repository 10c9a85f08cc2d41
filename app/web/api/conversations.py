"""Conversations (list, get, change one or several, mark read) and their messages (list,
reply, note, retry)."""
from __future__ import annotations

import base64
from datetime import datetime

from apiflask import abort
from flask import jsonify
from sqlalchemy import and_, bindparam, or_, select, text
from sqlalchemy.orm import joinedload, selectinload

from app.domain.access import can_see_conversation, visible_channel_ids
from app.domain.bots import ROLE as BOT_ROLE
from app.domain.bots import bot_of_agent, holder
from app.domain import notifications
from app.domain.conversations import apply_patch
from app.domain.conversations import mark_read as mark_conversation_read
from app.infra.inbox_schemas import BulkIn, BulkOut, InboxConversationQuery
from app.infra.models import Bot, Conversation, Customer, Message
from app.infra.schemas import (
    ConversationOut,
    ConversationPage,
    ConversationPatch,
    MessageOut,
    MessagePage,
    MessageQuery,
    NoteIn,
)
from app.usecases.bots import bot_resolved
from app.usecases.distribution import record_manual_change
from app.infra.state import db
from app.usecases.outbox import add_note, queue_reply, retry_message
from app.web.api.base import bp, current_agent, token_auth
from app.web.api.paging import bad_cursor, page
from app.web.api.uploads import ReplyWithAttachmentsIn, load_upload_token


def _encode_cursor(*parts) -> str:
    raw = "|".join(p.isoformat() if isinstance(p, datetime) else str(p) for p in parts)
    return base64.urlsafe_b64encode(raw.encode()).decode()


def _decode_cursor(cursor: str) -> list[str]:
    try:
        return base64.urlsafe_b64decode(cursor.encode()).decode().split("|")
    except Exception:
        bad_cursor()


def get_visible_conversation(conversation_id: int, statement=None) -> Conversation:
    """The conversation, if the caller may see it (else 404; 403 for a bot's other
    channels). `statement`: reads it by `:conversation_id` with more (joined eager loads)."""
    if statement is None:
        conversation = db.session.get(Conversation, conversation_id)
    else:
        conversation = db.session.execute(
            statement, {"conversation_id": conversation_id}).unique().scalar_one_or_none()
    agent = current_agent()
    if conversation is not None and agent.role == BOT_ROLE \
            and not can_see_conversation(agent, conversation):
        abort(403, "not a conversation of the bot's channels")
    # 404 rather than 403: an agent learns nothing about conversations they may not see
    if conversation is None or not can_see_conversation(agent, conversation):
        abort(404, "conversation not found")
    return conversation


def acting_bot(conversation: Conversation, fields: set[str] | None = None) -> Bot | None:
    """The caller's bot when a bot's token calls: it acts only on conversations it holds
    (409 otherwise) and changes only status, labels and priority (403 otherwise)."""
    agent = current_agent()
    if agent.role != BOT_ROLE:
        return None
    bot = bot_of_agent(db.session, agent)
    if bot is None:
        abort(403, "not a bot")
    if fields and not fields <= {"status", "snoozed_until", "labels", "priority"}:
        abort(403, "a bot changes status, labels and priority; it hands off with /handoff")
    if conversation.handled_by != holder(bot):
        abort(409, "the bot does not hold this conversation (people do)")
    return bot


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
    if query.get("handled_by") == "bot":
        stmt = stmt.where(Conversation.handled_by.is_not(None))
    elif query.get("handled_by") == "none":
        stmt = stmt.where(Conversation.handled_by.is_(None))
    assignee = query["assignee"]
    if assignee == "me":
        stmt = stmt.where(Conversation.assignee_id == agent.id)
    elif assignee == "none":
        # the people's unassigned queue: a conversation a bot holds is not waiting for them
        stmt = stmt.where(Conversation.assignee_id.is_(None), Conversation.handled_by.is_(None))
    elif assignee:
        if not assignee.isdigit():
            abort(422, "invalid assignee", detail={"query": {"assignee": ["me, none or an id"]}})
        stmt = stmt.where(Conversation.assignee_id == int(assignee))
    if query["cursor"]:
        ts, _, cid = "|".join(_decode_cursor(query["cursor"])).rpartition("|")
        try:
            last_at, last_id = datetime.fromisoformat(ts), int(cid)
        except ValueError:
            bad_cursor()
        stmt = stmt.where(or_(Conversation.last_activity_at < last_at,
                              and_(Conversation.last_activity_at == last_at,
                                   Conversation.id < last_id)))
    return page(stmt.order_by(Conversation.last_activity_at.desc(), Conversation.id.desc()),
                query["limit"], lambda row: _encode_cursor(row.last_activity_at, row.id))


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
    bot = acting_bot(conversation, set(patch))
    resolving = patch.get("status") == "resolved" and conversation.status != "resolved"
    _apply_patch(conversation, patch)
    if bot is not None and resolving:
        bot_resolved(db.session, conversation, bot)
    db.session.commit()
    return conversation


def _apply_patch(conversation: Conversation, patch: dict) -> None:
    """The domain's checked change, and the activity line saying which agent made it."""
    before = {"assignee_id": conversation.assignee_id, "team_id": conversation.team_id,
              "status": conversation.status}
    notifications.acting_agent(db.session, current_agent().id)
    apply_patch(db.session, conversation, patch)
    record_manual_change(db.session, conversation, current_agent(), before)


@bp.post("/conversations/<int:conversation_id>/read")
@bp.auth_required(token_auth)
@bp.output(ConversationOut)
@bp.doc(summary="Mark the conversation read (unread count back to 0)")
def mark_read(conversation_id: int):
    conversation = get_visible_conversation(conversation_id)
    if mark_conversation_read(db.session, conversation):
        db.session.commit()
    return conversation



@bp.post("/conversations/bulk")
@bp.auth_required(token_auth)
@bp.input(BulkIn, arg_name="bulk")
@bp.output(BulkOut)
@bp.doc(summary="Apply one change (assign, status, labels, priority) to several conversations")
def bulk_update(bulk):
    ids = bulk.pop("ids")
    if not bulk:
        abort(422, "nothing to change", detail={"json": {"_schema": ["give at least one field"]}})
    items = []
    for conversation_id in dict.fromkeys(ids):
        conversation = db.session.get(Conversation, conversation_id)
        if conversation is None or not can_see_conversation(current_agent(), conversation):
            abort(404, f"conversation {conversation_id} not found")
        _apply_patch(conversation, dict(bulk))
        items.append(conversation)
    db.session.commit()
    return {"items": items}



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
    return page(stmt.order_by(Message.id.desc()), query["limit"],
                lambda row: _encode_cursor(row.id))


# a conversation with its customer and their identities, in one statement built once (a
# statement object keeps its cache key): a reply's conversation.updated event carries them
WITH_CUSTOMER = (select(Conversation)
                 .options(joinedload(Conversation.customer).joinedload(Customer.identities))
                 .where(Conversation.id == bindparam("conversation_id")))


@bp.post("/conversations/<int:conversation_id>/messages")
@bp.auth_required(token_auth)
@bp.input(ReplyWithAttachmentsIn, arg_name="reply")
@bp.output(MessageOut, status_code=201)
@bp.doc(summary="Send a reply (queued in the outbox, sent by a worker)")
def send_reply(conversation_id: int, reply):
    conversation = get_visible_conversation(conversation_id, WITH_CUSTOMER)
    agent = current_agent()
    bot = acting_bot(conversation)
    files, errors = [], {}
    for index, token in enumerate(reply["attachments"]):
        try:
            files.append(load_upload_token(token, agent.id if agent else None))
        except ValueError as exc:
            errors[index] = [str(exc)]
    if errors:
        abort(422, "invalid attachments", detail={"json": {"attachments": errors}})
    _message, payload = queue_reply(db.session, conversation, agent, reply["text"],
                                    channel_id=reply["channel_id"], subject=reply["subject"],
                                    template=reply["template"], attachments=files,
                                    identity_id=reply["identity_id"],
                                    canned_reply_id=reply["canned_reply_id"],
                                    # the thread shows it as the bot's
                                    meta={"bot": holder(bot)} if bot is not None else None)
    db.session.commit()
    # the message as MessageOut dumped it for its message.created event, not dumped again
    response = jsonify(payload)
    response.status_code = 201
    return response


@bp.post("/conversations/<int:conversation_id>/notes")
@bp.auth_required(token_auth)
@bp.input(NoteIn, arg_name="note")
@bp.output(MessageOut, status_code=201)
@bp.doc(summary="Add an internal note (never sent to the customer)")
def create_note(conversation_id: int, note):
    conversation = get_visible_conversation(conversation_id)
    acting_bot(conversation)
    author = current_agent()
    mentioned, unreachable = notifications.note_mentions(
        db.session, conversation, author, note["text"], note["mentions"])
    message = add_note(db.session, conversation, author, note["text"],
                       meta=notifications.mention_meta(mentioned, unreachable))
    notifications.notify_mentions(db.session, message, author, mentioned, unreachable)
    db.session.commit()
    return message


@bp.post("/messages/<int:message_id>/retry")
@bp.auth_required(token_auth)
@bp.output(MessageOut)
@bp.doc(summary="Queue a failed outbound message again")
def retry(message_id: int):
    message = db.session.get(Message, message_id)
    if message is None or not can_see_conversation(current_agent(), message.conversation):
        abort(404, "message not found")
    retry_message(db.session, message)
    db.session.commit()
    return message
