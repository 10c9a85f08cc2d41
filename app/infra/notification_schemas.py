"""Shapes of the notifications API (the bell, the Mentions view, the options)."""
from apiflask import Schema
from apiflask.fields import Boolean, DateTime, List, Nested, String
from apiflask.validators import Length, OneOf, Range

from app.infra.fields import Integer
from app.infra.schemas import ConversationOut

KINDS = ["mention", "assigned", "message"]


class NotificationOut(Schema):
    id = Integer()
    kind = String(metadata={"description": "mention | assigned | message"})
    conversation_id = Integer()
    message_id = Integer(allow_none=True)
    actor_id = Integer(allow_none=True)
    actor_name = String(allow_none=True)
    customer_name = String(allow_none=True)
    text = String()
    count = Integer(metadata={"description": "new messages folded into this one"})
    created_at = String()
    read = Boolean()


class NotificationQuery(Schema):
    cursor = String(load_default=None)
    limit = Integer(load_default=20, validate=Range(1, 100))
    kind = String(load_default=None, validate=OneOf(KINDS))
    unread = Boolean(load_default=False)


class NotificationPage(Schema):
    items = List(Nested(NotificationOut))
    next_cursor = String(allow_none=True)
    unread = Integer(metadata={"description": "every unread notification of mine"})


class ReadIn(Schema):
    ids = List(Integer(), validate=Length(max=1000))
    all = Boolean(load_default=False)
    kind = String(load_default=None, validate=OneOf(KINDS))
    conversation_id = Integer(load_default=None)


class ReadOut(Schema):
    marked = Integer()
    unread = Integer()


class PrefsIO(Schema):
    sound = Boolean(metadata={"description": "a sound on a new notification"})
    title_badge = Boolean(metadata={"description": "the unread count in the tab's title"})


class MentionItem(Schema):
    conversation = Nested(ConversationOut)
    unread = Integer(metadata={"description": "unread mentions of me in its notes"})
    last_at = DateTime()
    ids = List(Integer(), metadata={"description": "the mention notifications"})


class MentionsOut(Schema):
    items = List(Nested(MentionItem))
    unread = Integer()
