"""The settings area in the API (admins only): channels, agents, teams. The same domain
operations as the pages (app.domain.channels, app.domain.agents): validated, audited, live."""
from __future__ import annotations

from typing import Any

from apiflask import abort
from flask import url_for
from sqlalchemy import select

from app.domain import agents as agent_ops
from app.domain import channels as channel_ops
from app.domain.audit import FieldError
from app.infra.models import Agent, Channel, Team
from app.infra.settings_schemas import (AgentAdminOut, AgentIn, AgentInvited, AgentList,
                                        AgentPatch, ChannelAdminOut, ChannelCreated, ChannelIn,
                                        ChannelList, ChannelPatch, DeleteOut, InviteOut,
                                        SecretsOut, TeamIn, TeamList, TeamOut, TeamPatch)
from app.infra.state import db
from app.usecases import distribution
from app.web.api import bp, token_auth
from app.web.api.customers import require_admin
from app.web.settings import public_base


def _invalid(exc: FieldError):
    db.session.rollback()
    abort(422, f"{exc.field}: {exc.message}", detail={"json": {exc.field: [exc.message]}})


def _channel_out(channel: Channel, stats: dict[int, dict[str, Any]] | None = None) -> dict:
    if stats is None:
        stats = channel_ops.channel_stats([channel.id])
    s = stats.get(channel.id, {})
    return {"id": channel.id, "kind": channel.kind, "name": channel.name,
            "public_id": channel.public_id, "active": channel.active, "error": channel.error,
            "settings": channel_ops.redacted(channel),
            "team_ids": sorted(t.id for t in channel.teams),
            "bot": channel.state.get("bot") if channel.kind == "telegram" else None,
            "webhook_url": channel_ops.webhook_url(channel, public_base()),
            "messages_in": s.get("messages_in", 0), "messages_out": s.get("messages_out", 0),
            "last_inbound_at": s.get("last_inbound_at"), "created_at": channel.created_at}


def _get_channel(channel_id: int) -> Channel:
    channel = db.session.get(Channel, channel_id)
    if channel is None:
        abort(404, "channel not found")
    return channel


@bp.get("/channels")
@bp.auth_required(token_auth)
@bp.output(ChannelList)
@bp.doc(summary="Channels with status, last error, last inbound time and message counts "
                "(admins; secrets shown as ***)")
def list_channels():
    require_admin()
    rows = channel_ops.all_channels()
    stats = channel_ops.channel_stats([c.id for c in rows])
    return {"items": [_channel_out(c, stats) for c in rows], "next_cursor": None}


@bp.post("/channels")
@bp.auth_required(token_auth)
@bp.input(ChannelIn, arg_name="data")
@bp.output(ChannelCreated, status_code=201)
@bp.doc(summary="Add a channel (admins); the answer shows its secrets once",
        description="`settings` takes the keys of `threadline channel add` (README). A "
                    "Telegram token is checked with getMe; a webhook-mode bot gets its webhook "
                    "set. Bad input: 422 naming the field (`settings.token`).")
def create_channel(data):
    agent = require_admin()
    try:
        channel = channel_ops.create_channel(agent, data["kind"], data["name"], data["settings"],
                                             data["team_ids"])
        secrets = channel_ops.secret_values(channel)
        db.session.commit()
    except FieldError as exc:
        _invalid(exc)
    return {**_channel_out(channel), "secrets": secrets}


@bp.get("/channels/<int:channel_id>")
@bp.auth_required(token_auth)
@bp.output(ChannelAdminOut)
@bp.doc(summary="One channel (admins; secrets shown as ***)")
def get_channel(channel_id: int):
    require_admin()
    return _channel_out(_get_channel(channel_id))


@bp.patch("/channels/<int:channel_id>")
@bp.auth_required(token_auth)
@bp.input(ChannelPatch, arg_name="data")
@bp.output(ChannelAdminOut)
@bp.doc(summary="Rename, change settings or teams, disable / enable a channel (admins)")
def patch_channel(channel_id: int, data):
    agent = require_admin()
    channel = _get_channel(channel_id)
    try:
        channel_ops.update_channel(agent, channel, data)
        db.session.commit()
    except FieldError as exc:
        _invalid(exc)
    return _channel_out(channel)


@bp.delete("/channels/<int:channel_id>")
@bp.auth_required(token_auth)
@bp.output(DeleteOut)
@bp.doc(summary="Delete a channel without history; a channel with messages is disabled")
def delete_channel(channel_id: int):
    agent = require_admin()
    outcome = channel_ops.delete_channel(agent, _get_channel(channel_id))
    db.session.commit()
    return {"outcome": outcome}


@bp.post("/channels/<int:channel_id>/reveal")
@bp.auth_required(token_auth)
@bp.output(SecretsOut)
@bp.doc(summary="Show a channel's secrets on purpose (admins; written to the audit log)")
def reveal_channel(channel_id: int):
    agent = require_admin()
    secrets = channel_ops.reveal_secrets(agent, _get_channel(channel_id))
    db.session.commit()
    return {"secrets": secrets}


@bp.post("/channels/<int:channel_id>/rotate")
@bp.auth_required(token_auth)
@bp.output(SecretsOut)
@bp.doc(summary="Replace the channel's generated secret (admins); the answer shows it once")
def rotate_channel(channel_id: int):
    agent = require_admin()
    try:
        key, value = channel_ops.rotate_secret(agent, _get_channel(channel_id))
        db.session.commit()
    except FieldError as exc:
        _invalid(exc)
    return {"secrets": {key: value}}


