"""Agents and teams: passwords (argon2), API tokens (only their sha256 stored)."""
from __future__ import annotations

import hashlib
import re
import secrets
from datetime import timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import bindparam, func, inspect, select
from sqlalchemy.orm import Session, joinedload

from app.infra.db import after_commit
from app.infra.events import end_agent_sockets
from app.infra.models import Agent, ApiToken, Team, utcnow
from app.infra.state import db

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


# the token with its agent in one statement, built once: every API call asks, and a statement
# object built once keeps its cache key (SQLAlchemy computes it again for a new object)
_TOKEN_WITH_AGENT = (select(ApiToken).options(joinedload(ApiToken.agent))
                     .where(ApiToken.token_hash == bindparam("token_hash")))


def agent_for_token(token: str) -> Agent | None:
    row = db.session.scalar(_TOKEN_WITH_AGENT, {"token_hash": _token_hash(token)})
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


# --- admin operations: invite, roles, teams, deactivation (issue 16) ----------------------

INVITE_MAX_AGE = 7 * 24 * 3600  # seconds an invite (or a password reset) link stays valid
ROLES = ("agent", "admin")


def _serializer():
    from itsdangerous import URLSafeTimedSerializer

    from app.infra.state import config

    return URLSafeTimedSerializer(config["secret_key"], salt="threadline.invite")


def _fingerprint(agent: Agent) -> str:
    # the link names the password the agent had when it was made: once a password is set the
    # link is spent (one-time without a table of tokens)
    return hashlib.sha256(agent.password_hash.encode()).hexdigest()[:16]


def invite_token(agent: Agent) -> str:
    return _serializer().dumps({"a": agent.id, "p": _fingerprint(agent)})


def agent_for_invite(token: str, max_age: int = INVITE_MAX_AGE) -> Agent | None:
    from itsdangerous import BadSignature

    try:
        data = _serializer().loads(token, max_age=max_age)
    except BadSignature:  # includes SignatureExpired
        return None
    agent = db.session.get(Agent, int(data.get("a", 0))) if isinstance(data, dict) else None
    if agent is None or not agent.active or data.get("p") != _fingerprint(agent):
        return None
    return agent


def accept_invite(agent: Agent, password: str, confirm: str) -> None:
    from app.domain.audit import FieldError, audit

    if len(password) < MIN_PASSWORD:
        raise FieldError("password", f"at least {MIN_PASSWORD} characters")
    if password != confirm:
        raise FieldError("confirm", "the passwords do not match")
    agent.password_hash = hash_password(password)
    end_sessions(agent)
    audit(agent, "agent.set_password", "agent", agent.id)


def _unusable_password() -> str:
    # a hash of a random secret nobody knows: the agent cannot sign in before the invite
    return hash_password(secrets.token_urlsafe(32))


def check_teams(team_ids) -> list[Team]:
    """The teams a list of ids names; FieldError on `team_ids` for a bad list or a missing team."""
    from app.domain.audit import FieldError

    if not isinstance(team_ids, (list, tuple)) or not all(
            isinstance(t, int) or str(t).isdigit() for t in team_ids):
        raise FieldError("team_ids", "a list of team ids")
    ids = sorted({int(t) for t in team_ids})
    found = list(db.session.scalars(select(Team).where(Team.id.in_(ids or [-1]))))
    missing = set(ids) - {t.id for t in found}
    if missing:
        raise FieldError("team_ids", f"no team with id {', '.join(map(str, sorted(missing)))}")
    return found


