"""Merging two customers into one, and taking a merge back.

A merge moves the other customer's identities, conversations (and their messages), notes,
orders and deals to the kept customer, resolves field conflicts as the agent chose, and
stores a snapshot (ids moved, fields before and after) in `customer_merges`, so unmerge puts
every row back. Both are written to the audit log with who, when and why.
"""
from __future__ import annotations

import copy
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.infra.schemas import card_schema, conversation_schema
from app.domain.errors import Conflict, DomainError
from app.domain.customers import CARD_FIELDS, card, customer_channel_id, publish_customer
from app.infra.models import (
    Agent,
    AuditLog,
    Conversation,
    Customer,
    CustomerMerge,
    Deal,
    Identity,
    MergeSuggestion,
    Message,
    Note,
    Order,
    utcnow,
)
from app.infra.events import record_event

MOVED_TABLES = {"identities": Identity, "conversations": Conversation, "notes": Note,
                "orders": Order, "deals": Deal}
# the first-touch source is no choice: the earlier customer's is the first touch
SCALAR_FIELDS = ("name", "company", "owner_id")


class MergeError(Conflict):
    """A merge, unmerge or suggestion decision that the current state refuses (409, or 422
    for a bad choice)."""

    def __init__(self, message: str, field: str = "other_id", status: int | None = None):
        super().__init__(field, message, status)


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == {} or value == []


def _fields(customer: Customer) -> dict[str, Any]:
    return {k: copy.deepcopy(getattr(customer, k)) for k in CARD_FIELDS}


def conflicts(this: Customer, other: Customer) -> list[dict[str, Any]]:
    """Fields both customers have, with different values: the agent chooses."""
    out = []
    for key in SCALAR_FIELDS:
        a, b = getattr(this, key), getattr(other, key)
        if not _empty(a) and not _empty(b) and a != b:
            out.append({"field": key, "this": a, "other": b})
    for key in sorted(set(this.custom_fields or {}) & set(other.custom_fields or {})):
        a, b = this.custom_fields[key], other.custom_fields[key]
        if a != b:
            out.append({"field": f"custom_fields.{key}", "this": a, "other": b})
    return out


def merged_fields(this: Customer, other: Customer, choose: dict[str, str]) -> dict[str, Any]:
    """The kept customer's fields after the merge: where only one has a value it wins;
    conflicts go as chosen ("this" by default); tags and custom fields are united."""
    known = {c["field"] for c in conflicts(this, other)}
    unknown = set(choose) - known
    if unknown:
        raise MergeError(f"no conflict on {', '.join(sorted(unknown))}", field="choose")
    result: dict[str, Any] = {}
    for key in SCALAR_FIELDS:
        a, b = getattr(this, key), getattr(other, key)
        if key in known:
            result[key] = copy.deepcopy(b if choose.get(key) == "other" else a)
        else:
            result[key] = copy.deepcopy(b if _empty(a) else a)
    first, second = sorted((this, other), key=lambda c: (c.created_at, c.id))
    result["source"] = copy.deepcopy(second.source if _empty(first.source) else first.source)
    result["tags"] = list(dict.fromkeys([*(this.tags or []), *(other.tags or [])]))
    fields = {**copy.deepcopy(other.custom_fields or {}), **copy.deepcopy(this.custom_fields or {})}
    for key, value in (other.custom_fields or {}).items():
        if choose.get(f"custom_fields.{key}") == "other":
            fields[key] = copy.deepcopy(value)
    result["custom_fields"] = fields
    return result


def _ids(session: Session, model, customer_id: int) -> list[int]:
    return list(session.scalars(select(model.id).where(model.customer_id == customer_id)
                                .order_by(model.id)))


def _check_pair(session: Session, this: Customer, other: Customer) -> None:
    if this.id == other.id:
        raise MergeError("a customer cannot be merged with itself")
    for customer in (this, other):
        if customer.merged_into_id:
            raise MergeError(f"customer {customer.id} was merged into "
                             f"{customer.merged_into_id}; merge that one")


def preview(session: Session, this: Customer, other: Customer) -> dict[str, Any]:
    _check_pair(session, this, other)
    moves = {name: len(_ids(session, model, other.id)) for name, model in MOVED_TABLES.items()}
    moves["messages"] = session.query(Message).filter(Message.customer_id == other.id).count()
    return {"this": this, "other": other, "conflicts": conflicts(this, other), "moves": moves}


