"""/api/v1 for work distribution (issue 17): availability, team distribution settings,
automation rules, a conversation's activity, SLA policies."""
from __future__ import annotations

from typing import Any

from apiflask import abort
from flask import request
from sqlalchemy import select

from app.domain import rules as rule_domain
from app.domain.access import can_see_conversation
from app.infra.models import (
    Agent,
    AutomationRule,
    CannedReply,
    Conversation,
    ConversationActivity,
    SlaPolicy,
    Team,
)
from app.infra.state import db
from app.usecases import distribution
from app.web.api import bp, current_agent, token_auth


def _require_admin() -> None:
    if not current_agent().is_admin:
        abort(403, "admins only")


def _body() -> dict[str, Any]:
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        abort(422, "a JSON object is required", detail={"json": {"_schema": ["a JSON object"]}})
    return data


def _invalid(errors: dict[str, str]):
    field = next(iter(errors))
    abort(422, f"{field}: {errors[field]}",
          detail={"json": {key: [reason] for key, reason in errors.items()}})


# --- availability ------------------------------------------------------------------------

@bp.put("/agents/me/availability")
@bp.auth_required(token_auth)
@bp.doc(summary="Set your availability: online | away | offline (auto: online while connected)")
def put_availability():
    data = _body()
    agent = db.session.get(Agent, current_agent().id)
    try:
        distribution.set_availability(db.session, agent, data.get("status"))
    except ValueError as exc:
        _invalid({"status": str(exc)})
    db.session.commit()
    return distribution.availability_dict(agent)


@bp.get("/agents/me/availability")
@bp.auth_required(token_auth)
def get_availability():
    agent = db.session.get(Agent, current_agent().id)
    return distribution.availability_dict(agent)


@bp.get("/agents/availability")
@bp.auth_required(token_auth)
@bp.doc(summary="Every active agent's availability and open conversations (load)")
def list_availability():
    agents = list(db.session.scalars(select(Agent).where(Agent.active.is_(True))
                                     .order_by(Agent.name)))
    load = distribution.loads(db.session, [a.id for a in agents])
    return {"items": [{**distribution.availability_dict(a), "open": load[a.id],
                       "capacity": a.capacity} for a in agents], "next_cursor": None}


@bp.patch("/agents/<int:agent_id>/routing")
@bp.auth_required(token_auth)
@bp.doc(summary="An agent's own capacity (null: the team's default)")
def patch_agent_routing(agent_id: int):
    _require_admin()
    agent = db.session.get(Agent, agent_id) or abort(404)
    data = _body()
    capacity = data.get("capacity")
    if capacity is not None and not (isinstance(capacity, int) and not isinstance(capacity, bool)
                                     and 1 <= capacity <= 1000):
        _invalid({"capacity": "a whole number from 1 to 1000, or null"})
    agent.capacity = capacity
    db.session.commit()
    return {"agent_id": agent.id, "capacity": agent.capacity}


# --- teams: distribution, capacity, business hours -----------------------------------------

@bp.get("/teams/<int:team_id>/routing")
@bp.auth_required(token_auth)
def get_team_routing(team_id: int):
    team = db.session.get(Team, team_id) or abort(404)
    return distribution.team_routing(team)


@bp.patch("/teams/<int:team_id>/routing")
@bp.auth_required(token_auth)
@bp.doc(summary="distribution: manual|round_robin|least_loaded, capacity, business_hours")
def patch_team_routing(team_id: int):
    _require_admin()
    team = db.session.get(Team, team_id) or abort(404)
    errors = distribution.update_team_routing(db.session, team, _body())
    if errors:
        db.session.rollback()
        _invalid(errors)
    db.session.commit()
    return distribution.team_routing(team)


# --- rules -------------------------------------------------------------------------------

def rule_dict(rule: AutomationRule) -> dict[str, Any]:
    return {"id": rule.id, "name": rule.name, "event": rule.event, "options": rule.options or {},
            "conditions": rule.conditions or [], "actions": rule.actions or [],
            "enabled": rule.enabled, "position": rule.position, "standard": rule.standard,
            "fired_count": rule.fired_count, "failed_count": rule.failed_count,
            "last_error": rule.last_error,
            "created_at": rule.created_at.isoformat() if rule.created_at else None}


