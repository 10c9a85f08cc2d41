"""What the live inbox page needs besides conversations and messages: its bootstrap data,
unread counts per view and the agent's profile. (The timeline, search, canned replies and
attachments have their own modules beside this one.)"""
from __future__ import annotations

from sqlalchemy import func, select, text
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
                "resolved ones left out)")
def view_counts():
    agent = current_agent()
    counts, totals = tally_views(agent.id, visible_channel_ids(agent))
    return {"counts": counts, "totals": totals}


# `labels != '[]'` is the predicate of the partial index ix_conversations_labelled: written
# the same way here so that both databases pick it (an empty list is stored as '[]')
LABELLED = text("conversations.labels != '[]'")


def tally_views(agent_id: int, channels: set[int] | None) -> tuple[dict[str, int], dict[str, int]]:
    """Conversations per view, unread ones (`counts`) and all (`totals`), among those not
    resolved in `channels` (None: every channel): open, mine, unassigned, bot, snoozed,
    channel:<id>, team:<id>, label:<name>.

    One grouped query read from the covering partial index ix_conversations_views alone (the
    unread flag is a group key, so counts and totals come from the same pass), and the labels
    of the labelled conversations only (partial index ix_conversations_labelled)."""
    where = [Conversation.status != "resolved"]
    if channels is not None:
        where.append(Conversation.channel_id.in_(channels or [-1]))
    unread = Conversation.unread_count > 0
    rows = db.session.execute(
        select(Conversation.status, Conversation.channel_id, Conversation.team_id,
               Conversation.assignee_id, Conversation.handled_by.is_not(None), unread,
               func.count())
        .where(*where)
        .group_by(Conversation.status, Conversation.channel_id, Conversation.team_id,
                  Conversation.assignee_id, Conversation.handled_by.is_not(None), unread))
    views = ("open", "mine", "unassigned", "snoozed", "bot")
    counts: dict[str, int] = dict.fromkeys(views, 0)
    totals: dict[str, int] = dict.fromkeys(views, 0)

    def add(key: str, n: int, is_unread: bool) -> None:
        totals[key] = totals.get(key, 0) + n
        if is_unread:
            counts[key] = counts.get(key, 0) + n

    for status, channel_id, team_id, assignee_id, by_bot, is_unread, n in rows:
        if status == "snoozed":
            add("snoozed", n, is_unread)
            continue
        if status != "open":
            continue
        add("open", n, is_unread)
        if assignee_id == agent_id:
            add("mine", n, is_unread)
        if by_bot:
            add("bot", n, is_unread)      # a bot holds it: the Bot view, not the people's queue
        elif assignee_id is None:
            add("unassigned", n, is_unread)
        add(f"channel:{channel_id}", n, is_unread)
        if team_id is not None:
            add(f"team:{team_id}", n, is_unread)
    labelled = db.session.execute(select(Conversation.status, Conversation.labels, unread)
                                  .where(*where, LABELLED))
    for status, labels, is_unread in labelled:
        if status != "open":
            continue
        for label in labels or []:
            add(f"label:{label}", 1, is_unread)
    # a view whose conversations are all read shows 0, not nothing (as the old two queries)
    for key in totals:
        counts.setdefault(key, 0)
    return counts, totals



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

