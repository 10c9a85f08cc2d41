"""Who answers: agent availability and the team's distribution (manual, round-robin,
least-loaded) with a capacity per agent.

- Availability: an agent is `online` while a browser holds a Socket.IO connection (no choice
  made) or after choosing "online"; "away" and "offline" are choices too. Away agents keep
  their conversations but get no new ones.
- A conversation to distribute joins its team's queue (`waiting_since`); the queue is handed
  out oldest first to online agents under capacity (open + pending conversations). The queue
  is drained after every batch of events (a resolve, snooze or reassignment frees capacity,
  an agent comes online) and by the periodic sweep.
- Concurrency: the agents of a team are locked (SELECT … FOR UPDATE, in id order) before their
  load is counted, and the queued conversations too (SKIP LOCKED), so two workers draining at
  once never put an agent over capacity nor assign one conversation twice. SQLite serializes
  writers (BEGIN IMMEDIATE) to the same effect.
"""
from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from app.infra.db import after_commit
from app.infra.events import notify_agent, record_event
from app.infra.models import (
    Agent,
    Conversation,
    ConversationActivity,
    Team,
    agent_teams,
    team_channels,
    utcnow,
)
from app.infra.schemas import conversation_schema

log = logging.getLogger(__name__)

STATUSES = ("online", "away", "offline")
MODES = ("manual", "round_robin", "least_loaded")
LOAD_STATUSES = ("open", "pending")
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


# --- activity (what the thread shows: who or which rule did what, and why) ----------------

def add_activity(session: Session, conversation: Conversation, kind: str, text: str,
                 rule_id: int | None = None, actor_id: int | None = None,
                 details: dict[str, Any] | None = None) -> ConversationActivity:
    entry = ConversationActivity(conversation_id=conversation.id, kind=kind, text=text,
                                 rule_id=rule_id, actor_id=actor_id, details=details or {},
                                 created_at=utcnow())
    session.add(entry)
    session.flush()
    record_event(session, "conversation.activity", activity_dict(entry),
                 conversation.channel_id)
    return entry


def activity_dict(entry: ConversationActivity) -> dict[str, Any]:
    return {"id": entry.id, "conversation_id": entry.conversation_id, "kind": entry.kind,
            "text": entry.text, "rule_id": entry.rule_id, "actor_id": entry.actor_id,
            "details": entry.details or {},
            "created_at": (entry.created_at or utcnow()).isoformat()}


def conversation_changed(session: Session, conversation: Conversation) -> None:
    session.flush()
    record_event(session, "conversation.updated", conversation_schema.dump(conversation),
                 conversation.channel_id)


def record_manual_change(session: Session, conversation: Conversation, actor: Agent | None,
                         before: dict[str, Any]) -> None:
    """An agent's own change (API, inbox, bulk): the activity line that says who did it. A
    conversation someone took leaves the team's queue."""
    who = actor.name if actor is not None else "the API"
    actor_id = actor.id if actor is not None else None
    if conversation.assignee_id != before.get("assignee_id"):
        if conversation.assignee_id is None:
            add_activity(session, conversation, "unassigned", f"unassigned by {who}",
                         actor_id=actor_id)
        else:
            conversation.waiting_since = None
            agent = session.get(Agent, conversation.assignee_id)
            add_activity(session, conversation, "assigned",
                         f"assigned to {agent.name if agent else conversation.assignee_id} "
                         f"by {who}", actor_id=actor_id,
                         details={"agent_id": conversation.assignee_id})
    if conversation.team_id != before.get("team_id"):
        team = session.get(Team, conversation.team_id) if conversation.team_id else None
        add_activity(session, conversation, "team",
                     f"moved to team {team.name} by {who}" if team else f"team removed by {who}",
                     actor_id=actor_id)
    if conversation.status != before.get("status"):
        add_activity(session, conversation, "status",
                     f"status set to {conversation.status} by {who}", actor_id=actor_id)


# --- availability ----------------------------------------------------------------------

def effective(choice: str | None, connections: int) -> str:
    if choice in STATUSES:
        return choice
    return "online" if connections > 0 else "offline"


def availability_dict(agent: Agent) -> dict[str, Any]:
    return {"agent_id": agent.id, "name": agent.name, "status": agent.availability,
            "choice": agent.availability_choice, "connected": agent.connections > 0}


