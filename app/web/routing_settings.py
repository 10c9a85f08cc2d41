"""Admin pages of work distribution (issue 17): `/settings/rules` (automation rules, the
standard greeting / away / distribute switches, each team's distribution, capacity and
business hours) and `/settings/sla` (SLA policies and recent breaches). Plain forms (session +
CSRF); the same checks as the JSON API (app/web/api/routing.py). Agents get a 403 page."""
from __future__ import annotations

import functools
from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required
from sqlalchemy import select

from app.domain import business_hours
from app.domain import rules as rule_domain
from app.infra.models import (
    Agent,
    AutomationRule,
    CannedReply,
    Channel,
    SlaBreach,
    SlaPolicy,
    Team,
    WebhookEndpoint,
)
from app.infra.state import db
from app.usecases import distribution
from app.usecases.automation import install_standard_rules

bp = Blueprint("routing_settings", __name__, url_prefix="/settings")


def admin_required(view):
    """Signed in (else the login page), and an admin (else an HTML 403 page)."""
    @functools.wraps(view)
    @login_required
    def wrapper(*args, **kwargs):
        if not current_user.is_admin:
            return render_template("settings_forbidden.html"), 403
        return view(*args, **kwargs)
    return wrapper


def _labels() -> dict[str, Any]:
    return {
        "events": {
            "conversation_created": _("A conversation is created"),
            "customer_message": _("The customer writes"),
            "conversation_reopened": _("A conversation is reopened"),
            "agent_reply": _("An agent replies"),
            "conversation_idle": _("A conversation is idle"),
            "status_changed": _("The status changes"),
            "sla_warning": _("An SLA target is about to be missed"),
        },
        "modes": {"manual": _("Manual"), "round_robin": _("Round-robin"),
                  "least_loaded": _("Least loaded")},
        "priorities": {"low": _("Low"), "normal": _("Normal"), "high": _("High"),
                       "urgent": _("Urgent")},
        "languages": {"ru": _("Russian"), "pl": _("Polish"), "en": _("English")},
        "days": dict(zip(business_hours.DAYS, (_("Mon"), _("Tue"), _("Wed"), _("Thu"),
                                               _("Fri"), _("Sat"), _("Sun")))),
    }


def _ids(name: str) -> list[int]:
    return [int(v) for v in request.form.getlist(name) if v.isdigit()]


def _int(name: str) -> int | None:
    value = request.form.get(name, "").strip()
    return int(value) if value.isdigit() else None


def rule_from_form() -> dict[str, Any]:
    form = request.form
    conditions: list[dict[str, Any]] = []
    if _ids("channel"):
        conditions.append({"type": "channel", "values": _ids("channel")})
    if _ids("team"):
        conditions.append({"type": "team", "values": _ids("team")})
    languages = [v for v in form.getlist("language") if v in rule_domain.LANGUAGES]
    if languages:
        conditions.append({"type": "language", "values": languages})
    words = [w.strip() for w in form.get("words", "").split(",") if w.strip()]
    if words:
        conditions.append({"type": "text_contains", "words": words})
    tags = [t.strip() for t in form.get("tags", "").split(",") if t.strip()]
    if tags:
        conditions.append({"type": "customer_tag", "values": tags})
    if form.get("open_deal"):
        conditions.append({"type": "open_deal"})
    if _int("order_days"):
        conditions.append({"type": "recent_order", "days": _int("order_days")})
    if form.get("hours") in ("open", "closed"):
        conditions.append({"type": "business_hours", "value": form["hours"]})
    priorities = [p for p in form.getlist("priority") if p in rule_domain.PRIORITIES]
    if priorities:
        conditions.append({"type": "priority", "values": priorities})
    actions: list[dict[str, Any]] = []
    if _int("assign_team") is not None:
        actions.append({"type": "assign_team", "team_id": _int("assign_team")})
    if form.get("distribute"):
        actions.append({"type": "distribute"})
    if _int("assign_agent") is not None:
        actions.append({"type": "assign_agent", "agent_id": _int("assign_agent")})
    if form.get("add_label", "").strip():
        actions.append({"type": "add_label", "label": form["add_label"].strip()})
    if form.get("set_priority") in rule_domain.PRIORITIES:
        actions.append({"type": "set_priority", "priority": form["set_priority"]})
    if _int("auto_reply") is not None:
        actions.append({"type": "auto_reply", "canned_reply_id": _int("auto_reply")})
    if form.get("note", "").strip():
        actions.append({"type": "add_note", "text": form["note"].strip()})
    if _int("snooze") is not None:
        actions.append({"type": "snooze", "minutes": _int("snooze")})
    if form.get("resolve"):
        actions.append({"type": "resolve"})
    if _int("webhook") is not None:
        actions.append({"type": "webhook", "endpoint_id": _int("webhook")})
    event = form.get("event", "")
    options = {"minutes": _int("idle_minutes")} if event == "conversation_idle" else {}
    return {"name": form.get("name", "").strip(), "event": event, "options": options,
            "conditions": conditions, "actions": actions,
            "enabled": bool(form.get("enabled"))}


