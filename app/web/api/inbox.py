"""What the live inbox page needs besides conversations and messages: its bootstrap data,
unread counts per view and the agent's profile. (The timeline, search, canned replies and
attachments have their own modules beside this one.)"""
from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from app.domain.bots import channels_with_bots
from app.domain.access import visible_channel_ids
from app.infra.inbox_schemas import BootstrapOut, InboxAgentOut, ProfilePatch, ViewCountsOut
from app.infra.models import Agent, CannedReply, Channel, Conversation, Team
from app.infra.state import db
from app.web.api.base import bp, current_agent, token_auth


def _agent_out(agent: Agent) -> dict:
    return {"id": agent.id, "name": agent.name, "email": agent.email, "role": agent.role,
            "locale": agent.locale, "team_ids": [t.id for t in agent.teams]}



def _labels_in_use(channels: set[int] | None) -> list[str]:
    stmt = select(Conversation.labels).where(Conversation.status != "resolved") \
        .order_by(Conversation.last_activity_at.desc()).limit(2000)
    if channels is not None:
        stmt = stmt.where(Conversation.channel_id.in_(channels or [-1]))
    found: set[str] = set()
    for labels in db.session.scalars(stmt):
        found.update(str(label) for label in labels or [])
    return sorted(found)



@bp.get("/inbox/bootstrap")
@bp.auth_required(token_auth)
@bp.output(BootstrapOut)
@bp.doc(summary="Everything the inbox page needs once: me, agents, teams, my channels, "
                "labels, canned replies")
def bootstrap():
    agent = current_agent()
    channels = visible_channel_ids(agent)
    agents = db.session.scalars(select(Agent).where(Agent.active.is_(True))
                                .options(selectinload(Agent.teams)).order_by(Agent.name))
    channel_stmt = select(Channel).order_by(Channel.name)
    if channels is not None:
        channel_stmt = channel_stmt.where(Channel.id.in_(channels or [-1]))
    teams = db.session.scalars(select(Team).order_by(Team.name))
    if not agent.is_admin:
        mine = {t.id for t in agent.teams}
        teams = [t for t in teams if t.id in mine]
    served = channels_with_bots(db.session)
    return {
        "me": _agent_out(agent),
        "agents": [_agent_out(a) for a in agents],
        "teams": list(teams),
        "channels": [{"id": c.id, "kind": c.kind, "name": c.name, "bot": served.get(c.id)}
                     for c in db.session.scalars(channel_stmt)],
        "labels": _labels_in_use(channels),
        "canned_replies": list(db.session.scalars(select(CannedReply)
                                                  .order_by(CannedReply.shortcut))),
    }



@bp.get("/inbox/views")
@bp.auth_required(token_auth)
@bp.output(ViewCountsOut)
@bp.doc(summary="Unread conversations per view, and every conversation per view (totals; "
                "two grouped queries, resolved ones left out)")
def view_counts():
    agent = current_agent()
    channels = visible_channel_ids(agent)
    base = [Conversation.status != "resolved"]
    if channels is not None:
        base.append(Conversation.channel_id.in_(channels or [-1]))
    counts = _tally(agent, base + [Conversation.unread_count > 0])
    totals = _tally(agent, base)
    return {"counts": counts, "totals": totals}


def _tally(agent: Agent, where: list) -> dict[str, int]:
    """Conversations per view among those `where` picks: open, mine, unassigned, snoozed,
    channel:<id>, team:<id>, label:<name>."""
    rows = db.session.execute(
        select(Conversation.status, Conversation.channel_id, Conversation.team_id,
               Conversation.assignee_id, Conversation.handled_by.is_not(None), func.count())
        .where(*where)
        .group_by(Conversation.status, Conversation.channel_id, Conversation.team_id,
                  Conversation.assignee_id, Conversation.handled_by.is_not(None)))
    counts: dict[str, int] = {"open": 0, "mine": 0, "unassigned": 0, "snoozed": 0, "bot": 0}
    for status, channel_id, team_id, assignee_id, by_bot, n in rows:
        if status == "snoozed":
            counts["snoozed"] += n
            continue
        if status != "open":
            continue
        counts["open"] += n
        if assignee_id == agent.id:
            counts["mine"] += n
        if by_bot:
            counts["bot"] += n        # a bot holds it: the Bot view, not the people's queue
        elif assignee_id is None:
            counts["unassigned"] += n
        counts[f"channel:{channel_id}"] = counts.get(f"channel:{channel_id}", 0) + n
        if team_id is not None:
            counts[f"team:{team_id}"] = counts.get(f"team:{team_id}", 0) + n
    labelled = db.session.scalars(select(Conversation.labels)
                                  .where(*where, Conversation.status == "open").limit(5000))
    for labels in labelled:
        for label in labels or []:
            counts[f"label:{label}"] = counts.get(f"label:{label}", 0) + 1
    return counts



@bp.patch("/inbox/me")
@bp.auth_required(token_auth)
@bp.input(ProfilePatch, arg_name="data")
@bp.output(InboxAgentOut)
@bp.doc(summary="My profile: display name, interface language (en, ru; null = browser's)")
def update_me(data):
    agent = current_agent()
    for key, value in data.items():
        setattr(agent, key, value)
    db.session.commit()
    return _agent_out(agent)

