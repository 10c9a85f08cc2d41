"""Customers as CSV, for `threadline customers import|export` (app/cli_customers.py) and the
API's /customers/import and /customers/export.

Columns: id, name, company, email, phone, telegram, whatsapp, site_user, tags, owner_email,
cf.<custom field key>. Several handles of one kind, and tags, are separated by ";".

Import runs in one transaction with a savepoint per row: a row with any bad field is
rejected whole (reported as row number, field, reason) and nothing of it is written; the
good rows commit together at the end. `--dry-run` checks everything and writes nothing.
A row's handles find an existing customer (which is updated) or a new one is created;
handles of two different customers in one row are a rejection, not a silent merge.
"""
from __future__ import annotations

import csv
import io
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

HANDLE_COLUMNS = ("email", "phone", "telegram", "whatsapp", "site_user")
COLUMNS = ("id", "name", "company", *HANDLE_COLUMNS, "tags", "owner_email")


# A cell a spreadsheet would run as a formula (=, +, -, @, or a tab / carriage return before
# one) is written with a leading apostrophe (so is one that would read as escaped: an
# apostrophe before such a character or another apostrophe), and import takes it off again:
# export, then import, gives back the same values.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def escape_cell(value: Any) -> Any:
    if isinstance(value, str) and (value.startswith(FORMULA_START)
                                   or unescape_cell(value) != value):
        return "'" + value
    return value


def unescape_cell(value: str | None) -> str | None:
    if value and value.startswith("'") and value[1:].startswith((*FORMULA_START, "'")):
        return value[1:]
    return value


def _split(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(";") if v.strip()]


class _RowErrors(Exception):
    def __init__(self, errors: list[tuple[str, str]]):
        self.errors = errors


def import_csv(session: Session, text: str, dry_run: bool = False, actor=None) -> dict[str, Any]:
    from app.infra.schemas import customer_schema
    from app.domain.customers import (
        FieldError,
        agent_by_email,
        canonical,
        validate_custom_fields,
    )
    from app.domain.handles import normalize_handle
    from app.infra.models import AuditLog, Customer, Identity, utcnow
    from app.infra.events import record_event

    report: dict[str, Any] = {"dry_run": dry_run, "rows": 0, "created": 0, "updated": 0,
                              "rejected": []}
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip() for h in (reader.fieldnames or [])]
    reader.fieldnames = header
    unknown = [h for h in header if h not in COLUMNS and not h.startswith("cf.")]
    if not header or unknown or not any(h in header for h in HANDLE_COLUMNS + ("id",)):
        reason = (f"unknown column; known: {', '.join(COLUMNS)}, cf.<field>" if unknown
                  else "the header needs id or a handle column (email, phone, ...)")
        report["rejected"].append({"row": 1, "field": unknown[0] if unknown else "",
                                   "reason": reason})
        return report
    session.commit()  # start clean: the import is one transaction of its own
    for number, row in enumerate(reader, start=2):
        row = {key: unescape_cell(value) if isinstance(value, str) else value
               for key, value in row.items()}
        report["rows"] += 1
        try:
            with session.begin_nested():
                created = _import_row(session, row, Customer, Identity, normalize_handle,
                                      canonical, validate_custom_fields, agent_by_email,
                                      FieldError)
                customer = created[0]
                session.flush()
                record_event(session, "customer.created" if created[1] else "customer.updated",
                             customer_schema.dump(customer), None)
            report["created" if created[1] else "updated"] += 1
        except _RowErrors as exc:
            for field, reason in exc.errors:
                report["rejected"].append({"row": number, "field": field, "reason": reason})
    if dry_run:
        session.rollback()
        return report
    session.add(AuditLog(actor_id=actor.id if actor else None, action="customers.import",
                         target_type="customer", target_id=None,
                         details={k: report[k] for k in ("rows", "created", "updated")}
                         | {"rejected": len(report["rejected"]), "at": utcnow().isoformat()}))
    session.commit()
    return report


