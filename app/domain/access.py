"""Who may see what: an agent sees the conversations of channels their teams can access;
an admin sees all. Pages, the API and Socket.IO all ask here."""
from __future__ import annotations

from sqlalchemy import select

from app.infra.models import Agent, Conversation, team_channels, agent_teams
from app.infra.state import db


def visible_channel_ids(agent: Agent) -> set[int] | None:
    """None means every channel (admin)."""
    if agent.is_admin:
        return None
    rows = db.session.execute(
        select(team_channels.c.channel_id)
        .join(agent_teams, agent_teams.c.team_id == team_channels.c.team_id)
        .where(agent_teams.c.agent_id == agent.id)
    )
    return {row[0] for row in rows}


def can_see_conversation(agent: Agent, conversation: Conversation) -> bool:
    channels = visible_channel_ids(agent)
    return channels is None or conversation.channel_id in channels