def invite_agent(actor: Agent | None, email: str, name: str, role: str = "agent",
                 team_ids=None, locale: str | None = None) -> tuple[Agent, str]:
    """A new agent who sets their own password through a one-time link (returned)."""
    from app.domain.access import refresh_access
    from app.domain.audit import FieldError, audit

    email = str(email or "").strip().lower()
    if not EMAIL_RE.match(email) or len(email) > 320:
        raise FieldError("email", "not an email address")
    if find_agent(email) is not None:
        raise FieldError("email", "an agent with this email exists already")
    name = str(name or "").strip()
    if len(name) > 200:
        raise FieldError("name", "at most 200 characters")
    if role not in ROLES:
        raise FieldError("role", "agent or admin")
    teams = check_teams(team_ids or [])
    if locale not in (None, "", "en", "ru", "pl"):
        raise FieldError("locale", "en, ru or pl")
    agent = Agent(email=email, name=name or email.split("@")[0], role=role, teams=teams,
                  password_hash=_unusable_password(), locale=locale or None)
    db.session.add(agent)
    db.session.flush()
    audit(actor, "agent.invite", "agent", agent.id,
          after={"email": email, "name": agent.name, "role": role,
                 "team_ids": [t.id for t in teams]})
    refresh_access([agent.id])
    return agent, invite_token(agent)


def active_admins() -> int:
    return db.session.scalar(select(func.count(Agent.id)).where(Agent.role == "admin",
                                                               Agent.active.is_(True)))


def update_agent(actor: Agent | None, agent: Agent, data: dict) -> Agent:
    """PATCH {active, role, team_ids, name, locale}; the last active admin keeps both."""
    from app.domain.access import drop_sockets, refresh_access
    from app.domain.audit import FieldError, audit, changed

    before = {"name": agent.name, "role": agent.role, "active": agent.active,
              "locale": agent.locale, "team_ids": sorted(t.id for t in agent.teams)}
    if "role" in data and data["role"] not in ROLES:
        raise FieldError("role", "agent or admin")
    if "active" in data and not isinstance(data["active"], bool):
        raise FieldError("active", "true or false")
    if "name" in data:
        name = str(data["name"] or "").strip()
        if not name or len(name) > 200:
            raise FieldError("name", "1 to 200 characters")
    if "locale" in data and data["locale"] not in (None, "", "en", "ru", "pl"):
        raise FieldError("locale", "en, ru or pl")
    teams = check_teams(data["team_ids"]) if "team_ids" in data else None
    demoted = agent.is_admin and agent.active and (
        data.get("role", agent.role) != "admin" or data.get("active", True) is False)
    if demoted and active_admins() <= 1:
        field = "active" if data.get("active") is False else "role"
        raise FieldError(field, "the last admin cannot be removed or demoted")
    if "name" in data:
        agent.name = str(data["name"]).strip()
    if "locale" in data:
        agent.locale = data["locale"] or None
    if "role" in data:
        agent.role = data["role"]
    if teams is not None:
        agent.teams = teams
    deactivated = "active" in data and agent.active and data["active"] is False
    if "active" in data:
        agent.active = data["active"]
    if deactivated:
        _release(agent)
    db.session.flush()
    after = {"name": agent.name, "role": agent.role, "active": agent.active,
             "locale": agent.locale, "team_ids": sorted(t.id for t in agent.teams)}
    old, new = changed(before, after)
    if old or new:
        action = ("agent.deactivate" if deactivated
                  else "agent.reactivate" if new.get("active") is True else "agent.update")
        audit(actor, action, "agent", agent.id, before=old, after=new)
    if deactivated:
        drop_sockets(agent.id)
    else:
        refresh_access([agent.id])
    return agent


def _release(agent: Agent) -> None:
    """Deactivation: API tokens revoked now, open conversations back to their team's queue."""
    from sqlalchemy import delete

    from app.infra.events import record_event
    from app.infra.models import Conversation
    from app.infra.schemas import conversation_schema

    db.session.execute(delete(ApiToken).where(ApiToken.agent_id == agent.id))
    end_sessions(agent)  # a reactivated agent signs in afresh: old cookies stay dead
    for conversation in db.session.scalars(select(Conversation).where(
            Conversation.assignee_id == agent.id, Conversation.status != "resolved")):
        conversation.assignee_id = None
        db.session.flush()
        record_event(db.session, "conversation.updated", conversation_schema.dump(conversation),
                     conversation.channel_id)


