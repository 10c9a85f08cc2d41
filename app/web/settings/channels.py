"""`/settings/channels`: the list (status, last error, last inbound, message counts), a guided
form per kind, edit, disable, delete, secrets revealed on purpose and rotated."""
from __future__ import annotations

import re
from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select

from connectors import CHANNEL_KINDS, get_connector

from app.domain import channels as ops
from app.domain.audit import FieldError
from app.infra.models import Channel, KbArticle, Team
from app.infra.state import db
from app.web.settings import admin_required, bp, end_read, public_base, said



def N_(text: str) -> str:
    """Marks a string for extraction; the template translates it when it renders."""
    return text


# the answer bot's menu (issue 18), stored as the setting `bot_menu` {greeting, items}: edited
# as a greeting and one line per button, "Title | article:12", "Title | handoff",
# "Title | handoff:Support" (a team by name or number), "Title | text:the reply"
MENU_FIELDS = [
    ("bot_menu_greeting", N_("Bot menu: greeting"), "text",
     N_("the answer bot's first message in a new conversation, above the buttons; empty: no menu")),
    ("bot_menu_items", N_("Bot menu: buttons"), "menu",
     N_("one button per line, up to 10, titles up to 20 characters: “Delivery | article:12” "
        "answers with a knowledge-base article, “Talk to a person | handoff” or "
        "“Returns | handoff:Support” hands to people (of a team), “Hours | text:We work 9–18” "
        "sends the text")),
]
MENU_KEYS = ("bot_menu_greeting", "bot_menu_items")

# (key, label, input type, help); "select:a,b" offers choices
FIELDS: dict[str, list[tuple[str, Any, str, Any]]] = {
    "email": [
        ("imap_host", N_("IMAP server"), "text", N_("e.g. imap.example.com")),
        ("imap_port", N_("IMAP port"), "number", ""),
        ("imap_security", N_("IMAP security"), "select:tls,starttls,none", ""),
        ("imap_user", N_("IMAP user"), "text", ""),
        ("imap_password", N_("IMAP password"), "password", ""),
        ("imap_folders", N_("Folders"), "text", N_("comma-separated, e.g. INBOX")),
        ("smtp_host", N_("SMTP server"), "text", N_("e.g. smtp.example.com")),
        ("smtp_port", N_("SMTP port"), "number", ""),
        ("smtp_security", N_("SMTP security"), "select:starttls,tls,none", ""),
        ("smtp_user", N_("SMTP user"), "text", N_("empty: the IMAP user")),
        ("smtp_password", N_("SMTP password"), "password", N_("empty: the IMAP password")),
        ("from_address", N_("From address"), "email", ""),
        ("from_name", N_("From name"), "text", ""),
        ("answer_bot", N_("Answer bot"), "select:off,after_hours,always",
         N_("answers from the knowledge base before a person: outside the team's business hours, or always")),
        *MENU_FIELDS,
    ],
    "telegram": [
        ("token", N_("Bot token"), "password", N_("from @BotFather, like 123456789:AA…")),
        ("mode", N_("Receive updates by"), "select:polling,webhook",
         N_("polling needs no public address; webhook needs the public https URL below")),
        ("public_url", N_("Public URL of this server"), "url", N_("only for webhook mode, e.g. https://inbox.example.com")),
        ("api_base_url", N_("Bot API address"), "url", N_("leave as is unless you run your own Bot API server")),
        ("answer_bot", N_("Answer bot"), "select:off,after_hours,always",
         N_("answers from the knowledge base before a person: outside the team's business hours, or always")),
        *MENU_FIELDS,
    ],
    "whatsapp": [
        ("phone_number_id", N_("Phone number ID"), "text", N_("Meta dashboard → WhatsApp → API setup")),
        ("business_account_id", N_("Business account ID"), "text", ""),
        ("access_token", N_("Access token"), "password", N_("a permanent system user token")),
        ("app_secret", N_("App secret"), "password", N_("signs the webhooks (X-Hub-Signature-256)")),
        ("verify_token", N_("Verify token"), "text", N_("empty: one is generated for you")),
        ("api_base_url", N_("Graph API address"), "url", ""),
        ("answer_bot", N_("Answer bot"), "select:off,after_hours,always",
         N_("answers from the knowledge base before a person: outside the team's business hours, or always")),
        *MENU_FIELDS,
    ],
    "webchat": [
        ("allowed_origins", N_("Allowed origins"), "text", N_("the sites that may embed the chat, e.g. https://shop.example.com (space-separated)")),
        ("prechat", N_("Pre-chat form"), "select:false,true,email,phone", N_("ask the visitor for a name and an email or phone first")),
        ("business_hours", N_("Business hours"), "text", N_("e.g. mon-fri 09:00-18:00")),
        ("timezone", N_("Time zone"), "text", N_("e.g. Europe/Warsaw")),
        ("away_message", N_("Away message"), "text", ""),
        ("answer_bot", N_("Answer bot"), "select:off,after_hours,always",
         N_("answers from the knowledge base before a person: outside the team's business hours, or always")),
        *MENU_FIELDS,
    ],
    "crm": [],
}
KIND_NAMES = {"email": N_("Email"), "telegram": N_("Telegram"), "whatsapp": N_("WhatsApp"),
              "webchat": N_("Site chat"), "crm": N_("CRM / shop")}
