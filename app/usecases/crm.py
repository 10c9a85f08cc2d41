"""CRM records from the `crm` channel (signed shop / CRM webhooks), applied through the same
upserts as the API; the webhook and suggestion-scan jobs.

Wired (record handler, jobs) in app/wiring.py.
"""
from __future__ import annotations

import logging
import re
import unicodedata

import phonenumbers

from marshmallow import ValidationError
from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from connectors.crm import CrmUpsert

from app.infra.schemas import ContactIn, DealIn, NoteUpsertIn, OrderIn
from app.domain.customers import (
    FieldError,
    canonical,
    upsert_contact,
    upsert_deal,
    upsert_note,
    upsert_order,
)
from app.domain.handles import normalize_handle
from app.domain.suggestions import suggest
from app.infra.models import Channel, Customer, CustomerMerge, Identity, MergeSuggestion
from app.infra.state import db

log = logging.getLogger(__name__)

SCHEMAS = {"order": OrderIn, "deal": DealIn, "note": NoteUpsertIn, "contact": ContactIn}
UPSERTS = {"order": upsert_order, "deal": upsert_deal, "note": upsert_note,
           "contact": upsert_contact}


class CrmRecordError(ValueError):
    """A pushed record that does not validate: the event is marked failed with this text."""


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

# Free-mail domains are no company: two "Jan Kowalski" at gmail.com are a coincidence.
FREE_MAIL = frozenset({
    "gmail.com", "googlemail.com", "yahoo.com", "ymail.com", "outlook.com", "hotmail.com",
    "live.com", "msn.com", "icloud.com", "me.com", "mac.com", "aol.com", "proton.me",
    "protonmail.com", "pm.me", "tutanota.com", "zoho.com", "mail.com", "gmx.com", "gmx.de",
    "gmx.net", "web.de", "t-online.de", "freenet.de", "mail.ru", "yandex.ru", "yandex.com",
    "ya.ru", "bk.ru", "list.ru", "inbox.ru", "internet.ru", "rambler.ru", "ro.ru", "lenta.ru",
    "autorambler.ru", "myrambler.ru", "mail.ua", "ukr.net", "i.ua", "meta.ua", "tut.by",
    "wp.pl", "o2.pl", "onet.pl", "op.pl", "interia.pl", "interia.eu", "poczta.fm", "gazeta.pl",
    "tlen.pl", "vp.pl", "yahoo.co.uk", "yahoo.de", "yahoo.fr", "hotmail.co.uk", "btinternet.com",
    "orange.fr", "free.fr", "laposte.net", "libero.it", "seznam.cz", "qq.com", "163.com",
    "126.com",
})
SAME_PHONE = "same phone on WhatsApp and another channel"
SAME_NAME = "same name and company domain"
PHONE_SCORE, NAME_SCORE = 80, 50
# customers at one domain compared by name per scan (newest first): a bound on the work
NAME_CANDIDATES = 2000
_WORD = re.compile(r"[^\W\d_]+(?:[-'’][^\W\d_]+)*")


def name_key(name: str | None) -> str | None:
    """A full name compared loosely: case, spacing, word order and ё/е do not matter. None
    for anything that is no full name (one word, initials, a phone number, an address)."""
    text = unicodedata.normalize("NFKC", name or "").casefold().replace("ё", "е")
    if "@" in text:
        return None
    words = [w for w in _WORD.findall(text) if len(w) > 1]
    return " ".join(sorted(words)) if len(words) >= 2 else None


def company_domain(address: str) -> str | None:
    domain = address.rpartition("@")[2].strip().lower().rstrip(".")
    if not domain or "." not in domain or domain in FREE_MAIL:
        return None
    return domain


