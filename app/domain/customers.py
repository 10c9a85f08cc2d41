"""Customers and their CRM card: handles normalized, the card assembled, fields validated,
orders / deals / notes upserted by `external_ref`, and every change published
("customer.updated", "deal.updated") in the transaction that made it."""
from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import exists, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.domain.errors import Conflict, DomainError
from app.domain.handles import (  # noqa: F401  (normalize_* and default_region: also used from here)
    IDENTITY_CHANNEL_KINDS,
    default_region,
    normalize_handle,
    normalize_phone,
)
from app.domain.suggestions import suggest
from app.infra.schemas import card_schema, customer_schema, deal_schema
from app.infra.models import (
    Agent,
    Channel,
    Conversation,
    CustomerMerge,
    CustomFieldDef,
    Customer,
    Deal,
    Identity,
    Message,
    Note,
    Order,
    PipelineStage,
    utcnow,
)
from app.infra.events import record_event

CARD_FIELDS = ("name", "company", "owner_id", "source", "tags", "custom_fields")


class FieldError(DomainError):
    """Bad input naming its field: the API answers 422 {"json": {field: [message]}}."""


# --- handles -----------------------------------------------------------------------------

# --- lookups -----------------------------------------------------------------------------

def canonical(session: Session, customer: Customer) -> Customer:
    seen: set[int] = set()
    while customer.merged_into_id and customer.id not in seen:
        seen.add(customer.id)
        customer = session.get(Customer, customer.merged_into_id)
    return customer


def customer_channel_id(session: Session, customer_id: int) -> int | None:
    """The channel of the customer's latest conversation: the access scope of its events."""
    return session.scalar(select(Conversation.channel_id)
                          .where(Conversation.customer_id == customer_id)
                          .order_by(Conversation.last_activity_at.desc(), Conversation.id.desc())
                          .limit(1))


def visible_customer_filter(channels: set[int] | None):
    """SQL condition: customers an agent with these visible channels may see (None: all).
    A customer is visible through any conversation on a visible channel; a customer with
    no conversation yet (CRM import, shop push) is visible to every agent."""
    if channels is None:
        return None
    has_visible = exists().where(Conversation.customer_id == Customer.id,
                                 Conversation.channel_id.in_(channels or [-1]))
    has_any = exists().where(Conversation.customer_id == Customer.id)
    return or_(has_visible, ~has_any)


def can_see_customer(session: Session, agent: Agent, customer: Customer) -> bool:
    from app.domain.access import visible_channel_ids

    return within_reach(session, visible_channel_ids(agent), customer.id)


def within_reach(session: Session, channels: set[int] | None, customer_id: int) -> bool:
    """The customer is visible to a caller who sees these channels (None: every channel)."""
    condition = visible_customer_filter(channels)
    if condition is None:
        return True
    return bool(session.scalar(select(Customer.id).where(Customer.id == customer_id, condition)))


# --- the card ----------------------------------------------------------------------------

