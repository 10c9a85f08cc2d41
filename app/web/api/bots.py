"""Outside bots (issue 18): `/api/v1/bots` (admins: register, list, change, delete), and the
conversation actions around them: `/conversations/<id>/handoff` (the bot's own token) and
`/conversations/<id>/return-to-bot` (agents)."""
from __future__ import annotations

from apiflask import Schema, abort
from apiflask.fields import Boolean, DateTime, List, Nested, Raw, String
from apiflask.validators import Length
from sqlalchemy import select

from app.domain.audit import audit
from app.domain.bots import create_bot, holder, update_bot
from app.infra.fields import Integer
from app.infra.models import Bot
from app.infra.schemas import ConversationOut
from app.infra.state import db
from app.usecases import bots as bot_usecases
from app.web.api.base import bp, current_agent, require_admin, token_auth
from app.web.api.conversations import acting_bot, get_visible_conversation


class BotIn(Schema):
    # types are checked by the domain (app/domain/bots.py), which names the field and why
    name = Raw(required=True)
    url = Raw(required=True)
    channel_ids = Raw(required=True)
    timeout_seconds = Raw()


class BotPatch(Schema):
    name = Raw()
    url = Raw()
    channel_ids = Raw()
    timeout_seconds = Raw()
    active = Raw()


class BotOut(Schema):
    id = Integer()
    name = String()
    url = String()
    channel_ids = List(Integer())
    active = Boolean()
    timeout_seconds = Integer()
    agent_id = Integer()
    handled_by = String(metadata={"description": "the conversations' handled_by value"})
    created_at = DateTime()


class BotCreatedOut(BotOut):
    token = String(metadata={"description": "the bot's API token, shown only this once"})
    secret = String(metadata={"description": "signs the events sent to the bot; shown once"})


class BotPage(Schema):
    items = List(Nested(BotOut))
    next_cursor = String(allow_none=True)


class HandoffIn(Schema):
    reason = String(required=True, validate=Length(1, 500))
    team_id = Integer(load_default=None, allow_none=True)


def _out(bot: Bot) -> dict:
    return {"id": bot.id, "name": bot.name, "url": bot.url, "channel_ids": bot.channel_ids,
            "active": bot.active, "timeout_seconds": bot.timeout_seconds,
            "agent_id": bot.agent_id, "handled_by": holder(bot),
            "created_at": bot.created_at}


def _bot(bot_id: int) -> Bot:
    bot = db.session.get(Bot, bot_id)
    if bot is None:
        abort(404, "bot not found")
    return bot


@bp.get("/bots")
@bp.auth_required(token_auth)
@bp.output(BotPage)
@bp.doc(summary="Outside bots (admins)")
def list_bots():
    require_admin()
    rows = db.session.scalars(select(Bot).order_by(Bot.id))
    return {"items": [_out(b) for b in rows], "next_cursor": None}


@bp.post("/bots")
@bp.auth_required(token_auth)
@bp.input(BotIn, arg_name="data")
@bp.output(BotCreatedOut, status_code=201)
@bp.doc(summary="Register an outside bot: answers its API token and signing secret, once")
def register_bot(data):
    admin = require_admin()
    bot, token = create_bot(db.session, data)
    audit(admin, "bot.create", "bot", bot.id,
          after={"name": bot.name, "url": bot.url, "channel_ids": bot.channel_ids})
    db.session.commit()
    return {**_out(bot), "token": token, "secret": bot.secret}


@bp.get("/bots/<int:bot_id>")
@bp.auth_required(token_auth)
@bp.output(BotOut)
def get_bot(bot_id: int):
    require_admin()
    return _out(_bot(bot_id))


@bp.patch("/bots/<int:bot_id>")
@bp.auth_required(token_auth)
@bp.input(BotPatch, arg_name="data")
@bp.output(BotOut)
@bp.doc(summary="Change a bot; `active: false` hands the conversations it holds to people")
def patch_bot(bot_id: int, data):
    admin = require_admin()
    bot = _bot(bot_id)
    changed = update_bot(db.session, bot, data)
    if changed.get("active") == (True, False):
        bot_usecases.release_conversations(db.session, bot, "the bot was deactivated")
    elif "channel_ids" in changed:
        bot_usecases.release_conversations(db.session, bot, "the channel was taken from the bot",
                                           keep_channels=bot.channel_ids)
    if changed:
        audit(admin, "bot.update", "bot", bot.id,
              before={k: v[0] for k, v in changed.items()},
              after={k: v[1] for k, v in changed.items()})
    db.session.commit()
    return _out(bot)


@bp.delete("/bots/<int:bot_id>")
@bp.auth_required(token_auth)
@bp.output({}, status_code=204)
@bp.doc(summary="Delete a bot: its conversations go to people, its token stops working")
def remove_bot(bot_id: int):
    admin = require_admin()
    bot = _bot(bot_id)
    audit(admin, "bot.delete", "bot", bot.id, before={"name": bot.name, "url": bot.url})
    bot_usecases.delete_bot(db.session, bot)
    db.session.commit()
    return ""


@bp.post("/conversations/<int:conversation_id>/handoff")
@bp.auth_required(token_auth)
@bp.input(HandoffIn, arg_name="data")
@bp.output(ConversationOut)
@bp.doc(summary="The bot hands the conversation to people (its team's distribution), with "
                "a note saying why")
def bot_handoff(conversation_id: int, data):
    conversation = get_visible_conversation(conversation_id)
    bot = acting_bot(conversation)
    if bot is None:
        abort(403, "only the bot holding the conversation hands it off")
    bot_usecases.bot_handoff(db.session, conversation, bot, data["reason"].strip(),
                             team_id=data["team_id"])
    db.session.commit()
    return conversation


@bp.post("/conversations/<int:conversation_id>/return-to-bot")
@bp.auth_required(token_auth)
@bp.output(ConversationOut)
@bp.doc(summary="Give the conversation back to the outside bot serving its channel")
def return_to_bot(conversation_id: int):
    conversation = get_visible_conversation(conversation_id)
    agent = current_agent()
    if agent.role == "bot":
        abort(403, "a bot cannot return a conversation to a bot")
    bot_usecases.return_to_bot(db.session, conversation, agent)
    db.session.commit()
    return conversation