def whatsapp_phone(wa_id: str) -> str | None:
    """The E.164 phone a wa_id stands for (a BSUID or a non-number: None)."""
    if not wa_id.isdigit():
        return None
    try:
        number = phonenumbers.parse("+" + wa_id, None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _decided(session: Session, one: int, two: int) -> bool:
    """An agent already said something about this pair: rejected or accepted a suggestion,
    or merged them (and maybe unmerged them again)."""
    low, high = sorted((one, two))
    status = session.scalar(select(MergeSuggestion.status).where(
        MergeSuggestion.customer_id == low, MergeSuggestion.other_customer_id == high))
    if status is not None and status != "open":
        return True
    return session.scalar(select(CustomerMerge.id).where(or_(
        and_(CustomerMerge.target_id == one, CustomerMerge.source_id == two),
        and_(CustomerMerge.target_id == two, CustomerMerge.source_id == one))).limit(1)) is not None


def _propose(session: Session, customer_id: int, other_id: int, reason: dict, score: int) -> bool:
    """A new suggestion, or a new reason for an open one; False when nothing changed."""
    if other_id == customer_id or _decided(session, customer_id, other_id):
        return False
    low, high = sorted((customer_id, other_id))
    open_one = session.scalar(select(MergeSuggestion).where(
        MergeSuggestion.customer_id == low, MergeSuggestion.other_customer_id == high))
    if open_one is not None and reason in open_one.reasons:
        return False
    suggest(session, customer_id, other_id, reason, score)
    return True


def _phone_twins(session: Session, identities: list[Identity]):
    """(other customer, reason) for the same number as a phone handle here and a WhatsApp id
    there, or the other way round (WhatsApp ids are the phone's digits)."""
    for identity in identities:
        if identity.kind == "phone":
            phone = identity.value
            try:
                twin = ("whatsapp", normalize_handle("whatsapp", phone))
            except ValueError:
                continue
        elif identity.kind == "whatsapp":
            phone = whatsapp_phone(identity.value)
            if phone is None:
                continue
            twin = ("phone", phone)
        else:
            continue
        other = session.scalar(select(Identity).where(Identity.kind == twin[0],
                                                      Identity.value == twin[1]))
        if other is not None:
            yield canonical(session, other.customer), {"reason": SAME_PHONE,
                                                       "handle": f"phone:{phone}"}


def _namesakes(session: Session, customer: Customer, identities: list[Identity]):
    """(other customer, reason) for the same full name with an email at the same company
    domain. Names are compared in Python: SQL lower() folds only ASCII (SQLite) or follows
    the database's locale (PostgreSQL), and "Смирнова Анна" is "Анна Смирнова"."""
    key = name_key(customer.name)
    if key is None:
        return
    domains = sorted({d for i in identities if i.kind == "email"
                      for d in [company_domain(i.value)] if d})
    for domain in domains:
        rows = session.execute(
            select(Customer.id, Customer.name).join(Identity, Identity.customer_id == Customer.id)
            .where(Identity.kind == "email",
                   Identity.value.endswith("@" + domain, autoescape=True),
                   Customer.id != customer.id, Customer.merged_into_id.is_(None))
            .distinct().order_by(Customer.id.desc()).limit(NAME_CANDIDATES))
        for other_id, other_name in rows:
            if name_key(other_name) == key:
                yield session.get(Customer, other_id), {"reason": SAME_NAME, "domain": domain}


def scan_customer(customer_id: int) -> int:
    """Evidence exact lookups miss, for one customer (queued when a customer is created,
    gains a handle or is renamed: app/hooks): the same phone as a WhatsApp id and a phone
    handle of another customer; the same full name with an email at the same company domain.
    A pair an agent decided about (rejected, accepted, merged or unmerged) is left alone.
    Returns how many suggestions were made or given a new reason."""
    session = db.session
    customer = session.get(Customer, customer_id)
    if customer is None or customer.merged_into_id:
        session.rollback()
        return 0
    identities = list(session.scalars(select(Identity).where(Identity.customer_id == customer_id)
                                      .order_by(Identity.id)))
    made = 0
    for other, reason in _phone_twins(session, identities):
        made += _propose(session, customer.id, other.id, reason, PHONE_SCORE)
    for other, reason in _namesakes(session, customer, identities):
        made += _propose(session, customer.id, other.id, reason, NAME_SCORE)
    session.commit()
    return made