# --- agents ----------------------------------------------------------------------------------

def _agent_out(agent: Agent) -> dict:
    return {"id": agent.id, "email": agent.email, "name": agent.name, "role": agent.role,
            "active": agent.active, "locale": agent.locale,
            "team_ids": sorted(t.id for t in agent.teams), "created_at": agent.created_at}


def _invite_url(token: str) -> str:
    return f"{public_base()}{url_for('auth.invite', token=token)}"


def _get_agent(agent_id: int) -> Agent:
    agent = db.session.get(Agent, agent_id)
    if agent is None:
        abort(404, "agent not found")
    return agent


@bp.get("/agents")
@bp.auth_required(token_auth)
@bp.output(AgentList)
@bp.doc(summary="Agents with role, teams and whether active (admins)")
def list_agents():
    require_admin()
    rows = db.session.scalars(select(Agent).where(Agent.role != "bot").order_by(Agent.id))
    return {"items": [_agent_out(a) for a in rows], "next_cursor": None}


@bp.post("/agents")
@bp.auth_required(token_auth)
@bp.input(AgentIn, arg_name="data")
@bp.output(AgentInvited, status_code=201)
@bp.doc(summary="Invite an agent (admins): the answer's invite_url sets their password once")
def invite_agent(data):
    actor = require_admin()
    try:
        agent, token = agent_ops.invite_agent(actor, data["email"], data["name"], data["role"],
                                              data["team_ids"], data["locale"])
        db.session.commit()
    except FieldError as exc:
        _invalid(exc)
    return {**_agent_out(agent), "invite_url": _invite_url(token)}


@bp.get("/agents/<int:agent_id>")
@bp.auth_required(token_auth)
@bp.output(AgentAdminOut)
def get_agent(agent_id: int):
    require_admin()
    return _agent_out(_get_agent(agent_id))


@bp.patch("/agents/<int:agent_id>")
@bp.auth_required(token_auth)
@bp.input(AgentPatch, arg_name="data")
@bp.output(AgentAdminOut)
@bp.doc(summary="Role, teams, name, language; `active: false` deactivates (admins)",
        description="Deactivating revokes the agent's API tokens and sessions at once, "
                    "disconnects their live sockets and returns their open conversations to "
                    "the team queue. The last active admin cannot be demoted or deactivated.")
def patch_agent(agent_id: int, data):
    actor = require_admin()
    agent = _get_agent(agent_id)
    try:
        agent_ops.update_agent(actor, agent, data)
        db.session.commit()
    except FieldError as exc:
        _invalid(exc)
    return _agent_out(agent)


@bp.post("/agents/<int:agent_id>/reset-password")
@bp.auth_required(token_auth)
@bp.output(InviteOut)
@bp.doc(summary="Reset an agent's password: the old one stops working; a one-time link sets a new one")
def reset_agent_password(agent_id: int):
    actor = require_admin()
    token = agent_ops.reset_password(actor, _get_agent(agent_id))
    db.session.commit()
    return {"invite_url": _invite_url(token)}


# --- teams -----------------------------------------------------------------------------------

def _team_out(team: Team) -> dict:
    return {"id": team.id, "name": team.name, "member_ids": sorted(a.id for a in team.agents),
            "channel_ids": sorted(c.id for c in team.channels),
            "distribution": team.distribution, "capacity": team.capacity,
            "business_hours": team.business_hours}


@bp.get("/teams")
@bp.auth_required(token_auth)
@bp.output(TeamList)
@bp.doc(summary="Teams with their members and channels (admins)")
def list_teams():
    require_admin()
    rows = db.session.scalars(select(Team).order_by(Team.id))
    return {"items": [_team_out(t) for t in rows], "next_cursor": None}


@bp.post("/teams")
@bp.auth_required(token_auth)
@bp.input(TeamIn, arg_name="data")
@bp.output(TeamOut, status_code=201)
@bp.doc(summary="Create a team (admins)")
def create_team(data):
    actor = require_admin()
    try:
        team = agent_ops.create_team(actor, data["name"])
        db.session.commit()
    except FieldError as exc:
        _invalid(exc)
    return _team_out(team)


@bp.patch("/teams/<int:team_id>")
@bp.auth_required(token_auth)
@bp.input(TeamPatch, arg_name="data")
@bp.output(TeamOut)
@bp.doc(summary="Rename a team, set its members, the channels it sees, and how its work is "
                "distributed: distribution, capacity, business hours (admins)")
def patch_team(team_id: int, data):
    actor = require_admin()
    team = db.session.get(Team, team_id)
    if team is None:
        abort(404, "team not found")
    routing = {k: data.pop(k) for k in ("distribution", "capacity", "business_hours") if k in data}
    errors = distribution.update_team_routing(db.session, team, routing) if routing else {}
    if errors:
        db.session.rollback()
        field = next(iter(errors))
        abort(422, f"{field}: {errors[field]}",
              detail={"json": {key: [reason] for key, reason in errors.items()}})
    try:
        agent_ops.update_team(actor, team, data)
        db.session.commit()
    except FieldError as exc:
        _invalid(exc)
    return _team_out(team)