CHOICE_NAMES = {"polling": N_("polling"), "webhook": N_("webhook"), "false": N_("off"),
                "true": N_("name + email or phone"), "email": N_("name + email"),
                "phone": N_("name + phone"), "off": N_("off"),
                "after_hours": N_("outside business hours"), "always": N_("always first")}


def _teams() -> list[Team]:
    return list(db.session.scalars(select(Team).order_by(Team.name)))


def menu_from_lines(greeting: str, lines: str) -> dict[str, Any] | None:
    """The form's greeting and "Title | action:target" lines as the `bot_menu` setting (the
    connector and app/domain/channels.py validate it; a line it cannot read gets an empty
    action, refused there with the line's number)."""
    items: list[dict[str, Any]] = []
    teams = {t.name.casefold(): t.id for t in _teams()}
    for line in lines.splitlines():
        if not line.strip():
            continue
        title, _bar, action = line.partition("|")
        kind, _colon, target = action.strip().partition(":")
        kind, target = kind.strip().lower(), target.strip()
        item: dict[str, Any] = {"title": title.strip(), "action": kind}
        if kind == "article":
            item["article_id"] = target.removeprefix("#")
        elif kind == "handoff" and target:
            item["team_id"] = target if target.isdigit() else teams.get(target.casefold(), target)
        elif kind == "text":
            item["text"] = target
        items.append(item)
    if not greeting.strip() and not items:
        return None
    return {"greeting": greeting.strip(), "items": items}


def menu_lines(menu: Any) -> str:
    """The `bot_menu` setting as the form's lines."""
    names = {t.id: t.name for t in _teams()}
    lines = []
    for item in (menu or {}).get("items") or [] if isinstance(menu, dict) else []:
        action = item.get("action")
        if action == "article":
            target = f"article:{item.get('article_id')}"
        elif action == "handoff":
            team = item.get("team_id")
            target = f"handoff:{names.get(team, team)}" if team is not None else "handoff"
        else:
            target = f"text:{item.get('text', '')}"
        lines.append(f"{item.get('title', '')} | {target}")
    return "\n".join(lines)


def _posted(kind: str) -> tuple[str, dict[str, Any], list[int]]:
    form = request.form
    settings: dict[str, Any] = {key: form.get(key, "").strip() for key, *_rest in FIELDS[kind]
                                if key in form and key not in MENU_KEYS}
    if any(key in form for key in MENU_KEYS):
        # None clears a menu on save (an empty value would keep the stored one)
        settings["bot_menu"] = menu_from_lines(form.get("bot_menu_greeting", ""),
                                               form.get("bot_menu_items", ""))
    team_ids = [int(t) for t in form.getlist("team_ids") if t.isdigit()]
    return form.get("name", "").strip(), settings, team_ids