def card(session: Session, customer: Customer, limit: int = 100,
         visible: set[int] | None = None) -> dict[str, Any]:
    """The CRM card as a plain dict, ready for CustomerCardOut (API answers and events).
    `visible`: list only conversations on these channels (what the reader may see; None:
    all, for admins)."""
    channel_ids = list(dict.fromkeys(session.scalars(
        select(Message.channel_id).where(Message.customer_id == customer.id,
                                         Message.direction == "in",
                                         Message.channel_id.is_not(None))
        .group_by(Message.channel_id))))
    channels = list(session.scalars(select(Channel).where(Channel.id.in_(channel_ids or [-1]))))
    identities = []
    for identity in session.scalars(select(Identity).where(Identity.customer_id == customer.id)
                                    .order_by(Identity.id)):
        kinds = IDENTITY_CHANNEL_KINDS.get(identity.kind, ())
        identities.append({
            "id": identity.id, "kind": identity.kind, "value": identity.value,
            "verified": identity.verified, "reachable": identity.reachable,
            "channels": [{"id": c.id, "kind": c.kind, "name": c.name}
                         for c in channels if c.kind in kinds],
        })
    notes = []
    rows = session.execute(select(Note, Agent.name).outerjoin(Agent, Agent.id == Note.author_id)
                           .where(Note.customer_id == customer.id)
                           .order_by(Note.created_at.desc(), Note.id.desc()).limit(limit))
    for note, author_name in rows:
        notes.append({"id": note.id, "customer_id": note.customer_id,
                      "external_ref": note.external_ref, "author_id": note.author_id,
                      "author_name": author_name, "text": note.text,
                      "created_at": note.created_at})
    orders = list(session.scalars(select(Order).where(Order.customer_id == customer.id)
                                  .order_by(Order.placed_at.desc(), Order.id.desc()).limit(limit)))
    deals = list(session.scalars(select(Deal).where(Deal.customer_id == customer.id)
                                 .order_by(Deal.updated_at.desc(), Deal.id.desc()).limit(limit)))
    conv_stmt = select(Conversation).where(Conversation.customer_id == customer.id)
    if visible is not None:
        conv_stmt = conv_stmt.where(Conversation.channel_id.in_(visible or [-1]))
    conversations = list(session.scalars(
        conv_stmt.order_by(Conversation.last_activity_at.desc()).limit(limit)))
    merges = list(session.scalars(select(CustomerMerge).where(
        or_(CustomerMerge.target_id == customer.id, CustomerMerge.source_id == customer.id))
        .order_by(CustomerMerge.id.desc()).limit(limit)))
    owner = session.get(Agent, customer.owner_id) if customer.owner_id else None
    data = {key: getattr(customer, key) for key in (
        "id", "name", "company", "owner_id", "source", "tags", "custom_fields",
        "merged_into_id", "created_at", "updated_at")}
    from app.domain.optouts import of_customer

    data.update(identities=identities, owner=owner, notes=notes, orders=orders, deals=deals,
                conversations=conversations, merges=merges,
                opt_outs=of_customer(session, customer.id))
    return data


def publish_customer(session: Session, customer: Customer, type_: str = "customer.updated"):
    """Record the card as an event in this transaction (emitted after commit)."""
    session.flush()
    session.refresh(customer)
    channel_id = customer_channel_id(session, customer.id)
    # the event reaches the agents of that channel: its card lists only that channel's
    # conversations (clients refetch the full card through the API, which filters per reader)
    payload = card_schema.dump(card(session, customer,
                                    visible={channel_id} if channel_id else set()))
    return record_event(session, type_, payload, channel_id)


# --- custom fields and updates -----------------------------------------------------------

def field_defs(session: Session) -> dict[str, CustomFieldDef]:
    return {d.key: d for d in session.scalars(select(CustomFieldDef))}


def validate_custom_fields(session: Session, values: dict[str, Any],
                           current: dict[str, Any] | None = None) -> dict[str, Any]:
    """Check values against the admin's definitions; null removes a field."""
    defs = field_defs(session)
    result = dict(current or {})
    for key, value in values.items():
        where = f"custom_fields.{key}"
        definition = defs.get(key)
        if definition is None:
            raise FieldError(where, "no such custom field (an admin defines them)")
        if value is None or value == "":
            result.pop(key, None)
            continue
        result[key] = coerce_field(definition, value, where)
    return result


def coerce_field(definition: CustomFieldDef, value: Any, where: str) -> Any:
    if definition.type == "text":
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise FieldError(where, "must be text")
        return str(value)[:2000]
    if definition.type == "number":
        if isinstance(value, bool):
            raise FieldError(where, "must be a number")
        try:
            number = Decimal(str(value).strip().replace(",", "."))
        except Exception:
            raise FieldError(where, "must be a number") from None
        if not number.is_finite():
            raise FieldError(where, "must be a number")
        return int(number) if number == number.to_integral_value() else float(number)
    if definition.type == "date":
        try:
            return date.fromisoformat(str(value).strip()).isoformat()
        except ValueError:
            raise FieldError(where, "must be a date YYYY-MM-DD") from None
    if definition.type == "choice":
        if str(value) not in definition.choices:
            raise FieldError(where, f"must be one of: {', '.join(definition.choices)}")
        return str(value)
    raise FieldError(where, f"unknown field type {definition.type}")