def _rules_page(status: int = 200, form: dict[str, Any] | None = None):
    install_standard_rules(db.session)   # a database made before issue 17 gets them too
    db.session.commit()
    rules = list(db.session.scalars(select(AutomationRule).order_by(AutomationRule.position,
                                                                    AutomationRule.id)))
    teams = list(db.session.scalars(select(Team).order_by(Team.name)))
    webhooks = list(db.session.scalars(select(WebhookEndpoint).where(
        WebhookEndpoint.active.is_(True)).order_by(WebhookEndpoint.id)))
    page = render_template(
        "settings_rules.html", rules=rules, teams=teams,
        channels=list(db.session.scalars(select(Channel).where(Channel.active.is_(True))
                                         .order_by(Channel.name))),
        agents=list(db.session.scalars(select(Agent).where(Agent.active.is_(True))
                                       .order_by(Agent.name))),
        canned=list(db.session.scalars(select(CannedReply).order_by(CannedReply.shortcut))),
        labels=_labels(), form=form or {}, describe=describe,
        names={"teams": {t.id: t.name for t in teams},
               "channels": {c.id: c.name for c in db.session.scalars(select(Channel))},
               "agents": {a.id: a.name for a in db.session.scalars(select(Agent))},
               "canned": {c.id: c.shortcut for c in db.session.scalars(select(CannedReply))},
               "webhooks": {w.id: w.description or w.url for w in webhooks}},
        webhooks=webhooks)
    db.session.commit()
    return page, status