def _publish(session: Session, agent: Agent) -> None:
    payload = availability_dict(agent)
    record_event(session, "agent.availability", payload, None)
    after_commit(session, lambda: notify_agent(agent.id, "agent.availability", payload))


def _refresh(session: Session, agent: Agent) -> bool:
    status = effective(agent.availability_choice, agent.connections)
    changed = status != agent.availability
    agent.availability = status
    session.flush()
    return changed


def set_availability(session: Session, agent: Agent, status: str | None) -> Agent:
    """The agent's choice: online | away | offline, or None for automatic (online while
    connected). Raises ValueError for anything else."""
    if status not in (*STATUSES, None, "auto"):
        raise ValueError(f"status must be one of {', '.join(STATUSES)}")
    agent.availability_choice = None if status == "auto" else status
    _refresh(session, agent)
    _publish(session, agent)
    return agent


def socket_connected(session: Session, agent_id: int, delta: int) -> None:
    """A browser of the agent connected (+1) or went away (-1): an atomic counter, so two web
    processes may count at once."""
    session.execute(update(Agent).where(Agent.id == agent_id)
                    .values(connections=func.max(Agent.connections + delta, 0)
                            if session.bind.dialect.name == "sqlite"
                            else func.greatest(Agent.connections + delta, 0)))
    agent = session.get(Agent, agent_id, populate_existing=True)
    if agent is not None and _refresh(session, agent):
        _publish(session, agent)
    session.commit()


def forget_connections(session: Session) -> int:
    """At the start of the only web process (embedded mode): no browser is connected yet, so
    a count a killed process left behind is reset (with Redis and several web processes the
    counts stay: another process may hold connections). Returns how many agents changed."""
    changed = 0
    for agent in session.scalars(select(Agent).where(Agent.connections != 0)):
        agent.connections = 0
        if _refresh(session, agent):
            _publish(session, agent)
            changed += 1
    session.commit()
    return changed


# --- team settings ----------------------------------------------------------------------

def team_routing(team: Team) -> dict[str, Any]:
    return {"team_id": team.id, "name": team.name, "distribution": team.distribution,
            "capacity": team.capacity, "business_hours": team.business_hours}


def update_team_routing(session: Session, team: Team, data: dict[str, Any]) -> dict[str, str]:
    """PATCH fields distribution, capacity, business_hours; returns field errors (nothing
    written when there are any)."""
    from app.domain.business_hours import validate

    errors: dict[str, str] = {}
    if "distribution" in data and data["distribution"] not in MODES:
        errors["distribution"] = f"one of {', '.join(MODES)}"
    if "capacity" in data and not (isinstance(data["capacity"], int)
                                   and not isinstance(data["capacity"], bool)
                                   and 1 <= data["capacity"] <= 1000):
        errors["capacity"] = "a whole number from 1 to 1000"
    if "business_hours" in data:
        errors.update(validate(data["business_hours"]))
    if errors:
        return errors
    for key in ("distribution", "capacity", "business_hours"):
        if key in data:
            setattr(team, key, data[key] or None if key == "business_hours" else data[key])
    session.flush()
    return {}


def team_for(session: Session, conversation: Conversation) -> Team | None:
    """The conversation's team, else the first team of its channel."""
    if conversation.team_id is not None:
        return session.get(Team, conversation.team_id)
    team_id = session.scalar(select(team_channels.c.team_id)
                             .where(team_channels.c.channel_id == conversation.channel_id)
                             .order_by(team_channels.c.team_id).limit(1))
    return session.get(Team, team_id) if team_id is not None else None


# --- distribution ------------------------------------------------------------------------

def _locked(session: Session, stmt):
    return stmt.with_for_update() if session.bind.dialect.name == "postgresql" else stmt


def loads(session: Session, agent_ids: list[int]) -> dict[int, int]:
    if not agent_ids:
        return {}
    rows = session.execute(select(Conversation.assignee_id, func.count())
                           .where(Conversation.assignee_id.in_(agent_ids),
                                  Conversation.status.in_(LOAD_STATUSES))
                           .group_by(Conversation.assignee_id))
    counts = {agent_id: 0 for agent_id in agent_ids}
    counts.update({agent_id: n for agent_id, n in rows})
    return counts


def enqueue(session: Session, conversation: Conversation, team: Team) -> None:
    """Put the conversation in the team's queue (it keeps its place if already there)."""
    conversation.team_id = team.id
    conversation.assignee_id = None
    if conversation.waiting_since is None:
        conversation.waiting_since = utcnow()
    session.flush()


