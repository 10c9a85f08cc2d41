"""Agents and teams: passwords (argon2), API tokens (only their sha256 stored)."""
from __future__ import annotations

import hashlib
import re
import secrets
from datetime import timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, inspect, select
from sqlalchemy.orm import Session

from app.infra.db import after_commit
from app.infra.events import end_agent_sockets
from app.infra.models import Agent, ApiToken, Team, utcnow
from app.infra.state import db

MENTION = re.compile(r"@([\w.\-]+(?:@[\w.\-]+)?)", re.UNICODE)
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
MIN_PASSWORD = 8
TOKEN_TOUCH_INTERVAL = timedelta(minutes=1)
_hasher = PasswordHasher()


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def check_password(agent: Agent, password: str) -> bool:
    try:
        return _hasher.verify(agent.password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def end_sessions(agent: Agent) -> None:
    """Sign the agent out everywhere: every session and remember cookie stops loading (their
    id carries the old generation) and, once committed, every open socket is disconnected."""
    agent.session_generation = (agent.session_generation or 0) + 1


def load_session_agent(session_id: str) -> Agent | None:
    """The agent of a session or remember cookie id "<agent id>:<generation>" (Agent.get_id),
    if active and the generation is current."""
    agent_id, _, generation = session_id.partition(":")
    if not agent_id.isdigit() or not generation.isdigit():
        return None
    agent = db.session.get(Agent, int(agent_id))
    if agent is None or not agent.active or (agent.session_generation or 0) != int(generation):
        return None
    return agent


def revoke_on_change(session: Session, _context, _instances) -> None:
    """Session listener (before_flush, wired in app.wiring): a new password or a
    deactivation ends the agent's sessions; after commit, any raised generation (also
    end_sessions) disconnects the agent's sockets."""
    for obj in list(session.dirty):
        if not isinstance(obj, Agent):
            continue
        state = inspect(obj)
        generation = state.attrs.session_generation.history
        password = state.attrs.password_hash.history
        deactivated = state.attrs.active.history.has_changes() and not obj.active
        if (password.has_changes() or deactivated) and not generation.has_changes():
            end_sessions(obj)
        if password.has_changes() or deactivated or generation.has_changes():
            agent_id = obj.id
            after_commit(session, lambda agent_id=agent_id: end_agent_sockets(agent_id))


def find_agent(email: str) -> Agent | None:
    return db.session.scalar(select(Agent).where(func.lower(Agent.email) == email.strip().lower()))


def create_token(agent: Agent, name: str = "") -> str:
    """Returns the token once; only its sha256 is stored."""
    token = "tl_" + secrets.token_urlsafe(32)
    db.session.add(ApiToken(agent_id=agent.id, name=name, token_hash=_token_hash(token)))
    return token


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def agent_for_token(token: str) -> Agent | None:
    row = db.session.scalar(select(ApiToken).where(ApiToken.token_hash == _token_hash(token)))
    if row is None or not row.agent.active:
        return None
    now = utcnow()
    # "last used" to the minute is all an admin needs; writing it on every API call cost a
    # commit per request (a CRM pushing orders, the benchmark's replies)
    if row.last_used_at is None or now - row.last_used_at > TOKEN_TOUCH_INTERVAL:
        row.last_used_at = now
        db.session.commit()
    return row.agent


def ensure_teams(names: list[str]) -> list[Team]:
    existing = {t.name: t for t in db.session.scalars(select(Team).where(Team.name.in_(names)))}
    for name in names:
        if name not in existing:
            existing[name] = Team(name=name)
            db.session.add(existing[name])
    db.session.flush()
    return [existing[n] for n in names]


def create_agent(email: str, name: str, password: str, role: str = "agent",
                 teams: list[str] | None = None) -> Agent:
    email = email.strip().lower()
    if not EMAIL_RE.match(email):
        raise ValueError(f"not an email address: {email!r}")
    if len(password) < MIN_PASSWORD:
        raise ValueError(f"password too short: at least {MIN_PASSWORD} characters")
    if role not in ("agent", "admin"):
        raise ValueError(f"role must be agent or admin, not {role!r}")
    if find_agent(email) is not None:
        raise ValueError(f"an agent with email {email} exists already")
    agent = Agent(email=email, name=name.strip() or email, password_hash=hash_password(password),
                  role=role)
    if teams:
        known = {t.name: t for t in db.session.scalars(select(Team).where(Team.name.in_(teams)))}
        missing = [t for t in teams if t not in known]
        if missing:
            raise ValueError(f"unknown team(s): {', '.join(missing)}")
        agent.teams = [known[t] for t in teams]
    db.session.add(agent)
    db.session.flush()
    return agent


def mentioned_agents(text: str) -> list[Agent]:
    """`@irina`, `@irina@demo.threadline.local` or `@Ирина` (a first name) name an agent."""
    handles = {h.lower().rstrip(".") for h in MENTION.findall(text or "")}
    if not handles:
        return []
    found = []
    for agent in db.session.scalars(select(Agent).where(Agent.active.is_(True))):
        local = agent.email.split("@")[0].lower()
        first = (agent.name.split() or [""])[0].lower()
        if agent.email.lower() in handles or local in handles or first in handles:
            found.append(agent)
    return found