def describe(rule: AutomationRule, names: dict[str, dict[int, str]]) -> tuple[list[str], list[str]]:
    """The rule's IF and THEN as short phrases for the list."""
    labels = _labels()
    ifs, thens = [], []
    for c in rule.conditions or []:
        kind, values = c.get("type"), c.get("values") or []
        if kind == "channel":
            ifs.append(_("channel: %(v)s", v=", ".join(names["channels"].get(v, f"#{v}") for v in values)))
        elif kind == "team":
            ifs.append(_("team: %(v)s", v=", ".join(names["teams"].get(v, f"#{v}") for v in values)))
        elif kind == "language":
            ifs.append(_("language: %(v)s", v=", ".join(labels["languages"].get(v, v) for v in values)))
        elif kind == "text_contains":
            ifs.append(_("text contains: %(v)s", v=", ".join(c.get("words") or [])))
        elif kind == "customer_tag":
            ifs.append(_("customer tag: %(v)s", v=", ".join(map(str, values))))
        elif kind == "business_hours":
            ifs.append(_("within business hours") if c.get("value", "open") == "open"
                       else _("outside business hours"))
        elif kind == "open_deal":
            ifs.append(_("the customer has an open deal"))
        elif kind == "recent_order":
            ifs.append(_("an order in the last %(v)s days", v=c.get("days")))
        elif kind == "priority":
            ifs.append(_("priority: %(v)s", v=", ".join(labels["priorities"].get(v, v) for v in values)))
        else:
            ifs.append(f"{kind}: {', '.join(map(str, values))}")
    for a in rule.actions or []:
        kind = a.get("type")
        if kind == "assign_team":
            thens.append(_("move to team %(v)s", v=names["teams"].get(a.get("team_id"), f"#{a.get('team_id')}")))
        elif kind == "distribute":
            thens.append(_("assign by the team's distribution"))
        elif kind == "assign_agent":
            thens.append(_("assign to %(v)s", v=names["agents"].get(a.get("agent_id"), f"#{a.get('agent_id')}")))
        elif kind == "add_label":
            thens.append(_("add label %(v)s", v=a.get("label")))
        elif kind == "set_priority":
            thens.append(_("set priority %(v)s", v=labels["priorities"].get(a.get("priority"), a.get("priority"))))
        elif kind == "auto_reply":
            shortcut = names["canned"].get(a.get("canned_reply_id"))
            thens.append(_("auto-reply /%(v)s", v=shortcut) if shortcut
                         else _("auto-reply (missing canned reply)"))
        elif kind == "add_note":
            thens.append(_("add a note"))
        elif kind == "snooze":
            thens.append(_("snooze %(v)s min", v=a.get("minutes")))
        elif kind == "resolve":
            thens.append(_("resolve"))
        elif kind == "webhook":
            thens.append(_("call the webhook %(v)s", v=names["webhooks"].get(
                a.get("endpoint_id"), f"#{a.get('endpoint_id')}")))
        else:
            thens.append(str(kind))
    return ifs, thens


@bp.get("/rules")
@admin_required
def rules():
    return _rules_page()


@bp.post("/rules")
@admin_required
def create_rule():
    data = rule_from_form()
    errors = rule_domain.validate_rule(data["event"], data["options"], data["conditions"],
                                       data["actions"])
    if not data["name"]:
        errors["name"] = "required"
    if errors:
        if "name" in errors:
            flash(_("The rule needs a name."), "error")
        if "actions" in errors:
            flash(_("Choose at least one action."), "error")
        if "options" in errors:
            flash(_("An idle rule needs the number of minutes."), "error")
        for field in errors:
            if field not in ("name", "actions", "options"):
                flash(f"{field}: {errors[field]}", "error")
        return _rules_page(422, form=request.form)
    last = db.session.scalar(select(AutomationRule.position)
                             .order_by(AutomationRule.position.desc()).limit(1))
    db.session.add(AutomationRule(position=(last or 0) + 1, **data))
    db.session.commit()
    flash(_("Rule “%(name)s” added.", name=data["name"]), "ok")
    return redirect(url_for("routing_settings.rules"))


@bp.post("/rules/<int:rule_id>/toggle")
@admin_required
def toggle_rule(rule_id: int):
    rule = db.session.get(AutomationRule, rule_id) or abort(404)
    rule.enabled = not rule.enabled
    db.session.commit()
    flash((_("Rule “%(name)s” is on.", name=rule.name) if rule.enabled
           else _("Rule “%(name)s” is off.", name=rule.name)), "ok")
    return redirect(url_for("routing_settings.rules"))


@bp.post("/rules/<int:rule_id>/move")
@admin_required
def move_rule(rule_id: int):
    ordered = list(db.session.scalars(select(AutomationRule).order_by(AutomationRule.position,
                                                                      AutomationRule.id)))
    index = next((i for i, r in enumerate(ordered) if r.id == rule_id), None)
    if index is None:
        abort(404)
    other = index - 1 if request.form.get("direction") == "up" else index + 1
    if 0 <= other < len(ordered):
        ordered[index], ordered[other] = ordered[other], ordered[index]
    for position, rule in enumerate(ordered):
        rule.position = position
    db.session.commit()
    return redirect(url_for("routing_settings.rules"))