def agent_by_email(session: Session, email: str | None, field: str) -> int | None:
    if not email:
        return None
    agent_id = session.scalar(select(Agent.id).where(func.lower(Agent.email) == email.lower()))
    if agent_id is None:
        raise FieldError(field, f"no agent with email {email}")
    return agent_id


def check_agent(session: Session, agent_id: int | None, field: str) -> int | None:
    if agent_id is not None and session.get(Agent, agent_id) is None:
        raise FieldError(field, f"no agent {agent_id}")
    return agent_id


def update_customer(session: Session, customer: Customer, patch: dict[str, Any]) -> Customer:
    if customer.merged_into_id:
        raise Conflict(None, f"customer was merged into {customer.merged_into_id}; edit that one")
    if "owner_id" in patch:
        check_agent(session, patch["owner_id"], "owner_id")
    if "custom_fields" in patch:
        patch = {**patch, "custom_fields": validate_custom_fields(
            session, patch["custom_fields"], customer.custom_fields)}
    if "tags" in patch:
        patch = {**patch, "tags": list(dict.fromkeys(t.strip() for t in patch["tags"] if t.strip()))}
    for key in CARD_FIELDS:
        if key in patch:
            setattr(customer, key, patch[key])
    customer.updated_at = utcnow()
    publish_customer(session, customer)
    return customer


def add_identity(session: Session, customer: Customer, kind: str, value: str,
                 verified: bool = True, channels: set[int] | None = None) -> Identity:
    try:
        value = normalize_handle(kind, value)
    except ValueError as exc:
        raise FieldError("value", str(exc)) from None
    existing = session.scalar(select(Identity).where(Identity.kind == kind, Identity.value == value))
    if existing is not None:
        owner = canonical(session, existing.customer)
        if owner.id == customer.id:
            return existing
        if not within_reach(session, channels, owner.id):
            # no oracle for a customer the caller cannot see
            raise FieldError("value", f"{kind}:{value} already belongs to another customer",
                             status=409)
        raise FieldError("value", f"{kind}:{value} belongs to customer {owner.id}; merge them",
                         status=409)
    identity = Identity(customer_id=customer.id, kind=kind, value=value, verified=verified)
    session.add(identity)
    session.flush()
    customer.updated_at = utcnow()
    publish_customer(session, customer)
    return identity


# --- finding the customer of a pushed record ---------------------------------------------

REF_KINDS = ("email", "phone", "telegram", "whatsapp", "site_user")


OUT_OF_REACH = ("belongs to a customer outside your teams' channels; "
                "write it with an admin token")


