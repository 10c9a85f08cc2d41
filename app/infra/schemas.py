"""API shapes. The same schemas serialize API answers and Socket.IO event payloads, so an
event carries "the changed object as the API would return it"."""
from apiflask import Schema
from apiflask.fields import Boolean, DateTime, Dict, List, Nested, String

from app.infra.fields import Integer, MoneyIn, MoneyOut
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
    # work distribution (issue 17): in the team's queue since; SLA due times and warning
    waiting_since = DateTime(allow_none=True)
    first_response_due_at = DateTime(allow_none=True)
    first_response_at = DateTime(allow_none=True)
    resolution_due_at = DateTime(allow_none=True)
    sla_warning_at = DateTime(allow_none=True)
    next_response_due_at = DateTime(allow_none=True)
    # who holds it before a human: None (people), "answer_bot", "bot:<id>" (issue 18)
    handled_by = String(allow_none=True)


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
    # the canned reply ("script") the agent inserted, counted by the reports
    canned_reply_id = Integer(allow_none=True)
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
    # a WhatsApp approved template ({name, language: {code}, components}): the only thing
    # WhatsApp accepts once the customer's 24-hour window has closed
    template = Dict(load_default=None)
    identity_id = Integer(load_default=None, allow_none=True, metadata={
        "description": "send to this handle of the customer (an identity id from the "
                       "customer's card); without channel_id, on the customer's latest "
                       "channel that reaches it. Default: the handle they last wrote from"})
    canned_reply_id = Integer(load_default=None, allow_none=True, metadata={
        "description": "the canned reply the agent inserted into this text (the composer "
                       "sends it; the reports count script usage by it)"})


class NoteIn(Schema):
    text = String(required=True, validate=Length(1, 100_000))
    mentions = List(Integer(), load_default=list, validate=Length(max=100),
                    metadata={"description": "ids of mentioned agents (besides @handles in "
                                             "the text)"})


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


# --- CRM (issue 8) -----------------------------------------------------------------------
from apiflask.fields import Date, Decimal as DecimalField, Float, Raw, URL  # noqa: E402
from apiflask.validators import Regexp  # noqa: E402

IDENTITY_KIND_NAMES = ["email", "phone", "telegram", "whatsapp", "webchat", "site_user"]
WEBHOOK_EVENTS = ["message.created", "conversation.created", "conversation.updated",
                  "customer.created", "customer.updated", "customer.merged", "deal.updated"]
KEY_PATTERN = Regexp(r"^[a-z][a-z0-9_]{0,59}$", error="lowercase letters, digits and _, "
                                                      "starting with a letter")


class ChannelBrief(Schema):
    id = Integer()
    kind = String()
    name = String()


class IdentityCardOut(IdentityOut):
    id = Integer()
    channels = List(Nested(ChannelBrief))


class NoteCardOut(Schema):
    id = Integer()
    customer_id = Integer()
    external_ref = String(allow_none=True)
    author_id = Integer(allow_none=True)
    author_name = String(allow_none=True)
    text = String()
    created_at = DateTime()


class OrderOut(Schema):
    id = Integer()
    customer_id = Integer()
    external_ref = String(allow_none=True)
    placed_at = DateTime(allow_none=True)
    total = MoneyOut()
    currency = String(allow_none=True)
    status = String()
    items = List(Dict())


class DealOut(Schema):
    id = Integer()
    customer_id = Integer()
    external_ref = String(allow_none=True)
    title = String()
    stage = String()
    amount = MoneyOut()
    currency = String(allow_none=True)
    owner_id = Integer(allow_none=True)
    expected_close = Date(allow_none=True)
    created_at = DateTime()
    updated_at = DateTime()


class ConversationBrief(Schema):
    id = Integer()
    status = String()
    channel_id = Integer()
    subject = String(allow_none=True)
    last_activity_at = DateTime()


class MergeOut(Schema):
    id = Integer()
    target_id = Integer()
    source_id = Integer()
    actor_id = Integer(allow_none=True)
    suggestion_id = Integer(allow_none=True)
    reason = String()
    chosen = Dict()
    status = String()
    created_at = DateTime()
    unmerged_at = DateTime(allow_none=True)
    unmerged_by_id = Integer(allow_none=True)


