"""Channel management (CLI and admin pages)."""
from __future__ import annotations

from typing import Any

from sqlalchemy import select

from connectors import CHANNEL_KINDS, get_connector

from app.infra.models import Channel, Team
from app.infra.state import db


def add_channel(kind: str, name: str, settings: dict[str, Any],
                teams: list[str] | None = None) -> Channel:
    if kind not in CHANNEL_KINDS:
        raise ValueError(f"unknown channel kind {kind!r}; choose one of: {', '.join(CHANNEL_KINDS)}")
    name = name.strip()
    if not name:
        raise ValueError("--name must not be empty")
    if db.session.scalar(select(Channel.id).where(Channel.name == name)):
        raise ValueError(f"a channel named {name!r} exists already")
    connector = get_connector(kind)
    merged = {**connector.default_settings(), **settings}
    channel = Channel(kind=kind, name=name, settings=connector.validate_settings(merged))
    all_teams = list(db.session.scalars(select(Team)))
    if teams:
        by_name = {t.name: t for t in all_teams}
        missing = [t for t in teams if t not in by_name]
        if missing:
            raise ValueError(f"unknown team(s): {', '.join(missing)}")
        channel.teams = [by_name[t] for t in teams]
    else:
        channel.teams = all_teams
    db.session.add(channel)
    db.session.flush()
    return channel


def all_channels() -> list[Channel]:
    return list(db.session.scalars(select(Channel).order_by(Channel.id)))


def find_channel(ref: str | int) -> Channel | None:
    if isinstance(ref, int) or str(ref).isdigit():
        return db.session.get(Channel, int(ref))
    return db.session.scalar(select(Channel).where(Channel.name == ref))


def channel_summary(channel: Channel) -> dict[str, Any]:
    return {
        "id": channel.id, "kind": channel.kind, "name": channel.name,
        "public_id": channel.public_id, "active": channel.active, "error": channel.error,
        "teams": [t.name for t in channel.teams],
        "settings": get_connector(channel.kind).redact(channel.settings),
    }
