"""Agents and teams."""
from __future__ import annotations

import re

from sqlalchemy import select

from .auth import find_agent, hash_password
from .models import Agent, Team
from .state import db

EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
MIN_PASSWORD = 8


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