def merge(session: Session, this: Customer, other: Customer, actor: Agent | None,
          choose: dict[str, str] | None = None, reason: str = "",
          suggestion: MergeSuggestion | None = None) -> CustomerMerge:
    """Merge `other` into `this` (which is kept)."""
    choose = dict(choose or {})
    _check_pair(session, this, other)
    before_this, before_other = _fields(this), _fields(other)
    after = merged_fields(this, other, choose)
    moved = {name: _ids(session, model, other.id) for name, model in MOVED_TABLES.items()}

    # at most one open conversation per customer: the other's open one is resolved
    # (and reopened by unmerge)
    resolved: list[dict[str, Any]] = []
    this_open = session.scalar(select(Conversation.id).where(
        Conversation.customer_id == this.id, Conversation.status != "resolved"))
    if this_open is not None:
        for conversation in session.scalars(select(Conversation).where(
                Conversation.customer_id == other.id, Conversation.status != "resolved")):
            resolved.append({"id": conversation.id, "status": conversation.status,
                             "snoozed_until": conversation.snoozed_until.isoformat()
                             if conversation.snoozed_until else None})
            conversation.status, conversation.resolved_at = "resolved", utcnow()
            conversation.snoozed_until = None
        session.flush()

    for name, model in MOVED_TABLES.items():
        if moved[name]:
            session.execute(update(model).where(model.id.in_(moved[name]))
                            .values(customer_id=this.id).execution_options(synchronize_session="fetch"))
    session.execute(update(Message).where(Message.customer_id == other.id)
                    .values(customer_id=this.id).execution_options(synchronize_session=False))
    for key, value in after.items():
        setattr(this, key, value)
    this.updated_at = utcnow()
    other.merged_into_id = this.id
    other.updated_at = utcnow()

    for s in session.scalars(select(MergeSuggestion).where(
            MergeSuggestion.customer_id == min(this.id, other.id),
            MergeSuggestion.other_customer_id == max(this.id, other.id),
            MergeSuggestion.status == "open")):
        suggestion = suggestion or s
        if s is not suggestion:
            s.status = "accepted"
    if suggestion is not None:
        suggestion.status, suggestion.decided_at = "accepted", utcnow()
        suggestion.decided_by_id = actor.id if actor else None

    record = CustomerMerge(
        target_id=this.id, source_id=other.id, actor_id=actor.id if actor else None,
        reason=reason or "", suggestion_id=suggestion.id if suggestion else None,
        chosen=choose, status="merged",
        snapshot={"target_before": _jsonable(before_this), "source_before": _jsonable(before_other),
                  "target_after": _jsonable(after), "moved": moved,
                  "resolved_conversations": resolved})
    session.add(record)
    session.flush()
    session.add(AuditLog(actor_id=actor.id if actor else None, action="customer.merge",
                         target_type="customer", target_id=this.id,
                         details={"merge_id": record.id, "source_id": other.id,
                                  "reason": reason or "", "chosen": choose,
                                  "conflicts": _jsonable(conflicts_from(before_this, before_other)),
                                  "suggestion_id": record.suggestion_id,
                                  "moved": {k: len(v) for k, v in moved.items()}}))
    session.flush()
    session.expire_all()
    _publish_conversations(session, moved["conversations"])
    channel_id = customer_channel_id(session, this.id)
    payload = card_schema.dump(card(session, this, visible={channel_id} if channel_id else set()))
    payload.update(merged_customer_id=other.id, merge_id=record.id)
    record_event(session, "customer.merged", payload, channel_id)
    return record


def conflicts_from(a: dict[str, Any], b: dict[str, Any]) -> list[dict[str, Any]]:
    out = [{"field": k, "this": a[k], "other": b[k]} for k in SCALAR_FIELDS
           if not _empty(a[k]) and not _empty(b[k]) and a[k] != b[k]]
    for key in sorted(set(a["custom_fields"] or {}) & set(b["custom_fields"] or {})):
        if a["custom_fields"][key] != b["custom_fields"][key]:
            out.append({"field": f"custom_fields.{key}", "this": a["custom_fields"][key],
                        "other": b["custom_fields"][key]})
    return out


def _jsonable(value: Any) -> Any:
    import json

    return json.loads(json.dumps(value, default=str))


def _publish_conversations(session: Session, ids: list[int]) -> None:
    for conversation in session.scalars(select(Conversation).where(Conversation.id.in_(ids or [-1]))):
        record_event(session, "conversation.updated", conversation_schema.dump(conversation),
                     conversation.channel_id)


def latest_merge(session: Session, customer: Customer) -> CustomerMerge | None:
    return session.scalar(select(CustomerMerge).where(
        CustomerMerge.target_id == customer.id, CustomerMerge.status == "merged")
        .order_by(CustomerMerge.id.desc()).limit(1))