class CustomerCardOut(CustomerOut):
    """The CRM card: the customer with handles (and the channels they were used on), owner,
    notes, orders, deals, conversations and the merges that formed it."""
    identities = List(Nested(IdentityCardOut))
    owner = Nested(AgentOut, allow_none=True)
    notes = List(Nested(NoteCardOut))
    orders = List(Nested(OrderOut))
    deals = List(Nested(DealOut))
    conversations = List(Nested(ConversationBrief))
    merges = List(Nested(MergeOut))
    # channels the customer opted out of campaigns on: channel_id, channel_name,
    # channel_kind, source (keyword | blocked | unsubscribe_link | agent), created_at
    opt_outs = List(Dict())


class CustomerPage(Page):
    items = List(Nested(CustomerOut))


class CustomerQuery(Schema):
    q = String(load_default=None, validate=Length(max=320))
    cursor = String(load_default=None)
    limit = Integer(load_default=25, validate=Range(1, 100))
    include_merged = Boolean(load_default=False)


class CustomerPatch(Schema):
    name = String(validate=Length(0, 200))
    company = String(allow_none=True, validate=Length(0, 200))
    owner_id = Integer(allow_none=True)
    tags = List(String(validate=Length(1, 50)))
    # only admin-defined fields; a value of null removes the field
    custom_fields = Dict(keys=String(), values=Raw(allow_none=True))
    source = Dict(allow_none=True)


class IdentityIn(Schema):
    kind = String(required=True, validate=OneOf(IDENTITY_KIND_NAMES))
    value = String(required=True, validate=Length(1, 320))
    verified = Boolean(load_default=True)


class CustomerRefIn(Schema):
    """Who a pushed record belongs to: a customer id, or handles (found, else created)."""
    email = String(validate=Length(1, 320))
    phone = String(validate=Length(1, 40))
    telegram = String(validate=Length(1, 64))
    whatsapp = String(validate=Length(1, 40))
    site_user = String(validate=Length(1, 200))
    name = String(validate=Length(0, 200))
    company = String(validate=Length(0, 200))


class _Upsert(Schema):
    external_ref = String(validate=Length(1, 200))
    customer_id = Integer()
    customer = Nested(CustomerRefIn)


class OrderIn(_Upsert):
    placed_at = DateTime(allow_none=True)
    total = MoneyIn()
    currency = String(allow_none=True, validate=Regexp(r"^[A-Za-z]{3}$", error="ISO 4217 code"))
    status = String(validate=Length(1, 40))
    items = List(Dict())


class DealIn(_Upsert):
    title = String(validate=Length(1, 300))
    stage = String(validate=Length(1, 60))
    amount = MoneyIn()
    currency = String(allow_none=True, validate=Regexp(r"^[A-Za-z]{3}$", error="ISO 4217 code"))
    owner_id = Integer(allow_none=True)
    owner_email = String(allow_none=True)
    expected_close = Date(allow_none=True)


class NoteUpsertIn(_Upsert):
    text = String(validate=Length(1, 100_000))
    created_at = DateTime()


class ContactIn(_Upsert):
    name = String(validate=Length(0, 200))
    company = String(allow_none=True, validate=Length(0, 200))
    tags = List(String(validate=Length(1, 50)))
    custom_fields = Dict(keys=String(), values=Raw(allow_none=True))
    owner_email = String(allow_none=True)


class MergePreviewIn(Schema):
    other_id = Integer(required=True)


class MergeIn(Schema):
    other_id = Integer(required=True)
    # field -> "this" (keep this customer's value) or "other"; custom fields as "custom_fields.<key>"
    choose = Dict(keys=String(), values=String(validate=OneOf(["this", "other"])),
                  load_default=dict)
    reason = String(load_default="", validate=Length(0, 2000))


class MergeConflict(Schema):
    field = String()
    this = Raw(allow_none=True)
    other = Raw(allow_none=True)


class MergePreviewOut(Schema):
    this = Nested(CustomerOut)
    other = Nested(CustomerOut)
    conflicts = List(Nested(MergeConflict))
    moves = Dict()


class UnmergeIn(Schema):
    merge_id = Integer(load_default=None)  # default: the latest merge into this customer
    reason = String(load_default="", validate=Length(0, 2000))


class SuggestionOut(Schema):
    id = Integer()
    customer = Nested(CustomerBrief)
    other_customer = Nested(CustomerBrief)
    reasons = List(Dict())
    score = Integer()
    status = String()
    created_at = DateTime()
    decided_at = DateTime(allow_none=True)
    decided_by_id = Integer(allow_none=True)


class SuggestionPage(Page):
    items = List(Nested(SuggestionOut))


