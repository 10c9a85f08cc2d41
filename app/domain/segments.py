"""Segments: saved filters over customers. A filter is a JSON object whose conditions all
hold (an empty object: every customer):

    {"tags": {"any": [...], "all": [...], "none": [...]},
     "custom_fields": {"key": "value", ...},              (equal, compared as text)
     "handles": {"any": [kinds], "all": [kinds], "none": [kinds]},   (email, phone,
                                                          telegram, whatsapp, webchat, site_user)
     "source": {"channel" | "utm_source" | "utm_medium" | "utm_campaign" | "referrer":
                "value" or ["any", "of"]},
     "orders": {"count_min", "count_max", "total_min", "total_max",
                "last_within_days", "last_before_days", "status": [...],
                "items_contain": "text"},   (any text of an order's items, any letter case:
                                             "ŻÓŁW" finds "żółw", "ПЛАТЬЕ" finds "платье")
     "deals": {"stage": [...], "owner_id": [...]},
     "last_inbound": {"within_days": N, "before_days": N},
     "last_outbound": {"within_days": N, "before_days": N},   (our last message to them;
                                                          before_days includes never written to)
     "language": ["ru", "pl"],                            (the card's custom field `language`)
     "team_id": [ids],                                    (a conversation in one of the teams)
     "opted_out": true | false,                           (on any channel)
     "consent": {"not_opted_out": [channel ids],          (opted out of none of them)
                 "opted_out": [channel ids]}}             (opted out of one of them)

`validate_filter` refuses anything else with the field and the reason (422); `condition`
turns a valid filter into one parameterized SQL condition on `customers`, the same on
SQLite and PostgreSQL. Merged-away customers are never members.
"""
from __future__ import annotations

from datetime import timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import Boolean, and_, exists, func, not_, or_, select, true
from sqlalchemy.orm import Session

from app.domain.errors import DomainError
from app.domain.handles import IDENTITY_CHANNEL_KINDS
from app.infra.models import (
    Conversation,
    Customer,
    Deal,
    Identity,
    Message,
    OptOut,
    Order,
    Segment,
    utcnow,
)

SOURCE_KEYS = ("channel", "utm_source", "utm_medium", "utm_campaign", "utm_content",
               "utm_term", "referrer")
ORDER_NUMBERS = ("count_min", "count_max", "total_min", "total_max", "last_within_days",
                 "last_before_days")
HANDLE_KINDS = tuple(IDENTITY_CHANNEL_KINDS) + ("phone",)
MAX_ID = 2**31 - 1
MAX_NUMBER = 10**12
MAX_DAYS = 36_500
KEYS = ("tags", "custom_fields", "handles", "source", "orders", "deals", "last_inbound",
        "last_outbound", "language", "team_id", "opted_out", "consent")


class SegmentError(DomainError):
    """A filter that cannot be used: 422 naming the condition, e.g. `filter.orders.count_min`."""


def _fail(path: str, reason: str):
    raise SegmentError(path, reason)


def _strings(path: str, value: Any, allowed: tuple[str, ...] | None = None) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or len(value) > 1000 \
            or not all(isinstance(v, str) and v.strip() and len(v) <= 200 for v in value):
        _fail(path, "a non-empty list of non-empty texts")
    if allowed is not None:
        unknown = [v for v in value if v not in allowed]
        if unknown:
            _fail(path, f"unknown {', '.join(unknown)}; one of {', '.join(allowed)}")
    return [v.strip() for v in value]


def _ids(path: str, value: Any) -> list[int]:
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, list) or not value or len(value) > 1000 or not all(
            isinstance(v, int) and not isinstance(v, bool) and 0 < v <= MAX_ID for v in value):
        _fail(path, "a non-empty list of ids")
    return value


def _number(path: str, value: Any, integer: bool = False) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        _fail(path, "a number")
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        _fail(path, "a number")
    if not number.is_finite() or number < 0:
        _fail(path, "a number, zero or more")
    if number > MAX_NUMBER:
        _fail(path, f"at most {MAX_NUMBER}")
    if integer:
        if number != int(number):
            _fail(path, "a whole number")
        return int(number)
    return number


def _days(path: str, value: Any) -> int:
    days = _number(path, value, integer=True)
    if days > MAX_DAYS:
        _fail(path, f"at most {MAX_DAYS} days")
    return days