def merge_to_undo(session: Session, customer: Customer, merge_id: int | None) -> CustomerMerge:
    """The merge into `customer` an unmerge undoes: the one named, else the latest."""
    if merge_id is not None:
        record = session.get(CustomerMerge, merge_id)
        if record is None or record.target_id != customer.id:
            raise DomainError("merge_id", "no such merge", reason="not a merge into this customer")
        return record
    record = latest_merge(session, customer)
    if record is None:
        raise Conflict(None, "nothing to unmerge")
    return record


def unmerge(session: Session, record: CustomerMerge, actor: Agent | None,
            reason: str = "") -> CustomerMerge:
    """Put back every row the merge moved, and the fields of both customers. A field of
    the kept customer edited since the merge keeps its newer value (and is reported)."""
    if record.status != "merged":
        raise MergeError(f"merge {record.id} was already undone", field="merge_id")
    target = session.get(Customer, record.target_id)
    source = session.get(Customer, record.source_id)
    if target.merged_into_id:
        raise MergeError(f"customer {target.id} was merged into {target.merged_into_id} "
                         "since; unmerge that first", field="merge_id")
    snapshot = record.snapshot
    moved = snapshot["moved"]
    for name, model in MOVED_TABLES.items():
        if moved.get(name):
            session.execute(update(model).where(model.id.in_(moved[name]),
                                                model.customer_id == target.id)
                            .values(customer_id=source.id)
                            .execution_options(synchronize_session="fetch"))
    if moved.get("conversations"):
        # messages follow their conversation (also those written since the merge)
        session.execute(update(Message).where(Message.conversation_id.in_(moved["conversations"]))
                        .values(customer_id=source.id).execution_options(synchronize_session=False))
    from datetime import datetime

    for item in snapshot.get("resolved_conversations", []):
        conversation = session.get(Conversation, item["id"])
        if conversation is not None and conversation.status == "resolved":
            conversation.status, conversation.resolved_at = item["status"], None
            conversation.snoozed_until = (datetime.fromisoformat(item["snoozed_until"])
                                          if item.get("snoozed_until") else None)
    kept: list[str] = []
    current = _jsonable(_fields(target))
    for key in CARD_FIELDS:
        if current[key] == snapshot["target_after"][key]:
            setattr(target, key, copy.deepcopy(snapshot["target_before"][key]))
        else:
            kept.append(key)
    for key in CARD_FIELDS:
        setattr(source, key, copy.deepcopy(snapshot["source_before"][key]))
    source.merged_into_id = None
    now = utcnow()
    target.updated_at = source.updated_at = now
    record.status, record.unmerged_at = "unmerged", now
    record.unmerged_by_id = actor.id if actor else None
    session.add(AuditLog(actor_id=actor.id if actor else None, action="customer.unmerge",
                         target_type="customer", target_id=target.id,
                         details={"merge_id": record.id, "source_id": source.id,
                                  "reason": reason or "", "kept_newer_fields": kept}))
    session.flush()
    session.expire_all()
    _publish_conversations(session, moved.get("conversations", []))
    publish_customer(session, target)
    publish_customer(session, source)
    return record


# --- suggestions -------------------------------------------------------------------------

def accept_suggestion(session: Session, suggestion: MergeSuggestion, actor: Agent,
                      keep: int | None = None, choose: dict[str, str] | None = None,
                      reason: str = "") -> CustomerMerge:
    if suggestion.status != "open":
        raise MergeError(f"suggestion is {suggestion.status}", field="status")
    ids = (suggestion.customer_id, suggestion.other_customer_id)
    keep = keep if keep is not None else ids[0]
    if keep not in ids:
        raise MergeError("keep must be one of the suggestion's customers", field="keep", status=422)
    this = session.get(Customer, keep)
    other = session.get(Customer, ids[1] if keep == ids[0] else ids[0])
    return merge(session, this, other, actor, choose, reason or "accepted suggestion",
                 suggestion=suggestion)


def reject_suggestion(session: Session, suggestion: MergeSuggestion, actor: Agent,
                      reason: str = "") -> MergeSuggestion:
    if suggestion.status != "open":
        raise MergeError(f"suggestion is {suggestion.status}", field="status")
    suggestion.status, suggestion.decided_at = "rejected", utcnow()
    suggestion.decided_by_id = actor.id
    session.add(AuditLog(actor_id=actor.id, action="merge_suggestion.reject",
                         target_type="merge_suggestion", target_id=suggestion.id,
                         details={"customer_id": suggestion.customer_id,
                                  "other_customer_id": suggestion.other_customer_id,
                                  "reasons": suggestion.reasons, "reason": reason or ""}))
    session.flush()
    return suggestion