def _render_form(kind: str, channel: Channel | None = None, values: dict | None = None,
                 errors: dict | None = None, status: int = 200, tested: str | None = None,
                 revealed: dict | None = None, created: dict | None = None):
    teams = _teams()
    stats = ops.channel_stats([channel.id]).get(channel.id, {}) if channel else {}
    if values is None:
        if channel is not None:
            values = {"name": channel.name, **ops.redacted(channel),
                      "team_ids": [t.id for t in channel.teams]}
            menu = channel.settings.get("bot_menu") or {}
            values["bot_menu_greeting"] = menu.get("greeting", "")
            values["bot_menu_items"] = menu_lines(menu)
        else:
            values = {**get_connector(kind).default_settings(), "team_ids": [t.id for t in teams]}
            for key in get_connector(kind).secret_keys:
                values.pop(key, None)  # generated secrets are made on save
    articles = list(db.session.execute(select(KbArticle.id, KbArticle.title, KbArticle.language)
                                       .where(KbArticle.published.is_(True))
                                       .order_by(KbArticle.id))) \
        if any(key == "bot_menu_items" for key, *_rest in FIELDS[kind]) else []
    end_read()
    return render_template(
        "settings/channel_form.html", menu_articles=articles, kind=kind, kind_name=_(KIND_NAMES[kind]), channel=channel,
        fields=FIELDS[kind], secret_keys=get_connector(kind).secret_keys, values=values,
        errors=errors or {}, teams=teams, tested=tested, revealed=revealed, created=created,
        choice_names=CHOICE_NAMES, base=public_base(), stats=stats,
        hook_url=ops.webhook_url(channel, public_base()) if channel else None,
        rotatable=ops.ROTATABLE.get(kind), section="channels"), status


def _field_errors(exc: FieldError) -> dict[str, str]:
    field = exc.field.removeprefix("settings.")
    if field.startswith("bot_menu.greeting"):
        return {"bot_menu_greeting": said(exc)}
    if field.startswith("bot_menu"):      # "bot_menu.items.2.title": the form's third line
        line = re.match(r"bot_menu\.items\.(\d+)", field)
        return {"bot_menu_items": _("Line %(n)s: %(reason)s", n=int(line.group(1)) + 1,
                                    reason=said(exc)) if line else said(exc)}
    if exc.message.startswith("missing setting(s)"):  # "...: imap_host, smtp_host": each
        missing = exc.message.split(": ", 1)[1].split(", ")
        return {key.strip(): said(exc) for key in missing}
    return {field: said(exc)}


@bp.get("/channels")
@admin_required
def channels():
    rows = ops.all_channels()
    stats = ops.channel_stats([c.id for c in rows])
    end_read()
    return render_template("settings/channels.html", rows=rows, stats=stats,
                           kinds=CHANNEL_KINDS, kind_names=KIND_NAMES, section="channels")


@bp.get("/channels/new/<kind>")
@admin_required
def channel_new(kind: str):
    if kind not in FIELDS:
        abort(404)
    return _render_form(kind)


@bp.post("/channels/new/<kind>")
@admin_required
def channel_create(kind: str):
    if kind not in FIELDS:
        abort(404)
    name, settings, team_ids = _posted(kind)
    values = {"name": name, **settings, "team_ids": team_ids,
              **{key: request.form.get(key, "") for key in MENU_KEYS}}
    if request.form.get("action") == "test":
        try:
            tested = ops.check_connection(kind, settings)
        except FieldError as exc:
            return _render_form(kind, values=values, errors=_field_errors(exc), status=422)
        finally:
            db.session.rollback()
        return _render_form(kind, values=values, tested=tested)
    try:
        channel = ops.create_channel(current_user._get_current_object(), kind, name, settings,
                                     team_ids)
        created = ops.secret_values(channel)
        db.session.commit()
    except FieldError as exc:
        db.session.rollback()
        return _render_form(kind, values=values, errors=_field_errors(exc), status=422)
    flash(_("Channel %(name)s added.", name=channel.name), "ok")
    # the secrets are shown on this answer only; afterwards an admin reveals them on purpose
    return _render_form(kind, channel=channel, created=created, status=201)


