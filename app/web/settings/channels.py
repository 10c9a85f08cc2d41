"""`/settings/channels`: the list (status, last error, last inbound, message counts), a guided
form per kind, edit, disable, delete, secrets revealed on purpose and rotated."""
from __future__ import annotations

from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select

from connectors import CHANNEL_KINDS, get_connector

from app.domain import channels as ops
from app.domain.audit import FieldError
from app.infra.models import Channel, Team
from app.infra.state import db
from app.web.settings import admin_required, bp, end_read, public_base, said



def N_(text: str) -> str:
    """Marks a string for extraction; the template translates it when it renders."""
    return text


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
    ],
    "telegram": [
        ("token", N_("Bot token"), "password", N_("from @BotFather, like 123456789:AA…")),
        ("mode", N_("Receive updates by"), "select:polling,webhook",
         N_("polling needs no public address; webhook needs the public https URL below")),
        ("public_url", N_("Public URL of this server"), "url", N_("only for webhook mode, e.g. https://inbox.example.com")),
        ("api_base_url", N_("Bot API address"), "url", N_("leave as is unless you run your own Bot API server")),
        ("answer_bot", N_("Answer bot"), "select:off,after_hours,always",
         N_("answers from the knowledge base before a person: outside the team's business hours, or always")),
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
    ],
    "webchat": [
        ("allowed_origins", N_("Allowed origins"), "text", N_("the sites that may embed the chat, e.g. https://shop.example.com (space-separated)")),
        ("prechat", N_("Pre-chat form"), "select:false,true,email,phone", N_("ask the visitor for a name and an email or phone first")),
        ("business_hours", N_("Business hours"), "text", N_("e.g. mon-fri 09:00-18:00")),
        ("timezone", N_("Time zone"), "text", N_("e.g. Europe/Warsaw")),
        ("away_message", N_("Away message"), "text", ""),
        ("answer_bot", N_("Answer bot"), "select:off,after_hours,always",
         N_("answers from the knowledge base before a person: outside the team's business hours, or always")),
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


def _posted(kind: str) -> tuple[str, dict[str, str], list[int]]:
    form = request.form
    settings = {key: form.get(key, "").strip() for key, *_rest in FIELDS[kind] if key in form}
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
        else:
            values = {**get_connector(kind).default_settings(), "team_ids": [t.id for t in teams]}
            for key in get_connector(kind).secret_keys:
                values.pop(key, None)  # generated secrets are made on save
    end_read()
    return render_template(
        "settings/channel_form.html", kind=kind, kind_name=_(KIND_NAMES[kind]), channel=channel,
        fields=FIELDS[kind], secret_keys=get_connector(kind).secret_keys, values=values,
        errors=errors or {}, teams=teams, tested=tested, revealed=revealed, created=created,
        choice_names=CHOICE_NAMES, base=public_base(), stats=stats,
        hook_url=ops.webhook_url(channel, public_base()) if channel else None,
        rotatable=ops.ROTATABLE.get(kind), section="channels"), status


def _field_errors(exc: FieldError) -> dict[str, str]:
    field = exc.field.removeprefix("settings.")
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
    values = {"name": name, **settings, "team_ids": team_ids}
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
    values = {"name": name, **settings, "team_ids": team_ids}
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
