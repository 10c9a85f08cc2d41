"""Who may see what: an agent sees the conversations of channels their teams can access;
an admin sees all. Pages, the API and Socket.IO all ask here."""
from __future__ import annotations

from sqlalchemy import select

from app.infra.models import Agent, Conversation, team_channels, agent_teams
from app.infra.state import db


def visible_channel_ids(agent: Agent) -> set[int] | None:
    """None means every channel (admin). An outside bot's agent sees its bot's channels."""
    if agent.is_admin:
        return None
    if agent.role == "bot":
        from app.domain.bots import bot_channel_ids

        return bot_channel_ids(db.session, agent)
    rows = db.session.execute(
        select(team_channels.c.channel_id)
        .join(agent_teams, agent_teams.c.team_id == team_channels.c.team_id)
        .where(agent_teams.c.agent_id == agent.id)
    )
    return {row[0] for row in rows}


def can_see_conversation(agent: Agent, conversation: Conversation) -> bool:
    channels = visible_channel_ids(agent)
    return channels is None or conversation.channel_id in channels



def refresh_access(agent_ids) -> None:
    """After the current transaction commits, the connected sockets of these agents enter the
    rooms of every channel they may now see (and leave the others): a new channel, a team
    membership or a role change reaches them without a reload. Call after the change is
    flushed: the rooms are computed now, since no SQL may run once the commit is done."""
    from app.infra.db import after_commit
    from app.infra.events import ADMINS_ROOM, channel_room
    from app.infra import live
    from app.infra.models import Channel

    ids = sorted({int(a) for a in agent_ids if a is not None})
    if not ids:
        return
    db.session.flush()
    all_rooms = {channel_room(c) for c in db.session.scalars(select(Channel.id))} | {ADMINS_ROOM}
    plans = []
    for agent in db.session.scalars(select(Agent).where(Agent.id.in_(ids))):
        if not agent.active:
            continue
        visible = visible_channel_ids(agent)
        wanted = {ADMINS_ROOM} if visible is None else {channel_room(c) for c in visible}
        plans.append((agent.id, wanted, all_rooms - wanted))
    after_commit(db.session, lambda: [live.sync_rooms(a, j, l) for a, j, l in plans])


def drop_sockets(agent_id: int) -> None:
    """After commit, disconnect the agent's live sockets (deactivated)."""
    from app.infra.db import after_commit
    from app.infra import live

    after_commit(db.session, lambda: live.drop(agent_id))