def _channel(channel_id: int) -> Channel:
    channel = db.session.get(Channel, channel_id)
    if channel is None:
        abort(404)
    return channel


@bp.get("/channels/<int:channel_id>")
@admin_required
def channel_edit(channel_id: int):
    channel = _channel(channel_id)
    return _render_form(channel.kind, channel=channel)


@bp.post("/channels/<int:channel_id>")
@admin_required
def channel_update(channel_id: int):
    channel = _channel(channel_id)
    kind = channel.kind
    name, settings, team_ids = _posted(kind)
    values = {"name": name, **settings, "team_ids": team_ids,
              **{key: request.form.get(key, "") for key in MENU_KEYS}}
    if request.form.get("action") == "test":
        merged = {**channel.settings, **{k: v for k, v in settings.items()
                                         if not (k in get_connector(kind).secret_keys and v in ("", ops.MASK))}}
        try:
            tested = ops.check_connection(kind, merged)
        except FieldError as exc:
            return _render_form(kind, channel=channel, values=values,
                                errors=_field_errors(exc), status=422)
        return _render_form(kind, channel=channel, values=values, tested=tested)
    try:
        ops.update_channel(current_user._get_current_object(), channel,
                           {"name": name, "settings": settings, "team_ids": team_ids})
        db.session.commit()
    except FieldError as exc:
        db.session.rollback()
        channel = _channel(channel_id)
        return _render_form(kind, channel=channel, values=values, errors=_field_errors(exc),
                            status=422)
    flash(_("Channel %(name)s saved.", name=channel.name), "ok")
    return redirect(url_for("settings.channel_edit", channel_id=channel.id))


@bp.post("/channels/<int:channel_id>/reveal")
@admin_required
def channel_reveal(channel_id: int):
    channel = _channel(channel_id)
    revealed = ops.reveal_secrets(current_user._get_current_object(), channel)
    db.session.commit()
    return _render_form(channel.kind, channel=channel, revealed=revealed)


@bp.post("/channels/<int:channel_id>/rotate")
@admin_required
def channel_rotate(channel_id: int):
    channel = _channel(channel_id)
    try:
        key, value = ops.rotate_secret(current_user._get_current_object(), channel)
        db.session.commit()
    except FieldError as exc:
        db.session.rollback()
        flash(said(exc), "error")
        return redirect(url_for("settings.channel_edit", channel_id=channel_id))
    flash(_("A new secret was made; the old one no longer works."), "ok")
    return _render_form(channel.kind, channel=channel, revealed={key: value})


@bp.post("/channels/<int:channel_id>/active")
@admin_required
def channel_active(channel_id: int):
    channel = _channel(channel_id)
    active = request.form.get("active") == "true"
    ops.update_channel(current_user._get_current_object(), channel, {"active": active})
    db.session.commit()
    flash(_("Channel %(name)s enabled.", name=channel.name) if active
          else _("Channel %(name)s disabled.", name=channel.name), "ok")
    return redirect(url_for("settings.channels"))


@bp.post("/channels/<int:channel_id>/delete")
@admin_required
def channel_delete(channel_id: int):
    channel = _channel(channel_id)
    name = channel.name
    outcome = ops.delete_channel(current_user._get_current_object(), channel)
    db.session.commit()
    if outcome == "deleted":
        flash(_("Channel %(name)s deleted.", name=name), "ok")
    else:
        flash(_("Channel %(name)s has messages: it was disabled, not deleted.", name=name), "ok")
    return redirect(url_for("settings.channels"))