def resolve_ref(session: Session, customer_id: int | None, ref: dict[str, Any] | None,
                create: bool = True, channels: set[int] | None = None) -> tuple[Customer, bool]:
    """The customer a pushed record names: by id, else by an exact handle, else a new
    customer with those handles. Returns (customer, created).

    `channels`: the caller's reach (visible channel ids; None: everything, for admins and
    signed channel webhooks). A customer outside it is never found by id (as if absent) and
    never attached by a handle: a handle of such a customer is refused (422), since the
    handle is unique and cannot start a second customer."""
    if customer_id is not None:
        customer = session.get(Customer, customer_id)
        if customer is not None:
            customer = canonical(session, customer)
        if customer is None or not within_reach(session, channels, customer.id):
            raise FieldError("customer_id", f"no customer {customer_id}")
        return customer, False
    ref = ref or {}
    handles: list[tuple[str, str]] = []
    for kind in REF_KINDS:
        if ref.get(kind):
            try:
                handles.append((kind, normalize_handle(kind, ref[kind])))
            except ValueError as exc:
                raise FieldError(f"customer.{kind}", str(exc)) from None
    if not handles:
        raise FieldError("customer", "give customer_id or at least one handle "
                                     "(email, phone, telegram, whatsapp, site_user)")
    found: list[Customer] = []
    for kind, value in handles:
        identity = session.scalar(select(Identity).where(Identity.kind == kind,
                                                         Identity.value == value))
        if identity is not None:
            owner = canonical(session, identity.customer)
            if not within_reach(session, channels, owner.id):
                raise FieldError(f"customer.{kind}", OUT_OF_REACH)
            if owner not in found:
                found.append(owner)
    if found:
        customer = found[0]
        for other in found[1:]:
            suggest(session, customer.id, other.id,
                     {"reason": "one CRM record names handles of both customers"}, score=70)
        known = {(i.kind, i.value) for i in session.scalars(
            select(Identity).where(Identity.customer_id == customer.id))}
        for kind, value in handles:
            if (kind, value) in known:
                continue
            if session.scalar(select(Identity.id).where(Identity.kind == kind,
                                                        Identity.value == value)) is None:
                session.add(Identity(customer_id=customer.id, kind=kind, value=value))
        session.flush()
        return customer, False
    if not create:
        raise FieldError("customer", "no customer with these handles")
    customer = Customer(name=(ref.get("name") or handles[0][1])[:200],
                        company=ref.get("company") or None, source={"channel": "crm"})
    session.add(customer)
    session.flush()
    for kind, value in handles:
        session.add(Identity(customer_id=customer.id, kind=kind, value=value, verified=True))
    session.flush()
    record_event(session, "customer.created", customer_schema.dump(customer), None)
    return customer, True


# --- upserts by external_ref -------------------------------------------------------------

def _find_or_new(session: Session, model, external_ref: str | None,
                 channels: set[int] | None = None):
    if external_ref:
        row = session.scalar(select(model).where(model.external_ref == external_ref))
        if row is not None:
            if row.customer_id is not None and not within_reach(session, channels,
                                                                  row.customer_id):
                # another team's record: neither read nor changed (nor moved)
                raise FieldError("external_ref", "taken by a record outside your teams' "
                                                 "channels; use another reference")
            return row, False
    return model(external_ref=external_ref), True


def _save(session: Session, row, created: bool) -> None:
    """Insert in a savepoint: a concurrent push of the same external_ref wins the race and
    this one becomes an update (idempotent)."""
    if not created:
        session.flush()
        return
    with session.begin_nested():
        session.add(row)
        session.flush()


def _upsert(session: Session, model, data: dict[str, Any], apply,
            channels: set[int] | None = None) -> tuple[Any, bool]:
    ref = data.get("external_ref")
    for _attempt in range(2):
        row, created = _find_or_new(session, model, ref, channels)
        if created or "customer_id" in data or "customer" in data:
            customer, _ = resolve_ref(session, data.get("customer_id"), data.get("customer"),
                                      channels=channels)
            row.customer_id = customer.id
        apply(row, created)
        try:
            _save(session, row, created)
            return row, created
        except IntegrityError:
            if not ref:
                raise
            continue
    raise RuntimeError(f"could not upsert {model.__tablename__} {ref}")


def upsert_order(session: Session, data: dict[str, Any], channels: set[int] | None = None
                 ) -> tuple[Order, bool]:
    def apply(order: Order, created: bool) -> None:
        for key in ("placed_at", "total", "status", "items"):
            if key in data:
                setattr(order, key, data[key])
        if "currency" in data:
            order.currency = data["currency"].upper() if data["currency"] else None
        if created:
            order.status = order.status or "new"
            order.items = order.items or []
            order.placed_at = order.placed_at or utcnow()

    order, created = _upsert(session, Order, data, apply, channels)
    publish_customer(session, session.get(Customer, order.customer_id))
    return order, created