def _object(path: str, value: Any, keys: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(value, dict):
        _fail(path, "an object")
    unknown = [k for k in value if k not in keys]
    if unknown:
        _fail(f"{path}.{unknown[0]}", f"unknown condition; one of {', '.join(keys)}")
    return value


def _sets(path: str, value: Any, allowed: tuple[str, ...] | None = None) -> dict[str, list[str]]:
    value = _object(path, value, ("any", "all", "none"))
    if not value:
        _fail(path, "at least one of any, all, none")
    return {k: _strings(f"{path}.{k}", v, allowed) for k, v in value.items()}


def validate_filter(data: Any) -> dict[str, Any]:
    """The filter, normalized; SegmentError (422) naming the first bad condition."""
    if data is None:
        return {}
    data = _object("filter", data, KEYS)
    out: dict[str, Any] = {}
    for key, value in data.items():
        path = f"filter.{key}"
        if key == "tags":
            out[key] = _sets(path, value)
        elif key == "handles":
            out[key] = _sets(path, value, HANDLE_KINDS)
        elif key == "custom_fields":
            value = _object(path, value, tuple(value) if isinstance(value, dict) else ())
            if not value:
                _fail(path, "at least one field")
            fields = {}
            for name, wanted in value.items():
                if not isinstance(name, str) or not name or len(name) > 60:
                    _fail(path, "field keys are texts of 1-60 characters")
                if isinstance(wanted, bool) or not isinstance(wanted, (str, int, float)):
                    _fail(f"{path}.{name}", "a text or a number")
                fields[name] = str(wanted)
            out[key] = fields
        elif key == "source":
            value = _object(path, value, SOURCE_KEYS)
            if not value:
                _fail(path, f"at least one of {', '.join(SOURCE_KEYS)}")
            out[key] = {k: _strings(f"{path}.{k}", v) for k, v in value.items()}
        elif key == "orders":
            value = _object(path, value, ORDER_NUMBERS + ("status", "items_contain"))
            if not value:
                _fail(path, "at least one condition")
            orders: dict[str, Any] = {}
            for k, v in value.items():   # totals kept as exact decimal strings
                if k == "status":
                    orders[k] = _strings(f"{path}.{k}", v)
                elif k == "items_contain":
                    if not isinstance(v, str) or not v.strip() or len(v) > 200:
                        _fail(f"{path}.{k}", "a text of 1-200 characters")
                    orders[k] = v.strip().lower()
                elif k.endswith("_days"):
                    orders[k] = _days(f"{path}.{k}", v)
                else:
                    number = _number(f"{path}.{k}", v, integer=not k.startswith("total"))
                    orders[k] = str(number) if k.startswith("total") else number
            out[key] = orders
        elif key == "deals":
            value = _object(path, value, ("stage", "owner_id"))
            if not value:
                _fail(path, "at least one of stage, owner_id")
            deals: dict[str, Any] = {}
            if "stage" in value:
                deals["stage"] = _strings(f"{path}.stage", value["stage"])
            if "owner_id" in value:
                deals["owner_id"] = _ids(f"{path}.owner_id", value["owner_id"])
            out[key] = deals
        elif key in ("last_inbound", "last_outbound"):
            value = _object(path, value, ("within_days", "before_days"))
            if not value:
                _fail(path, "at least one of within_days, before_days")
            out[key] = {k: _days(f"{path}.{k}", v) for k, v in value.items()}
        elif key == "language":
            out[key] = [v.lower() for v in _strings(path, value)]
        elif key == "team_id":
            out[key] = _ids(path, value)
        elif key == "opted_out":
            if not isinstance(value, bool):
                _fail(path, "true or false")
            out[key] = value
        elif key == "consent":
            value = _object(path, value, ("not_opted_out", "opted_out"))
            if not value:
                _fail(path, "at least one of not_opted_out, opted_out")
            out[key] = {k: _ids(f"{path}.{k}", v) for k, v in value.items()}
    return out


def validate_name(name: Any) -> str:
    if not isinstance(name, str) or not name.strip():
        raise SegmentError("name", "a name is required")
    if len(name.strip()) > 200:
        raise SegmentError("name", "at most 200 characters")
    return name.strip()


# --- SQL ---------------------------------------------------------------------------------

def _tag_match(session: Session, tag: str):
    """The customer's tags (a JSON list) contain `tag`."""
    if session.bind.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import JSONB
        from sqlalchemy import cast, literal

        return Customer.tags.op("@>", return_type=Boolean)(cast(literal([tag], JSONB), JSONB))
    each = func.json_each(Customer.tags).table_valued("value")
    return exists(select(1).select_from(each).where(each.c.value == tag))


def _json_text(column, key: str):
    return column[key].as_string()


def _sets_condition(path_match, wanted: dict[str, list[str]]):
    parts = []
    if "any" in wanted:
        parts.append(or_(*(path_match(v) for v in wanted["any"])))
    for v in wanted.get("all", ()):
        parts.append(path_match(v))
    for v in wanted.get("none", ()):
        parts.append(not_(path_match(v)))
    return and_(*parts)


def condition(session: Session, data: dict[str, Any], now=None):
    """The SQL condition on `customers` for a validated filter."""
    now = now or utcnow()
    parts = [Customer.merged_into_id.is_(None)]
    if "tags" in data:
        parts.append(_sets_condition(lambda t: _tag_match(session, t), data["tags"]))
    if "handles" in data:
        def has_kind(kind: str):
            return exists().where(Identity.customer_id == Customer.id, Identity.kind == kind)
        parts.append(_sets_condition(has_kind, data["handles"]))
    for name, wanted in data.get("custom_fields", {}).items():
        parts.append(_json_text(Customer.custom_fields, name) == wanted)
    if "language" in data:
        parts.append(func.lower(_json_text(Customer.custom_fields, "language"))
                     .in_(data["language"]))
    for name, values in data.get("source", {}).items():
        parts.append(func.lower(_json_text(Customer.source, name))
                     .in_([v.lower() for v in values]))
    if "orders" in data:
        parts.append(_orders_condition(session, data["orders"], now))
    if "deals" in data:
        deal = [Deal.customer_id == Customer.id]
        if "stage" in data["deals"]:
            deal.append(Deal.stage.in_(data["deals"]["stage"]))
        if "owner_id" in data["deals"]:
            deal.append(Deal.owner_id.in_(data["deals"]["owner_id"]))
        parts.append(exists().where(*deal))
    if "last_inbound" in data:
        last = (select(func.max(Conversation.last_inbound_at))
                .where(Conversation.customer_id == Customer.id).scalar_subquery())
        if "within_days" in data["last_inbound"]:
            parts.append(last >= now - timedelta(days=data["last_inbound"]["within_days"]))
        if "before_days" in data["last_inbound"]:
            parts.append(last < now - timedelta(days=data["last_inbound"]["before_days"]))
    if "last_outbound" in data:
        last_out = (select(func.max(Message.created_at))
                    .where(Message.customer_id == Customer.id, Message.direction == "out")
                    .scalar_subquery())
        if "within_days" in data["last_outbound"]:
            parts.append(last_out >= now - timedelta(days=data["last_outbound"]["within_days"]))
        if "before_days" in data["last_outbound"]:
            parts.append(or_(last_out.is_(None), last_out < now - timedelta(
                days=data["last_outbound"]["before_days"])))
    for key, wanted in data.get("consent", {}).items():
        opted = exists().where(OptOut.customer_id == Customer.id, OptOut.channel_id.in_(wanted))
        parts.append(not_(opted) if key == "not_opted_out" else opted)
    if "team_id" in data:
        parts.append(exists().where(Conversation.customer_id == Customer.id,
                                    Conversation.team_id.in_(data["team_id"])))
    if "opted_out" in data:
        any_opt_out = exists().where(OptOut.customer_id == Customer.id)
        parts.append(any_opt_out if data["opted_out"] else not_(any_opt_out))
    return and_(*parts)


def _items_contain(session: Session, needle: str):
    """An order's items (a JSON list of objects) have a text value containing `needle`
    (lower case), whatever its letter case: PostgreSQL lowers the texts of the items;
    SQLite's lower() knows ASCII only, so it asks tl_item_texts (app/infra/db.py)."""
    pattern = "%" + needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    if session.bind.dialect.name == "postgresql":
        from sqlalchemy import Text, cast, literal_column

        every_text = literal_column("""'$.** ? (@.type() == "string")'::jsonpath""")
        texts = func.jsonb_path_query_array(Order.items, every_text)
        return func.lower(cast(texts, Text)).like(pattern, escape="\\")
    return func.tl_item_texts(Order.items).like(pattern, escape="\\")


def _orders_condition(session: Session, orders: dict[str, Any], now):
    own = Order.customer_id == Customer.id
    parts = []
    if "count_min" in orders or "count_max" in orders:
        count = select(func.count(Order.id)).where(own).scalar_subquery()
        if "count_min" in orders:
            parts.append(count >= orders["count_min"])
        if "count_max" in orders:
            parts.append(count <= orders["count_max"])
    if "total_min" in orders or "total_max" in orders:
        total = select(func.coalesce(func.sum(Order.total), 0)).where(own).scalar_subquery()
        if "total_min" in orders:
            parts.append(total >= Decimal(orders["total_min"]))
        if "total_max" in orders:
            parts.append(total <= Decimal(orders["total_max"]))
    if "last_within_days" in orders or "last_before_days" in orders:
        last = select(func.max(Order.placed_at)).where(own).scalar_subquery()
        if "last_within_days" in orders:
            parts.append(last >= now - timedelta(days=orders["last_within_days"]))
        if "last_before_days" in orders:
            parts.append(last < now - timedelta(days=orders["last_before_days"]))
    if "status" in orders:
        parts.append(exists().where(own, Order.status.in_(orders["status"])))
    if "items_contain" in orders:
        parts.append(exists().where(own, _items_contain(session, orders["items_contain"])))
    return and_(*parts) if parts else true()


def members_query(session: Session, data: dict[str, Any], visible=None):
    """SELECT customers.id of the filter's members (visible: the caller's channels, None all),
    ordered by id."""
    from app.domain.customers import visible_customer_filter

    stmt = select(Customer.id).where(condition(session, data))
    seen = visible_customer_filter(visible)
    if seen is not None:
        stmt = stmt.where(seen)
    return stmt.order_by(Customer.id)


def count(session: Session, data: dict[str, Any], visible=None) -> int:
    inner = members_query(session, data, visible).order_by(None).subquery()
    return int(session.scalar(select(func.count()).select_from(inner)) or 0)


def create_segment(session: Session, name: Any, data: Any, agent_id: int | None) -> Segment:
    segment = Segment(name=validate_name(name), filter=validate_filter(data or {}),
                      created_by_id=agent_id)
    session.add(segment)
    session.flush()
    return segment
