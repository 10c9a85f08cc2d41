"""Outside bots (issue 18): registration checked here (name, URL, channels, time-out), each
bot with its own agent of role "bot" whose API token reaches only the bot's channels.

A conversation a bot holds says so in `Conversation.handled_by` = "bot:<id>" (None: people;
"answer_bot": the built-in answer bot)."""
from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.domain.agents import create_token, hash_password
from app.domain.errors import DomainError
from app.domain.webhook_targets import private_target
from app.infra.models import Agent, Bot, Channel

ROLE = "bot"
PREFIX = "bot:"
DEFAULT_TIMEOUT = 10
MAX_TIMEOUT = 60
# what a bot's token may call (app/web/api/base.py): conversations of its channels only
ENDPOINTS = frozenset({
    "api.list_conversations", "api.get_conversation", "api.update_conversation",
    "api.list_messages", "api.send_reply", "api.create_note", "api.bot_handoff",
})


def holder(bot: Bot) -> str:
    return f"{PREFIX}{bot.id}"


def bot_id_of(handled_by: str | None) -> int | None:
    """The bot's id in a `handled_by` value ("bot:7" -> 7), else None."""
    if not handled_by or not handled_by.startswith(PREFIX):
        return None
    rest = handled_by[len(PREFIX):]
    return int(rest) if rest.isdigit() else None


def bot_of_agent(session: Session, agent: Agent) -> Bot | None:
    if agent.role != ROLE:
        return None
    return session.scalar(select(Bot).where(Bot.agent_id == agent.id))


def bot_channel_ids(session: Session, agent: Agent) -> set[int]:
    """The channels a bot's agent may see: its bot's, while the bot is active."""
    bot = bot_of_agent(session, agent)
    if bot is None or not bot.active:
        return set()
    return {int(c) for c in bot.channel_ids or []}


def bot_for_channel(session: Session, channel_id: int) -> Bot | None:
    """The active outside bot serving the channel (the oldest, if several do)."""
    for bot in session.scalars(select(Bot).where(Bot.active.is_(True)).order_by(Bot.id)):
        if channel_id in (bot.channel_ids or []):
            return bot
    return None


def channels_with_bots(session: Session) -> dict[int, str]:
    """channel id -> the name of the active bot serving it (the inbox's "return to bot")."""
    served: dict[int, str] = {}
    for bot in session.scalars(select(Bot).where(Bot.active.is_(True)).order_by(Bot.id)):
        for channel_id in bot.channel_ids or []:
            served.setdefault(int(channel_id), bot.name)
    return served


# --- checks ------------------------------------------------------------------------------

def _check_name(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise DomainError("name", "required")
    if len(value.strip()) > 100:
        raise DomainError("name", "at most 100 characters")
    return value.strip()


def _check_url(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise DomainError("url", "required")
    url = value.strip()
    try:
        parts = urlsplit(url)
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname \
            or len(url) > 1000:
        raise DomainError("url", "not an http(s) URL")
    refused = private_target(url)
    if refused:
        raise DomainError("url", f"refused: {refused}")
    return url


def _check_channels(session: Session, value: Any) -> list[int]:
    if not isinstance(value, list) or not value or not all(
            isinstance(c, int) and not isinstance(c, bool) for c in value):
        raise DomainError("channel_ids", "a non-empty list of channel ids")
    ids = list(dict.fromkeys(value))
    known = set(session.scalars(select(Channel.id).where(Channel.id.in_(ids),
                                                         Channel.active.is_(True))))
    unknown = [c for c in ids if c not in known]
    if unknown:
        raise DomainError("channel_ids", "unknown channel(s): "
                          + ", ".join(str(c) for c in unknown))
    return ids


def _check_timeout(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_TIMEOUT:
        raise DomainError("timeout_seconds", f"a whole number of seconds from 1 to {MAX_TIMEOUT}")
    return value


def create_bot(session: Session, data: dict[str, Any]) -> tuple[Bot, str]:
    """A new active bot with its agent and API token; returns (bot, token). The token and
    `bot.secret` are shown once."""
    name = _check_name(data.get("name"))
    url = _check_url(data.get("url"))
    channel_ids = _check_channels(session, data.get("channel_ids"))
    timeout = _check_timeout(data.get("timeout_seconds", DEFAULT_TIMEOUT))
    agent = Agent(email=f"bot-{secrets.token_hex(8)}@bots.threadline.invalid", name=name,
                  role=ROLE, password_hash=hash_password(secrets.token_urlsafe(32)))
    session.add(agent)
    session.flush()
    bot = Bot(name=name, url=url, secret="whsec_" + secrets.token_urlsafe(32),
              channel_ids=channel_ids, active=True, timeout_seconds=timeout, agent_id=agent.id)
    session.add(bot)
    session.flush()
    token = create_token(agent, f"bot {bot.id}")
    session.flush()
    return bot, token


def update_bot(session: Session, bot: Bot, data: dict[str, Any]) -> dict[str, Any]:
    """PATCH {name, url, channel_ids, active, timeout_seconds}: checked, applied; returns
    what changed {field: (before, after)}."""
    checks = {"name": _check_name, "url": _check_url,
              "channel_ids": lambda v: _check_channels(session, v),
              "timeout_seconds": _check_timeout}
    changed: dict[str, Any] = {}
    values: dict[str, Any] = {}
    for key, value in data.items():
        if key == "active":
            if not isinstance(value, bool):
                raise DomainError("active", "true or false")
            values[key] = value
        elif key in checks:
            values[key] = checks[key](value)
        else:
            raise DomainError(key, "unknown field")
    for key, value in values.items():
        if getattr(bot, key) != value:
            changed[key] = (getattr(bot, key), value)
            setattr(bot, key, value)
    if "name" in changed:
        bot.agent.name = bot.name
    if "active" in changed:
        bot.agent.active = bot.active   # an inactive bot's token stops working
    session.flush()
    return changed
