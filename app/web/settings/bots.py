"""`/settings/bots`: outside bots (issue 18): register one (name, URL, channels, time-out)
with its API token and signing secret shown once, pause or resume it, delete it, and see
the last events sent to bots. The same rules as `/api/v1/bots` (app/domain/bots.py)."""
from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import func, select

from app.domain.audit import audit
from app.domain.bots import DEFAULT_TIMEOUT, create_bot, holder, update_bot
from app.domain.errors import DomainError
from app.infra.models import Bot, BotDelivery, Channel, Conversation
from app.infra.state import db
from app.usecases import bots as bot_usecases
from app.web.settings import admin_required, bp, end_read


def N_(text: str) -> str:
    """Marks a string for extraction; translated when the page is rendered."""
    return text


FIELD_ERRORS = {"name": N_("Required, at most 100 characters."),
                "url": N_("An http(s) URL this server may call, e.g. https://bot.example.com/threadline."),
                "channel_ids": N_("Pick at least one channel."),
                "timeout_seconds": N_("A whole number of seconds from 1 to 60.")}


def _page(status: int = 200, new: dict | None = None, errors: dict | None = None,
          created: dict | None = None):
    rows = list(db.session.scalars(select(Bot).order_by(Bot.id)))
    channels = list(db.session.scalars(select(Channel).where(Channel.active.is_(True))
                                       .order_by(Channel.name)))
    held = dict(db.session.execute(
        select(Conversation.handled_by, func.count()).where(
            Conversation.handled_by.in_([holder(b) for b in rows] or ["-"]),
            Conversation.status != "resolved").group_by(Conversation.handled_by)).all())
    deliveries = list(db.session.scalars(select(BotDelivery)
                                         .order_by(BotDelivery.id.desc()).limit(30)))
    names = {b.id: b.name for b in rows}
    channel_names = {c.id: c.name for c in db.session.scalars(select(Channel))}
    end_read()
    return render_template("settings/bots.html", rows=rows, channels=channels, held=held,
                           holder=holder, deliveries=deliveries, names=names,
                           channel_names=channel_names,
                           new=new or {"channel_ids": [], "timeout_seconds": DEFAULT_TIMEOUT},
                           errors=errors or {}, created=created, section="bots"), status


@bp.get("/bots")
@admin_required
def bots():
    return _page()


@bp.post("/bots")
@admin_required
def bot_create():
    form = request.form
    timeout = form.get("timeout_seconds", "").strip()
    new = {"name": form.get("name", ""), "url": form.get("url", "").strip(),
           "channel_ids": [int(c) for c in form.getlist("channel_ids") if c.isdigit()],
           "timeout_seconds": int(timeout) if timeout.isdigit() else timeout}
    try:
        bot, token = create_bot(db.session, new)
    except DomainError as exc:
        db.session.rollback()
        return _page(422, new=new, errors={exc.field: _(FIELD_ERRORS[exc.field])
                                           if exc.field in FIELD_ERRORS else _("Invalid.")})
    audit(current_user._get_current_object(), "bot.create", "bot", bot.id,
          after={"name": bot.name, "url": bot.url, "channel_ids": bot.channel_ids})
    created = {"name": bot.name, "token": token, "secret": bot.secret}
    db.session.commit()
    return _page(201, created=created)


def _bot(bot_id: int) -> Bot:
    bot = db.session.get(Bot, bot_id)
    if bot is None:
        abort(404)
    return bot


@bp.post("/bots/<int:bot_id>/active")
@admin_required
def bot_active(bot_id: int):
    bot = _bot(bot_id)
    active = request.form.get("active") == "true"
    changed = update_bot(db.session, bot, {"active": active})
    if changed:
        if not active:
            bot_usecases.release_conversations(db.session, bot, "the bot was deactivated")
        audit(current_user._get_current_object(), "bot.update", "bot", bot.id,
              before={"active": not active}, after={"active": active})
    db.session.commit()
    flash(_("Bot resumed.") if active else _("Bot paused: its conversations went to people."),
          "ok")
    return redirect(url_for("settings.bots"))


@bp.post("/bots/<int:bot_id>/delete")
@admin_required
def bot_delete(bot_id: int):
    bot = _bot(bot_id)
    audit(current_user._get_current_object(), "bot.delete", "bot", bot.id,
          before={"name": bot.name, "url": bot.url})
    bot_usecases.delete_bot(db.session, bot)
    db.session.commit()
    flash(_("Bot deleted: its conversations went to people."), "ok")
    return redirect(url_for("settings.bots"))
