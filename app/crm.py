"""CRM records from the `crm` channel (signed shop / CRM webhooks), applied through the same
upserts as the API; the webhook and suggestion-scan jobs.

Imported by app/jobs._register_tasks, so every process (web, worker, CLI) has the record
handlers, the tasks and the commit listeners of app/hooks.
"""
from __future__ import annotations

import logging
import re

from marshmallow import ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from connectors.crm import CrmUpsert

from . import hooks
from .api.schemas import ContactIn, DealIn, NoteUpsertIn, OrderIn
from .customers import FieldError, canonical, upsert_contact, upsert_deal, upsert_note, upsert_order
from .ingest import _suggest, handles
from .jobs import task
from .models import Channel, Customer, Identity
from .state import db

log = logging.getLogger(__name__)

SCHEMAS = {"order": OrderIn, "deal": DealIn, "note": NoteUpsertIn, "contact": ContactIn}
UPSERTS = {"order": upsert_order, "deal": upsert_deal, "note": upsert_note,
           "contact": upsert_contact}


class CrmRecordError(ValueError):
    """A pushed record that does not validate: the event is marked failed with this text."""


@handles(CrmUpsert)
def apply_crm_upsert(session: Session, channel: Channel, record: CrmUpsert) -> None:
    try:
        data = SCHEMAS[record.kind]().load(dict(record.data))
    except ValidationError as exc:
        raise CrmRecordError(f"{record.kind}: {exc.messages}") from None
    if record.kind == "contact" and "customer" not in data and "customer_id" not in data:
        raise CrmRecordError("contact: give customer_id or customer handles")
    try:
        UPSERTS[record.kind](session, data)
    except FieldError as exc:
        raise CrmRecordError(f"{record.kind}: {exc}") from None


# --- suggestions beyond exact handles ----------------------------------------------------

FREE_MAIL = frozenset({
    "gmail.com", "googlemail.com", "yahoo.com", "outlook.com", "hotmail.com", "live.com",
    "icloud.com", "me.com", "aol.com", "proton.me", "protonmail.com", "gmx.de", "gmx.net",
    "web.de", "mail.ru", "yandex.ru", "ya.ru", "bk.ru", "list.ru", "inbox.ru", "rambler.ru",
    "wp.pl", "o2.pl", "onet.pl", "interia.pl", "yahoo.co.uk", "qq.com",
})


def _name_key(name: str | None) -> str:
    return re.sub(r"\s+", " ", (name or "").strip()).casefold()


def scan_customer(customer_id: int) -> int:
    """Evidence exact lookups miss: the same phone as a WhatsApp id and a phone handle of
    another customer; the same full name with an email at the same company domain.
    Returns how many suggestions were made or reinforced."""
    session = db.session
    customer = session.get(Customer, customer_id)
    if customer is None or customer.merged_into_id:
        session.rollback()
        return 0
    made = 0
    identities = list(session.scalars(select(Identity).where(Identity.customer_id == customer_id)))
    for identity in identities:
        if identity.kind == "phone":
            twin = ("whatsapp", identity.value.lstrip("+"))
        elif identity.kind == "whatsapp" and identity.value.isdigit():
            twin = ("phone", "+" + identity.value)
        else:
            continue
        other = session.scalar(select(Identity).where(Identity.kind == twin[0],
                                                      Identity.value == twin[1]))
        if other is not None:
            owner = canonical(session, other.customer)
            if owner.id != customer.id:
                _suggest(session, customer.id, owner.id,
                         {"reason": "same phone on WhatsApp and another channel",
                          "handle": f"phone:+{twin[1].lstrip('+')}"}, score=80)
                made += 1
    name = _name_key(customer.name)
    domains = {i.value.rsplit("@", 1)[1] for i in identities
               if i.kind == "email" and "@" in i.value} - FREE_MAIL
    if len(name) >= 3 and " " in name and domains:
        for domain in sorted(domains):
            rows = session.execute(
                select(Customer).join(Identity, Identity.customer_id == Customer.id)
                .where(Identity.kind == "email", Identity.value.like(f"%@{domain}"),
                       Customer.id != customer.id, Customer.merged_into_id.is_(None),
                       func.lower(Customer.name) == customer.name.strip().lower())
                .limit(20)).scalars()
            for other in dict.fromkeys(rows):
                if _name_key(other.name) == name:
                    _suggest(session, customer.id, other.id,
                             {"reason": "same name and company domain", "domain": domain},
                             score=50)
                    made += 1
    session.commit()
    return made


task(hooks.deliver_webhook)
task(hooks.sweep_webhooks)
task(scan_customer)