def _pick(mode: str, candidates: list[Agent], load: dict[int, int]) -> Agent:
    if mode == "least_loaded":
        return min(candidates, key=lambda a: (load[a.id], a.last_assigned_at or _EPOCH, a.id))
    return min(candidates, key=lambda a: (a.last_assigned_at or _EPOCH, a.id))


def drain_team(session: Session, team_id: int,
               reasons: dict[int, str] | None = None) -> list[tuple[int, int]]:
    """Hand the team's queue out, oldest first, to online agents under capacity. Returns
    [(conversation_id, agent_id)]. `reasons`: conversation id -> why it is distributed (the
    rule's name), for the activity line."""
    team = session.get(Team, team_id)
    if team is None or team.distribution == "manual":
        return []
    agents = list(session.scalars(_locked(session, select(Agent).join(
        agent_teams, agent_teams.c.agent_id == Agent.id).where(
        agent_teams.c.team_id == team_id, Agent.active.is_(True),
        Agent.availability == "online").order_by(Agent.id))))
    if not agents:
        return []
    load = loads(session, [a.id for a in agents])
    room = {a.id: (a.capacity or team.capacity) - load[a.id] for a in agents}
    free = sum(max(n, 0) for n in room.values())
    if free <= 0:
        return []
    # SKIP LOCKED: a queued conversation another transaction is writing (a new message, the
    # rules engine) is left for the next drain instead of waited for, so a drain holding the
    # agents' locks never waits on a transaction that may be waiting for those locks
    stmt = (select(Conversation).where(
        Conversation.team_id == team_id, Conversation.waiting_since.is_not(None),
        Conversation.assignee_id.is_(None), Conversation.status == "open")
        .order_by(Conversation.waiting_since, Conversation.id).limit(free))
    if session.bind.dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)
    waiting = list(session.scalars(stmt))
    # an agent gets only what they can open: the channels of their teams (admins: every one)
    from app.domain.access import visible_channel_ids

    sees = {a.id: visible_channel_ids(a) for a in agents}
    assigned: list[tuple[int, int]] = []
    mode_name = {"round_robin": "round-robin", "least_loaded": "least-loaded"}[team.distribution]
    for conversation in waiting:
        if not any(room[a.id] > 0 for a in agents):
            break
        candidates = [a for a in agents if room[a.id] > 0 and (
            sees[a.id] is None or conversation.channel_id in sees[a.id])]
        if not candidates:
            continue   # nobody free in this team may see its channel: it keeps waiting
        agent = _pick(team.distribution, candidates, load)
        now = utcnow()
        conversation.assignee_id = agent.id
        conversation.waiting_since = None
        agent.last_assigned_at = now
        room[agent.id] -= 1
        load[agent.id] += 1
        why = (reasons or {}).get(conversation.id)
        text = f"assigned to {agent.name} by team {team.name}'s {mode_name} distribution"
        if why:
            text += f" ({why})"
        add_activity(session, conversation, "assigned", text,
                     details={"agent_id": agent.id, "team_id": team.id,
                              "mode": team.distribution})
        conversation_changed(session, conversation)
        assigned.append((conversation.id, agent.id))
    return assigned


def drain_all(session: Session) -> list[tuple[int, int]]:
    """Every team with a queue and a distribution."""
    team_ids = list(session.scalars(
        select(Conversation.team_id).join(Team, Team.id == Conversation.team_id)
        .where(Conversation.waiting_since.is_not(None), Conversation.assignee_id.is_(None),
               Conversation.status == "open", Team.distribution != "manual")
        .group_by(Conversation.team_id).order_by(Conversation.team_id)))
    assigned = []
    for team_id in team_ids:
        assigned.extend(drain_team(session, team_id))
    return assigned


def distribute(session: Session, conversation: Conversation, team: Team,
               reason: str | None = None) -> int | None:
    """Queue the conversation in `team` and drain the queue: the agent it went to, or None
    (it waits, visibly, in the team's queue; a manual team leaves it to its members)."""
    enqueue(session, conversation, team)
    if team.distribution == "manual":
        return None
    assigned = dict(drain_team(session, team.id,
                               {conversation.id: reason} if reason else None))
    return assigned.get(conversation.id)
