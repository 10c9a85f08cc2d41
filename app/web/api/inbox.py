"""What the live inbox page needs besides conversations and messages: its bootstrap data,
unread counts per view and the agent's profile. (The timeline, search, canned replies and
attachments have their own modules beside this one.)"""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from app.domain.bots import channels_with_bots
from app.domain.access import visible_channel_ids
from app.domain.view_counts import tally_views
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
                "resolved ones left out), from the maintained tallies")
def view_counts():
    agent = current_agent()
    counts, totals = tally_views(agent.id, visible_channel_ids(agent))
    return {"counts": counts, "totals": totals}


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