def check_rule(data: dict[str, Any], rule: AutomationRule | None = None) -> dict[str, Any]:
    """The fields of a POST or PATCH, checked (422 on the first problem)."""
    merged = {"name": rule.name if rule else None, "event": rule.event if rule else None,
              "options": rule.options if rule else {}, "conditions": rule.conditions if rule
              else [], "actions": rule.actions if rule else [],
              "enabled": rule.enabled if rule else True,
              "position": rule.position if rule else None}
    merged.update({k: v for k, v in data.items() if k in merged})
    errors = {}
    if not isinstance(merged["name"], str) or not merged["name"].strip() \
            or len(merged["name"]) > 200:
        errors["name"] = "required, at most 200 characters"
    if not isinstance(merged["enabled"], bool):
        errors["enabled"] = "true or false"
    if merged["position"] is not None and not isinstance(merged["position"], int):
        errors["position"] = "a whole number"
    errors.update(rule_domain.validate_rule(merged["event"], merged["options"] or {},
                                            merged["conditions"], merged["actions"]))
    for n, action in enumerate(merged["actions"] if isinstance(merged["actions"], list) else []):
        if not isinstance(action, dict):
            continue
        if action.get("type") == "assign_team" and isinstance(action.get("team_id"), int) \
                and db.session.get(Team, action["team_id"]) is None:
            errors[f"actions.{n}.team_id"] = "no such team"
        if action.get("type") == "assign_agent" and isinstance(action.get("agent_id"), int) \
                and db.session.get(Agent, action["agent_id"]) is None:
            errors[f"actions.{n}.agent_id"] = "no such agent"
        if action.get("type") == "auto_reply" and isinstance(action.get("canned_reply_id"), int) \
                and db.session.get(CannedReply, action["canned_reply_id"]) is None:
            errors[f"actions.{n}.canned_reply_id"] = "no such canned reply"
    if errors:
        _invalid(errors)
    merged["name"] = merged["name"].strip()
    merged["options"] = merged["options"] or {}
    return merged


@bp.get("/automation/rules")
@bp.auth_required(token_auth)
@bp.doc(summary="Automation rules, in the order they run")
def list_rules():
    _require_admin()
    found = db.session.scalars(select(AutomationRule)
                               .order_by(AutomationRule.position, AutomationRule.id))
    return {"items": [rule_dict(r) for r in found], "next_cursor": None}


@bp.post("/automation/rules")
@bp.auth_required(token_auth)
@bp.doc(summary="Add a rule: {name, event, options, conditions, actions, enabled}")
def create_rule():
    _require_admin()
    data = check_rule(_body())
    if data["position"] is None:
        last = db.session.scalar(select(AutomationRule.position)
                                 .order_by(AutomationRule.position.desc()).limit(1))
        data["position"] = (last or 0) + 1
    rule = AutomationRule(**data)
    db.session.add(rule)
    db.session.commit()
    return rule_dict(rule), 201


@bp.get("/automation/rules/<int:rule_id>")
@bp.auth_required(token_auth)
def get_rule(rule_id: int):
    _require_admin()
    return rule_dict(db.session.get(AutomationRule, rule_id) or abort(404))


@bp.patch("/automation/rules/<int:rule_id>")
@bp.auth_required(token_auth)
@bp.doc(summary="Change a rule (enabled: the one switch of a standard rule)")
def patch_rule(rule_id: int):
    _require_admin()
    rule = db.session.get(AutomationRule, rule_id) or abort(404)
    data = check_rule(_body(), rule)
    for key, value in data.items():
        if value is not None or key != "position":
            setattr(rule, key, value)
    db.session.commit()
    return rule_dict(rule)


@bp.get("/automation/rules/<int:rule_id>/log")
@bp.auth_required(token_auth)
@bp.doc(summary="The rule's log: its latest firings and failures, newest first")
def rule_log(rule_id: int):
    _require_admin()
    db.session.get(AutomationRule, rule_id) or abort(404)
    entries = db.session.scalars(select(ConversationActivity).where(
        ConversationActivity.rule_id == rule_id, ConversationActivity.kind != "checked")
        .order_by(ConversationActivity.id.desc()).limit(200))
    return {"items": [distribution.activity_dict(e) for e in entries], "next_cursor": None}


@bp.delete("/automation/rules/<int:rule_id>")
@bp.auth_required(token_auth)
def delete_rule(rule_id: int):
    _require_admin()
    rule = db.session.get(AutomationRule, rule_id) or abort(404)
    db.session.delete(rule)
    db.session.commit()
    return "", 204


