"""The CRM's definitions, set by admins: the sales pipeline's stages and the custom fields of
the customer card. (Records — orders, deals, notes — are upserted in app.domain.customers.)"""
from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.domain.errors import Conflict, DomainError
from app.infra.models import CustomFieldDef, Deal, PipelineStage


def _insert(session: Session, row, taken: str) -> None:
    """Insert in a savepoint: a key that exists answers 422 on `key`."""
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
    except IntegrityError:
        raise DomainError("key", "key taken", reason=taken) from None


def add_stage(session: Session, data: dict[str, Any]) -> PipelineStage:
    stage = PipelineStage(**data)
    _insert(session, stage, "a stage with this key exists")
    return stage


def remove_stage(session: Session, stage: PipelineStage) -> None:
    """Only a stage no deal is in."""
    used = session.scalar(select(Deal.id).where(Deal.stage == stage.key).limit(1))
    if used is not None:
        raise Conflict(None, f"deals are in stage {stage.key}; move them first")
    session.delete(stage)


def _check_choices(field_type: str, data: dict[str, Any]) -> None:
    if field_type == "choice" and "choices" in data and not data["choices"]:
        raise DomainError("choices", "choices required", reason="a choice field needs choices")


def add_field(session: Session, data: dict[str, Any]) -> CustomFieldDef:
    _check_choices(data["type"], {"choices": data.get("choices")})
    definition = CustomFieldDef(**data)
    _insert(session, definition, "a field with this key exists")
    return definition


def update_field(definition: CustomFieldDef, data: dict[str, Any]) -> CustomFieldDef:
    _check_choices(definition.type, data)
    for key, value in data.items():
        setattr(definition, key, value)
    return definition