def _import_row(session, row, Customer, Identity, normalize_handle, canonical,
                validate_custom_fields, agent_by_email, FieldError):
    errors: list[tuple[str, str]] = []
    handles: list[tuple[str, str]] = []
    for kind in HANDLE_COLUMNS:
        for value in _split(row.get(kind)):
            try:
                handles.append((kind, normalize_handle(kind, value)))
            except ValueError as exc:
                errors.append((kind, f"{value!r}: {exc}"))
    customer = None
    raw_id = (row.get("id") or "").strip()
    if raw_id:
        customer = session.get(Customer, int(raw_id)) if raw_id.isdigit() else None
        if customer is None:
            errors.append(("id", f"no customer {raw_id}"))
        elif customer.merged_into_id:
            errors.append(("id", f"customer {raw_id} was merged into {customer.merged_into_id}"))
    owners: dict[int, Any] = {}
    for kind, value in handles:
        identity = session.scalar(select(Identity).where(Identity.kind == kind,
                                                         Identity.value == value))
        if identity is not None:
            owner = canonical(session, identity.customer)
            owners[owner.id] = owner
    if customer is not None and set(owners) - {customer.id}:
        errors.append(("id", "handles belong to customer(s) "
                             f"{', '.join(map(str, sorted(set(owners) - {customer.id})))}"))
    elif customer is None and len(owners) > 1:
        errors.append((HANDLE_COLUMNS[0] if row.get("email") else "phone",
                       f"handles belong to different customers: {', '.join(map(str, sorted(owners)))}"))
    if not raw_id and not handles and not errors:
        errors.append(("email", "a row needs an id or at least one handle"))
    owner_id = None
    if (row.get("owner_email") or "").strip():
        try:
            owner_id = agent_by_email(session, row["owner_email"].strip(), "owner_email")
        except FieldError as exc:
            errors.append((exc.field, exc.message))
    custom = {key[3:]: value for key, value in row.items()
              if key and key.startswith("cf.") and value not in (None, "")}
    base = customer or (next(iter(owners.values())) if len(owners) == 1 else None)
    fields = None
    try:
        fields = validate_custom_fields(session, custom, base.custom_fields if base else {})
    except FieldError as exc:
        errors.append((exc.field, exc.message))
    name = (row.get("name") or "").strip()
    if len(name) > 200:
        errors.append(("name", "longer than 200 characters"))
    if errors:
        raise _RowErrors(errors)
    created = False
    if base is None:
        base = Customer(name=name or handles[0][1], source={"channel": "import"})
        session.add(base)
        session.flush()
        created = True
    elif name:
        base.name = name
    if (row.get("company") or "").strip():
        base.company = row["company"].strip()[:200]
    tags = _split(row.get("tags"))
    if tags:
        base.tags = list(dict.fromkeys([*(base.tags or []), *tags]))
    if owner_id is not None:
        base.owner_id = owner_id
    if custom:
        base.custom_fields = fields
    known = {(i.kind, i.value) for i in session.scalars(
        select(Identity).where(Identity.customer_id == base.id))}
    for kind, value in dict.fromkeys(handles):
        if (kind, value) not in known:
            session.add(Identity(customer_id=base.id, kind=kind, value=value, verified=True))
    return base, created


def export_csv(session: Session) -> str:
    from app.infra.models import Agent, Customer, CustomFieldDef, Identity

    keys = list(session.scalars(select(CustomFieldDef.key).order_by(CustomFieldDef.position,
                                                                    CustomFieldDef.id)))
    owners = dict(session.execute(select(Agent.id, Agent.email)).all())
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([*COLUMNS, *(f"cf.{k}" for k in keys)])
    last_id = 0
    while True:  # in batches: an export of many customers stays in bounded memory
        batch = list(session.scalars(select(Customer).where(
            Customer.id > last_id, Customer.merged_into_id.is_(None))
            .order_by(Customer.id).limit(1000)))
        if not batch:
            break
        by_customer: dict[int, dict[str, list[str]]] = {}
        for identity in session.scalars(select(Identity).where(
                Identity.customer_id.in_([c.id for c in batch])).order_by(Identity.id)):
            by_customer.setdefault(identity.customer_id, {}).setdefault(
                identity.kind, []).append(identity.value)
        for customer in batch:
            handles = by_customer.get(customer.id, {})
            writer.writerow([escape_cell(cell) for cell in (
                customer.id, customer.name, customer.company or "",
                *(";".join(handles.get(kind, [])) for kind in HANDLE_COLUMNS),
                ";".join(customer.tags or []), owners.get(customer.owner_id, ""),
                *("" if customer.custom_fields.get(k) is None else customer.custom_fields[k]
                  for k in keys))])
        last_id = batch[-1].id
    return out.getvalue()