def check_stage(session: Session, stage: str) -> str:
    keys = list(session.scalars(select(PipelineStage.key)))
    if keys and stage not in keys:
        raise FieldError("stage", f"unknown stage; stages: {', '.join(keys)}")
    return stage


# the sales pipeline until an admin defines its stages (the board's columns, the card's
# choices, the demo's deals)
DEFAULT_STAGES = ("new", "qualified", "proposal", "negotiation", "won", "lost")
DEFAULT_OUTCOMES = {"won": "won", "lost": "lost"}


def first_stage(session: Session) -> str:
    return session.scalar(select(PipelineStage.key).order_by(PipelineStage.position,
                                                             PipelineStage.id).limit(1)) \
        or DEFAULT_STAGES[0]


def _deal_owner(session: Session, data: dict[str, Any]) -> int | None:
    """Check the stage and the owner a deal change names; the owner's id."""
    if "stage" in data:
        check_stage(session, data["stage"])
    owner_id = None
    if data.get("owner_email"):
        owner_id = agent_by_email(session, data["owner_email"], "owner_email")
    if data.get("owner_id") is not None:
        owner_id = check_agent(session, data["owner_id"], "owner_id")
    return owner_id


def _set_deal(deal: Deal, data: dict[str, Any], owner_id: int | None) -> None:
    for key in ("title", "stage", "amount", "expected_close"):
        if key in data:
            setattr(deal, key, data[key])
    if "currency" in data:
        deal.currency = data["currency"].upper() if data["currency"] else None
    if "owner_id" in data or "owner_email" in data:
        deal.owner_id = owner_id
    deal.updated_at = utcnow()


def _deal_changed(session: Session, deal: Deal):
    """Publish `deal.updated` and the customer's card; returns the deal's event."""
    session.flush()
    event = record_event(session, "deal.updated", deal_schema.dump(deal),
                         customer_channel_id(session, deal.customer_id))
    publish_customer(session, session.get(Customer, deal.customer_id))
    return event


def update_deal(session: Session, deal: Deal, data: dict[str, Any]):
    """Edit a deal (title, stage, amount, currency, owner, expected close), checked and
    published; returns the `deal.updated` event."""
    owner_id = _deal_owner(session, data)
    _set_deal(deal, data, owner_id)
    return _deal_changed(session, deal)


def upsert_deal(session: Session, data: dict[str, Any], channels: set[int] | None = None
                ) -> tuple[Deal, bool]:
    owner_id = _deal_owner(session, data)

    def apply(deal: Deal, created: bool) -> None:
        if created and not data.get("title"):
            raise FieldError("title", "required for a new deal")
        _set_deal(deal, data, owner_id)
        if created and not deal.stage:
            deal.stage = first_stage(session)

    deal, created = _upsert(session, Deal, data, apply, channels)
    _deal_changed(session, deal)
    return deal, created


def upsert_note(session: Session, data: dict[str, Any], author: Agent | None = None,
                channels: set[int] | None = None) -> tuple[Note, bool]:
    def apply(note: Note, created: bool) -> None:
        if created and not data.get("text"):
            raise FieldError("text", "required for a new note")
        if "text" in data:
            note.text = data["text"]
        if created:
            note.author_id = author.id if author else None
            note.created_at = data.get("created_at") or utcnow()

    note, created = _upsert(session, Note, data, apply, channels)
    publish_customer(session, session.get(Customer, note.customer_id))
    return note, created


def upsert_contact(session: Session, data: dict[str, Any], channels: set[int] | None = None
                   ) -> tuple[Customer, bool]:
    customer, created = resolve_ref(session, data.get("customer_id"), data.get("customer"),
                                    channels=channels)
    patch = {k: data[k] for k in ("name", "company", "tags", "custom_fields") if k in data}
    if "owner_email" in data:
        patch["owner_id"] = agent_by_email(session, data["owner_email"], "owner_email")
    update_customer(session, customer, patch)
    return customer, created
