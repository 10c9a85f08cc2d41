"""Agents and teams: passwords (argon2), API tokens (only their sha256 stored)."""
from __future__ import annotations

import hashlib
import re
import secrets
from datetime import timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select

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