@bp.post("/rules/<int:rule_id>/delete")
@admin_required
def delete_rule(rule_id: int):
    rule = db.session.get(AutomationRule, rule_id) or abort(404)
    name = rule.name
    db.session.delete(rule)
    db.session.commit()
    flash(_("Rule “%(name)s” deleted.", name=name), "ok")
    return redirect(url_for("routing_settings.rules"))


@bp.post("/teams/<int:team_id>/distribution")
@admin_required
def team_distribution(team_id: int):
    team = db.session.get(Team, team_id) or abort(404)
    form = request.form
    hours: dict[str, Any] | None = None
    days = {}
    for day in business_hours.DAYS:
        text = form.get(f"day_{day}", "").strip()
        if text:
            days[day] = [[part.strip() for part in window.split("-", 1)]
                         for window in text.replace(";", ",").split(",") if window.strip()]
    if days or form.get("timezone", "").strip():
        hours = {"timezone": form.get("timezone", "").strip() or "UTC", "days": days,
                 "holidays": [h.strip() for h in form.get("holidays", "").replace(";", ",")
                              .split(",") if h.strip()]}
    errors = distribution.update_team_routing(db.session, team, {
        "distribution": form.get("distribution", "manual"),
        "capacity": _int("capacity") or 0, "business_hours": hours})
    if errors:
        db.session.rollback()
        for field, reason in errors.items():
            flash(f"{team.name}: {field}: {reason}", "error")
        return _rules_page(422)
    db.session.commit()
    flash(_("Team %(name)s saved.", name=team.name), "ok")
    return redirect(url_for("routing_settings.rules") + f"#team-{team.id}")


# --- SLA ----------------------------------------------------------------------------------

@bp.get("/sla")
@admin_required
def sla():
    policies = list(db.session.scalars(select(SlaPolicy).order_by(SlaPolicy.id)))
    breaches = list(db.session.scalars(select(SlaBreach).order_by(SlaBreach.id.desc())
                                       .limit(50)))
    teams = list(db.session.scalars(select(Team).order_by(Team.name)))
    page = render_template("settings_sla.html", policies=policies, breaches=breaches,
                           teams=teams, team_names={t.id: t.name for t in teams},
                           labels=_labels())
    db.session.commit()
    return page


@bp.post("/sla")
@admin_required
def create_sla():
    form = request.form
    name = form.get("name", "").strip()
    priority = form.get("priority") or None
    first, resolution = _int("first_response_minutes"), _int("resolution_minutes")
    team_id = _int("team_id")
    next_response = _int("next_response_minutes")
    if not name or (first is None and resolution is None and next_response is None) or (
            priority is not None and priority not in rule_domain.PRIORITIES) or (
            team_id is not None and db.session.get(Team, team_id) is None):
        flash(_("A policy needs a name and a first response or resolution target."), "error")
        return redirect(url_for("routing_settings.sla"))
    db.session.add(SlaPolicy(name=name, team_id=team_id, priority=priority,
                             first_response_minutes=first or None,
                             resolution_minutes=resolution or None,
                             next_response_minutes=next_response or None,
                             warn_percent=min(max(_int("warn_percent") or 80, 1), 100),
                             enabled=True))
    db.session.commit()
    flash(_("SLA policy “%(name)s” added.", name=name), "ok")
    return redirect(url_for("routing_settings.sla"))


@bp.post("/sla/<int:policy_id>/delete")
@admin_required
def delete_sla(policy_id: int):
    policy = db.session.get(SlaPolicy, policy_id) or abort(404)
    db.session.delete(policy)
    db.session.commit()
    flash(_("SLA policy deleted."), "ok")
    return redirect(url_for("routing_settings.sla"))
