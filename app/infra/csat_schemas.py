"""API shapes of feedback after a conversation (CSAT): the account's settings
(/api/v1/settings/csat) and a conversation's answer (/api/v1/conversations/<id>/csat)."""
from apiflask import Schema
from apiflask.fields import Boolean, DateTime, Dict, Integer, Nested, String
from apiflask.validators import Range


class CsatSettingsOut(Schema):
    enabled = Boolean()
    throttle_days = Integer(metadata={"description": "ask a customer at most once per N days"})
    questions = Dict(keys=String(), values=String(),
                     metadata={"description": "the question per language (ru, pl, en)"})
    default_questions = Dict(keys=String(), values=String())


class CsatSettingsPatch(Schema):
    enabled = Boolean()
    throttle_days = Integer(validate=Range(0, 3650))
    questions = Dict(keys=String(), values=String(allow_none=True), metadata={
        "description": "language (ru, pl, en) -> question text; empty = the built-in text"})


class CsatSurveyOut(Schema):
    id = Integer()
    conversation_id = Integer()
    channel_id = Integer(allow_none=True)
    agent_id = Integer(allow_none=True)
    team_id = Integer(allow_none=True)
    language = String()
    asked_at = DateTime()
    score = Integer(allow_none=True, metadata={"description": "1 to 5; null: not answered"})
    comment = String(allow_none=True)
    answered_at = DateTime(allow_none=True)
    answered_via = String(allow_none=True, metadata={
        "description": "button | reply | link | widget"})


class CsatOut(Schema):
    asked = Boolean(metadata={"description": "was the customer asked for this conversation"})
    survey = Nested(CsatSurveyOut, allow_none=True)
