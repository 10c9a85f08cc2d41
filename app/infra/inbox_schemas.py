"""Shapes used by the live inbox (views, timeline, search, canned replies, bulk actions)."""
from apiflask import Schema
from apiflask.fields import Boolean, DateTime, Dict, List, Nested, String

from app.infra.fields import Integer
from apiflask.validators import Length, OneOf, Range, Regexp

from app.infra.schemas import (
    ConversationOut,
    ConversationPatch,
    ConversationQuery,
    CustomerBrief,
    CustomerOut,
    IdentityOut,
    MessageOut,
)


class InboxConversationQuery(ConversationQuery):
    team_id = Integer(load_default=None)
    label = String(load_default=None, validate=Length(1, 50))
    # "bot": the conversations a bot holds (the inbox's Bot view); "none": people's only
    handled_by = String(load_default=None, validate=OneOf(["bot", "none"]))


class NamedOut(Schema):
    id = Integer()
    name = String()


class InboxAgentOut(Schema):
    id = Integer()
    name = String()
    email = String()
    role = String()
    locale = String(allow_none=True)
    team_ids = List(Integer())


class InboxChannelOut(Schema):
    id = Integer()
    kind = String()
    name = String()
    # the name of the active outside bot serving the channel ("return to bot"), else null
    bot = String(allow_none=True)


class CannedReplyOut(Schema):
    id = Integer()
    shortcut = String()
    title = String()
    text = String()


class CannedReplyIn(Schema):
    shortcut = String(required=True, validate=[Length(1, 60), Regexp(
        r"^[\w-]+$", error="letters, digits, _ and - only")])
    title = String(load_default="", validate=Length(0, 200))
    text = String(required=True, validate=Length(1, 20_000))


class CannedReplyPatch(Schema):
    shortcut = String(validate=[Length(1, 60), Regexp(r"^[\w-]+$",
                                                      error="letters, digits, _ and - only")])
    title = String(validate=Length(0, 200))
    text = String(validate=Length(1, 20_000))


class CannedReplyList(Schema):
    items = List(Nested(CannedReplyOut))


class BootstrapOut(Schema):
    me = Nested(InboxAgentOut)
    agents = List(Nested(InboxAgentOut))
    teams = List(Nested(NamedOut))
    channels = List(Nested(InboxChannelOut))
    labels = List(String())
    canned_replies = List(Nested(CannedReplyOut))


class ViewCountsOut(Schema):
    counts = Dict(metadata={"description": "unread conversations per view: open, mine, "
                                           "unassigned, snoozed, team:<id>, channel:<id>, "
                                           "label:<name>"})
    totals = Dict(metadata={"description": "every (not resolved) conversation per view, "
                                           "same keys"})


class ReplyChannelOut(Schema):
    id = Integer()
    kind = String()
    name = String()
    identity_kinds = List(String(), metadata={"description": "kinds of customer handles this "
                                                             "channel can send to"})
    last_inbound_at = DateTime(allow_none=True)
    window_open = Boolean(metadata={"description": "WhatsApp: inside the 24-hour window"})
    templates = List(Dict(), metadata={"description": "WhatsApp: approved templates "
                                                      "({name, language}) for a closed window"})


class CardExtraOut(Schema):
    orders = List(Dict())
    deals = List(Dict())
    notes = List(Dict())
    csat = Dict(metadata={"description": "feedback (CSAT): average, answered, latest items"})
    # channels the customer opted out of campaigns on (issue 21)
    opt_outs = List(Dict())


class TimelineIdentityOut(IdentityOut):
    id = Integer(metadata={"description": "identity_id for a reply to this handle"})


class TimelineCustomerOut(CustomerOut):
    identities = List(Nested(TimelineIdentityOut))


class TimelineOut(Schema):
    conversation = Nested(ConversationOut)
    customer = Nested(TimelineCustomerOut)
    card = Nested(CardExtraOut)
    conversations = List(Nested(ConversationOut))
    messages = List(Nested(MessageOut))
    reply_channels = List(Nested(ReplyChannelOut))
    default_channel_id = Integer(allow_none=True)


class BulkIn(ConversationPatch):
    ids = List(Integer(), required=True, validate=Length(1, 200))


class BulkOut(Schema):
    items = List(Nested(ConversationOut))


class SearchQuery(Schema):
    q = String(required=True, validate=Length(1, 200))
    limit = Integer(load_default=20, validate=Range(1, 50))
    cursor = String(load_default=None, validate=Regexp(r"^[0-9]{1,19}$"),
                    metadata={"description": "the previous answer's next_cursor: the next "
                                             "page of messages (customers come on the first)"})


class MessageHit(Schema):
    message = Nested(MessageOut)
    snippet = String()
    matches = List(String(), metadata={"description": "the words of the message the query "
                                                      "matched, as written (word forms too)"})
    customer = Nested(CustomerBrief)


class SearchOut(Schema):
    query = String()
    terms = List(String())
    customers = List(Nested(CustomerBrief))
    customer_conversations = Dict(metadata={"description": "customer id → latest visible "
                                                           "conversation id"})
    customer_activity = Dict(metadata={"description": "customer id → last activity of that "
                                                      "conversation (ISO 8601)"})
    messages = List(Nested(MessageHit))
    next_cursor = String(allow_none=True)


class ProfilePatch(Schema):
    locale = String(allow_none=True, validate=OneOf(["en", "ru", "pl"]))
    name = String(validate=Length(1, 200))