def reset_password(actor: Agent | None, agent: Agent) -> str:
    """The old password stops working; a one-time link sets a new one."""
    from app.domain.audit import audit

    agent.password_hash = _unusable_password()
    end_sessions(agent)
    audit(actor, "agent.reset_password", "agent", agent.id)
    db.session.flush()
    return invite_token(agent)


def list_tokens(agent_id: int | None = None) -> list[ApiToken]:
    stmt = select(ApiToken).order_by(ApiToken.id.desc())
    if agent_id is not None:
        stmt = stmt.where(ApiToken.agent_id == agent_id)
    return list(db.session.scalars(stmt))


def issue_token(actor: Agent | None, agent: Agent, label: str) -> str:
    from app.domain.audit import FieldError, audit

    label = str(label or "").strip()
    if len(label) > 100:
        raise FieldError("name", "at most 100 characters")
    if not agent.active:
        raise FieldError("agent_id", "the agent is deactivated")
    value = create_token(agent, label)
    db.session.flush()
    audit(actor, "token.create", "agent", agent.id, name=label)
    return value


def revoke_token(actor: Agent | None, token: ApiToken) -> None:
    from app.domain.audit import audit

    audit(actor, "token.revoke", "agent", token.agent_id, name=token.name, token_id=token.id)
    db.session.delete(token)
    db.session.flush()


# --- teams -----------------------------------------------------------------------------------

def create_team(actor: Agent | None, name: str) -> Team:
    from app.domain.audit import audit

    name = _team_name(name)
    team = Team(name=name)
    db.session.add(team)
    db.session.flush()
    audit(actor, "team.create", "team", team.id, after={"name": name})
    return team


def _team_name(name, exclude: int | None = None) -> str:
    from app.domain.audit import FieldError

    name = str(name or "").strip()
    if not name or len(name) > 100:
        raise FieldError("name", "1 to 100 characters")
    stmt = select(Team.id).where(func.lower(Team.name) == name.lower())
    if exclude is not None:
        stmt = stmt.where(Team.id != exclude)
    if db.session.scalar(stmt) is not None:
        raise FieldError("name", "a team with this name exists already")
    return name


def update_team(actor: Agent | None, team: Team, data: dict) -> Team:
    """PATCH {name, member_ids, channel_ids}; members' live sockets follow."""
    from app.domain.access import refresh_access
    from app.domain.audit import FieldError, audit, changed
    from app.infra.models import Channel

    def ids(field):
        value = data[field]
        if not isinstance(value, (list, tuple)) or not all(
                isinstance(v, int) or str(v).isdigit() for v in value):
            raise FieldError(field, "a list of ids")
        return sorted({int(v) for v in value})

    before = {"name": team.name, "member_ids": sorted(a.id for a in team.agents),
              "channel_ids": sorted(c.id for c in team.channels)}
    name = _team_name(data["name"], exclude=team.id) if "name" in data else team.name
    members = channels = None
    if "member_ids" in data:
        wanted = ids("member_ids")
        members = list(db.session.scalars(select(Agent).where(Agent.id.in_(wanted or [-1]))))
        missing = set(wanted) - {a.id for a in members}
        if missing:
            raise FieldError("member_ids", f"no agent with id {', '.join(map(str, sorted(missing)))}")
    if "channel_ids" in data:
        wanted = ids("channel_ids")
        channels = list(db.session.scalars(select(Channel).where(Channel.id.in_(wanted or [-1]))))
        missing = set(wanted) - {c.id for c in channels}
        if missing:
            raise FieldError("channel_ids", f"no channel with id {', '.join(map(str, sorted(missing)))}")
    team.name = name
    if members is not None:
        team.agents = members
    if channels is not None:
        team.channels = channels
    db.session.flush()
    after = {"name": team.name, "member_ids": sorted(a.id for a in team.agents),
             "channel_ids": sorted(c.id for c in team.channels)}
    old, new = changed(before, after)
    if old or new:
        audit(actor, "team.update", "team", team.id, before=old, after=new)
    refresh_access(set(before["member_ids"]) | set(after["member_ids"]))
    return team
