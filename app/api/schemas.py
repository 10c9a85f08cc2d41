"""API shapes. The same schemas serialize API answers and Socket.IO event payloads, so an
event carries "the changed object as the API would return it"."""
from apiflask import Schema
from apiflask.fields import Boolean, DateTime, Dict, Integer, List, Nested, String
from apiflask.validators import Length, OneOf, Range


class IdentityOut(Schema):
    kind = String()
    value = String()
    verified = Boolean()
    reachable = Boolean()


class CustomerBrief(Schema):
    id = Integer()
    name = String()
    identities = List(Nested(IdentityOut))


class CustomerOut(CustomerBrief):
    company = String(allow_none=True)
    owner_id = Integer(allow_none=True)
    source = Dict(allow_none=True)
    tags = List(String())
    custom_fields = Dict()
    merged_into_id = Integer(allow_none=True)
    created_at = DateTime()
    updated_at = DateTime()


class ConversationOut(Schema):
    id = Integer()
    status = String()
    customer = Nested(CustomerBrief)
    channel_id = Integer()
    assignee_id = Integer(allow_none=True)
    team_id = Integer(allow_none=True)
    priority = String()
    labels = List(String())
    subject = String(allow_none=True)
    snoozed_until = DateTime(allow_none=True)
    last_activity_at = DateTime()
    last_inbound_at = DateTime(allow_none=True)
    last_message_preview = String()
    unread_count = Integer()
    created_at = DateTime()
    resolved_at = DateTime(allow_none=True)


class AttachmentOut(Schema):
    id = Integer()
    filename = String()
    content_type = String()
    size = Integer(allow_none=True)
    error = String(allow_none=True)


class MessageOut(Schema):
    id = Integer()
    uuid = String()
    conversation_id = Integer()
    customer_id = Integer()
    channel_id = Integer(allow_none=True)
    direction = String()
    author_id = Integer(allow_none=True)
    content_type = String()
    subject = String(allow_none=True)
    text = String()
    html = String(allow_none=True)
    external_id = String(allow_none=True)
    status = String()
    error = String(allow_none=True)
    attempts = Integer()
    automated = Boolean()
    deleted = Boolean()
    created_at = DateTime()
    sent_at = DateTime(allow_none=True)
    edited_at = DateTime(allow_none=True)
    attachments = List(Nested(AttachmentOut))
    meta = Dict()


class EventOut(Schema):
    id = Integer()
    type = String()
    created_at = DateTime()
    data = Dict(attribute="payload")


class ChannelOut(Schema):
    id = Integer()
    kind = String()
    name = String()
    public_id = String()
    active = Boolean()
    error = String(allow_none=True)


class AgentOut(Schema):
    id = Integer()
    email = String()
    name = String()
    role = String()


class Page(Schema):
    next_cursor = String(allow_none=True)


class ConversationPage(Page):
    items = List(Nested(ConversationOut))


class MessagePage(Page):
    items = List(Nested(MessageOut))


class EventPage(Page):
    items = List(Nested(EventOut))


class ConversationQuery(Schema):
    status = String(load_default="open",
                    validate=OneOf(["open", "pending", "snoozed", "resolved", "all"]))
    assignee = String(load_default=None)  # "me", "none" or an agent id
    channel_id = Integer(load_default=None)
    cursor = String(load_default=None)
    limit = Integer(load_default=25, validate=Range(1, 100))


class MessageQuery(Schema):
    cursor = String(load_default=None)
    limit = Integer(load_default=50, validate=Range(1, 200))


class EventQuery(Schema):
    after = Integer(load_default=0, validate=Range(min=0))
    limit = Integer(load_default=500, validate=Range(1, 1000))


class ReplyIn(Schema):
    text = String(required=True, validate=Length(1, 100_000))
    channel_id = Integer(load_default=None)
    subject = String(load_default=None)


class NoteIn(Schema):
    text = String(required=True, validate=Length(1, 100_000))


class ConversationPatch(Schema):
    status = String(validate=OneOf(["open", "pending", "snoozed", "resolved"]))
    assignee_id = Integer(allow_none=True)
    team_id = Integer(allow_none=True)
    priority = String(validate=OneOf(["low", "normal", "high", "urgent"]))
    labels = List(String(validate=Length(1, 50)))
    snoozed_until = DateTime(allow_none=True)


conversation_schema = ConversationOut()
message_schema = MessageOut()
customer_schema = CustomerOut()