class SuggestionQuery(Schema):
    status = String(load_default="open", validate=OneOf(["open", "accepted", "rejected", "all"]))
    customer_id = Integer(load_default=None)
    cursor = String(load_default=None)
    limit = Integer(load_default=25, validate=Range(1, 100))


class SuggestionDecisionIn(Schema):
    reason = String(load_default="", validate=Length(0, 2000))
    # which customer survives (default the older one); field choices as in MergeIn
    keep = Integer(load_default=None)
    choose = Dict(keys=String(), values=String(validate=OneOf(["this", "other"])),
                  load_default=dict)


class UpsertResult(Schema):
    created = Boolean()


class OrderResult(OrderOut, UpsertResult):
    pass


class DealResult(DealOut, UpsertResult):
    pass


class NoteResult(NoteCardOut, UpsertResult):
    pass


class StageIn(Schema):
    key = String(required=True, validate=KEY_PATTERN)
    name = String(required=True, validate=Length(1, 100))
    position = Integer(load_default=0)
    outcome = String(load_default="open", validate=OneOf(["open", "won", "lost"]))


class StagePatch(Schema):
    name = String(validate=Length(1, 100))
    position = Integer()
    outcome = String(validate=OneOf(["open", "won", "lost"]))


class StageOut(Schema):
    id = Integer()
    key = String()
    name = String()
    position = Integer()
    outcome = String()


class FieldDefIn(Schema):
    key = String(required=True, validate=KEY_PATTERN)
    label = String(required=True, validate=Length(1, 100))
    type = String(required=True, validate=OneOf(["text", "number", "date", "choice"]))
    choices = List(String(validate=Length(1, 100)), load_default=list)
    position = Integer(load_default=0)


class FieldDefPatch(Schema):
    label = String(validate=Length(1, 100))
    choices = List(String(validate=Length(1, 100)))
    position = Integer()


class FieldDefOut(Schema):
    id = Integer()
    key = String()
    label = String()
    type = String()
    choices = List(String())
    position = Integer()


class ItemsOut(Schema):
    items = List(Dict())


class StageList(Schema):
    items = List(Nested(StageOut))


class FieldDefList(Schema):
    items = List(Nested(FieldDefOut))


class WebhookEndpointIn(Schema):
    url = URL(required=True, schemes={"http", "https"}, require_tld=False)
    events = List(String(validate=OneOf(WEBHOOK_EVENTS)), load_default=list)
    description = String(load_default="", validate=Length(0, 200))
    active = Boolean(load_default=True)
    secret = String(load_default=None, validate=Length(16, 200))


class WebhookEndpointPatch(Schema):
    url = URL(schemes={"http", "https"}, require_tld=False)
    events = List(String(validate=OneOf(WEBHOOK_EVENTS)))
    description = String(validate=Length(0, 200))
    active = Boolean()


class WebhookEndpointOut(Schema):
    id = Integer()
    url = String()
    events = List(String())
    description = String()
    active = Boolean()
    created_at = DateTime()


class WebhookEndpointCreated(WebhookEndpointOut):
    secret = String()  # shown once, at creation


class WebhookEndpointList(Schema):
    items = List(Nested(WebhookEndpointOut))


class DeliveryOut(Schema):
    id = Integer()
    endpoint_id = Integer()
    event_id = Integer()
    event_type = String()
    status = String()
    attempts = Integer()
    next_attempt_at = DateTime(allow_none=True)
    response_status = Integer(allow_none=True)
    error = String(allow_none=True)
    log = List(Dict())
    created_at = DateTime()
    delivered_at = DateTime(allow_none=True)


class DeliveryPage(Page):
    items = List(Nested(DeliveryOut))


class DeliveryQuery(Schema):
    endpoint_id = Integer(load_default=None)
    status = String(load_default=None, validate=OneOf(["pending", "sending", "delivered", "failed"]))
    cursor = String(load_default=None)
    limit = Integer(load_default=50, validate=Range(1, 200))


class AuditOut(Schema):
    id = Integer()
    actor_id = Integer(allow_none=True)
    action = String()
    target_type = String()
    target_id = Integer(allow_none=True)
    details = Dict()
    created_at = DateTime()


class AuditPage(Page):
    items = List(Nested(AuditOut))


class ImportQuery(Schema):
    dry_run = Boolean(load_default=False)


class ImportReportOut(Schema):
    dry_run = Boolean()
    rows = Integer()
    created = Integer()
    updated = Integer()
    rejected = List(Dict())


card_schema = CustomerCardOut()
deal_schema = DealOut()
order_schema = OrderOut()
