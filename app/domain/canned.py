"""Canned replies: a shortcut names one reply (the composer's /shortcut). The inbox's admin
page and the API add and change them through here, so both refuse a taken shortcut."""
from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.domain.errors import DomainError
from app.infra.models import Agent, CannedReply


def shortcut_taken(session: Session, shortcut: str, exclude: int | None = None) -> bool:
    stmt = select(CannedReply.id).where(CannedReply.shortcut == shortcut)
    if exclude is not None:
        stmt = stmt.where(CannedReply.id != exclude)
    return session.scalar(stmt) is not None


def _check_shortcut(session: Session, data: dict[str, Any], exclude: int | None = None) -> None:
    if "shortcut" in data and shortcut_taken(session, data["shortcut"], exclude):
        raise DomainError("shortcut", "shortcut taken", reason="already in use")


def add_canned(session: Session, data: dict[str, Any], author: Agent) -> CannedReply:
    _check_shortcut(session, data)
    reply = CannedReply(created_by_id=author.id, **data)
    session.add(reply)
    return reply


def update_canned(session: Session, reply: CannedReply, data: dict[str, Any]) -> CannedReply:
    _check_shortcut(session, data, exclude=reply.id)
    for key, value in data.items():
        setattr(reply, key, value)
    return reply
