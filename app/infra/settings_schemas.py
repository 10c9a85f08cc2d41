"""API shapes of the settings area (/api/v1/channels, /agents, /teams): what admins read and
write. Secrets never appear in these answers except the one-time `secrets` of a new channel
and the deliberate reveal."""
from apiflask import Schema
from apiflask.fields import Boolean, DateTime, Dict, Integer, List, Nested, String
from apiflask.validators import Length, OneOf

CHANNEL_KINDS = ["email", "telegram", "whatsapp", "webchat", "crm"]


class ChannelAdminOut(Schema):
    id = Integer()
    kind = String()
    name = String()
    public_id = String()
    active = Boolean()
    error = String(allow_none=True)
    settings = Dict(metadata={"description": "secrets shown as ***"})
    team_ids = List(Integer())
    bot = String(allow_none=True, metadata={"description": "Telegram: the bot's @name"})
    webhook_url = String(allow_none=True)
    messages_in = Integer()
    messages_out = Integer()
    last_inbound_at = DateTime(allow_none=True)
    created_at = DateTime()


class ChannelCreated(ChannelAdminOut):
    secrets = Dict(metadata={"description": "the channel's secrets, in this answer only"})


class ChannelList(Schema):
    items = List(Nested(ChannelAdminOut))
    next_cursor = String(allow_none=True)


class ChannelIn(Schema):
    kind = String(required=True, validate=OneOf(CHANNEL_KINDS))
    name = String(required=True, validate=Length(1, 100))
    settings = Dict(load_default=dict)
    team_ids = List(Integer(), load_default=None,
                    metadata={"description": "teams that see the channel (default: every team)"})


class ChannelPatch(Schema):
    name = String(validate=Length(1, 100))
    settings = Dict(metadata={"description": "merged into the current settings; a secret "
                                             "given as *** or empty keeps its value"})
    team_ids = List(Integer())
    active = Boolean()


class SecretsOut(Schema):
    secrets = Dict()


class DeleteOut(Schema):
    outcome = String(metadata={"description": "deleted, or disabled (a channel with history)"})


class AgentAdminOut(Schema):
    id = Integer()
    email = String()
    name = String()
    role = String()
    active = Boolean()
    locale = String(allow_none=True)
    team_ids = List(Integer())
    created_at = DateTime()


class AgentInvited(AgentAdminOut):
    invite_url = String(metadata={"description": "one-time link to set a password (7 days)"})


class AgentList(Schema):
    items = List(Nested(AgentAdminOut))
    next_cursor = String(allow_none=True)


class AgentIn(Schema):
    email = String(required=True, validate=Length(3, 320))
    name = String(load_default="", validate=Length(0, 200))
    role = String(load_default="agent", validate=OneOf(["agent", "admin"]))
    team_ids = List(Integer(), load_default=list)
    locale = String(load_default=None, allow_none=True, validate=OneOf(["en", "ru", "pl"]))


class AgentPatch(Schema):
    active = Boolean()
    role = String(validate=OneOf(["agent", "admin"]))
    team_ids = List(Integer())
    name = String(validate=Length(1, 200))
    locale = String(allow_none=True, validate=OneOf(["en", "ru", "pl"]))


class InviteOut(Schema):
    invite_url = String()


class TeamOut(Schema):
    id = Integer()
    name = String()
    member_ids = List(Integer())
    channel_ids = List(Integer())
    distribution = String(metadata={"description": "manual | round_robin | least_loaded"})
    capacity = Integer(allow_none=True, metadata={"description": "open conversations per agent"})
    business_hours = Dict(allow_none=True)


class TeamList(Schema):
    items = List(Nested(TeamOut))
    next_cursor = String(allow_none=True)


class TeamIn(Schema):
    name = String(required=True, validate=Length(1, 100))


class TeamPatch(Schema):
    name = String(validate=Length(1, 100))
    member_ids = List(Integer())
    channel_ids = List(Integer())
    distribution = String(metadata={"description": "manual | round_robin | least_loaded"})
    capacity = Integer(metadata={"description": "open conversations per agent (1 to 1000)"})
    business_hours = Dict(allow_none=True, metadata={
        "description": "weekly schedule, holidays and time zone (see README: work distribution)"})