# --- activity ----------------------------------------------------------------------------

@bp.get("/conversations/<int:conversation_id>/activity")
@bp.auth_required(token_auth)
@bp.doc(summary="Who or which rule did what to the conversation, when and why (oldest first)")
def conversation_activity(conversation_id: int):
    conversation = db.session.get(Conversation, conversation_id)
    if conversation is None or not can_see_conversation(current_agent(), conversation):
        abort(404, "conversation not found")
    entries = db.session.scalars(select(ConversationActivity).where(
        ConversationActivity.conversation_id == conversation_id,
        ConversationActivity.kind != "checked")
        .order_by(ConversationActivity.id).limit(500))
    return {"items": [distribution.activity_dict(e) for e in entries], "next_cursor": None}


# --- SLA policies ------------------------------------------------------------------------

def policy_dict(policy: SlaPolicy) -> dict[str, Any]:
    return {"id": policy.id, "name": policy.name, "team_id": policy.team_id,
            "priority": policy.priority,
            "first_response_minutes": policy.first_response_minutes,
            "resolution_minutes": policy.resolution_minutes,
            "next_response_minutes": policy.next_response_minutes,
            "warn_percent": policy.warn_percent, "enabled": policy.enabled}


def check_policy(data: dict[str, Any], policy: SlaPolicy | None = None) -> dict[str, Any]:
    fields = ("name", "team_id", "priority", "first_response_minutes", "resolution_minutes",
              "next_response_minutes", "warn_percent", "enabled")
    merged = {k: getattr(policy, k) for k in fields} if policy else {
        "name": None, "team_id": None, "priority": None, "first_response_minutes": None,
        "resolution_minutes": None, "next_response_minutes": None, "warn_percent": 80,
        "enabled": True}
    merged.update({k: v for k, v in data.items() if k in fields})
    errors = {}
    if not isinstance(merged["name"], str) or not merged["name"].strip():
        errors["name"] = "required"
    if merged["team_id"] is not None and (not isinstance(merged["team_id"], int)
                                          or db.session.get(Team, merged["team_id"]) is None):
        errors["team_id"] = "no such team"
    if merged["priority"] is not None and merged["priority"] not in rule_domain.PRIORITIES:
        errors["priority"] = f"one of {', '.join(rule_domain.PRIORITIES)}, or null"
    for key in ("first_response_minutes", "resolution_minutes", "next_response_minutes"):
        value = merged[key]
        if value is not None and not (isinstance(value, int) and not isinstance(value, bool)
                                      and value > 0):
            errors[key] = "whole business minutes ≥ 1, or null"
    if merged["first_response_minutes"] is None and merged["resolution_minutes"] is None \
            and merged["next_response_minutes"] is None:
        errors.setdefault("first_response_minutes", "at least one target")
    if not (isinstance(merged["warn_percent"], int) and 1 <= merged["warn_percent"] <= 100):
        errors["warn_percent"] = "1 to 100"
    if not isinstance(merged["enabled"], bool):
        errors["enabled"] = "true or false"
    if errors:
        _invalid(errors)
    merged["name"] = merged["name"].strip()
    return merged


@bp.get("/sla-policies")
@bp.auth_required(token_auth)
@bp.doc(summary="SLA policies (targets in business minutes of the conversation's team)")
def list_sla_policies():
    found = db.session.scalars(select(SlaPolicy).order_by(SlaPolicy.id))
    return {"items": [policy_dict(p) for p in found], "next_cursor": None}


@bp.post("/sla-policies")
@bp.auth_required(token_auth)
def create_sla_policy():
    _require_admin()
    policy = SlaPolicy(**check_policy(_body()))
    db.session.add(policy)
    db.session.commit()
    return policy_dict(policy), 201


@bp.patch("/sla-policies/<int:policy_id>")
@bp.auth_required(token_auth)
def patch_sla_policy(policy_id: int):
    _require_admin()
    policy = db.session.get(SlaPolicy, policy_id) or abort(404)
    for key, value in check_policy(_body(), policy).items():
        setattr(policy, key, value)
    db.session.commit()
    return policy_dict(policy)


@bp.delete("/sla-policies/<int:policy_id>")
@bp.auth_required(token_auth)
def delete_sla_policy(policy_id: int):
    _require_admin()
    policy = db.session.get(SlaPolicy, policy_id) or abort(404)
    db.session.delete(policy)
    db.session.commit()
    return "", 204
