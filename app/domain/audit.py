"""The audit log of admin actions: who, what, when, before and after. Domain operations write
an entry in the transaction of the change itself; secrets never enter it (redacted first)."""
from __future__ import annotations

from typing import Any

from sqlalchemy import select

from app.domain.errors import DomainError
from app.infra.models import Agent, AuditLog
from app.infra.state import db


class FieldError(DomainError):
    """Bad input of a settings operation, naming the field (`settings.token`, `email`)."""


def audit(actor: Agent | None, action: str, target_type: str, target_id: int | None,
          before: dict[str, Any] | None = None, after: dict[str, Any] | None = None,
          **extra: Any) -> AuditLog:
    details: dict[str, Any] = dict(extra)
    if before is not None:
        details["before"] = before
    if after is not None:
        details["after"] = after
    entry = AuditLog(actor_id=actor.id if actor is not None else None, action=action,
                     target_type=target_type, target_id=target_id, details=details)
    db.session.add(entry)
    return entry


def changed(before: dict[str, Any], after: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Only the keys whose values differ, for a readable entry."""
    keys = [k for k in set(before) | set(after) if before.get(k) != after.get(k)]
    return ({k: before.get(k) for k in sorted(keys)}, {k: after.get(k) for k in sorted(keys)})


def recent(limit: int = 100, before_id: int | None = None,
           target_type: str | None = None) -> list[AuditLog]:
    stmt = select(AuditLog)
    if before_id is not None:
        stmt = stmt.where(AuditLog.id < before_id)
    if target_type:
        stmt = stmt.where(AuditLog.target_type == target_type)
    return list(db.session.scalars(stmt.order_by(AuditLog.id.desc()).limit(limit)))
