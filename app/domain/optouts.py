"""Opt-outs: a customer asked not to get campaigns on a channel. Recorded by a keyword
message ("STOP", "СТОП", "отписаться", "wypisz"...), Telegram's block, the email unsubscribe
link (a signed token, app/web/unsubscribe.py) or an agent; shown on the customer's card."""
from __future__ import annotations

import hashlib
import hmac
import re

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.infra.models import Channel, OptOut
from app.infra.state import config

# a whole message saying one of these (any case, surrounding punctuation ignored) opts out
KEYWORDS = frozenset({"стоп", "отписаться", "отписка", "stop", "unsubscribe", "wypisz",
                      "wypisz się", "wypisz sie"})
_EDGES = re.compile(r"^[\s.!¡?¿,;:\"'«»„”“()\-]+|[\s.!¡?¿,;:\"'«»„”“()\-]+$")


def is_opt_out_keyword(text: str | None) -> bool:
    if not text or len(text) > 40:
        return False
    words = " ".join(_EDGES.sub("", text).split()).casefold()
    return words in KEYWORDS


def record(session: Session, customer_id: int, channel_id: int, source: str,
           detail: str = "", campaign_id: int | None = None) -> OptOut | None:
    """The opt-out (the existing one if already recorded); None when it already existed."""
    existing = session.scalar(select(OptOut).where(OptOut.customer_id == customer_id,
                                                   OptOut.channel_id == channel_id))
    if existing is not None:
        return None
    try:
        with session.begin_nested():
            row = OptOut(customer_id=customer_id, channel_id=channel_id, source=source,
                         detail=detail[:200], campaign_id=campaign_id)
            session.add(row)
    except IntegrityError:   # recorded at the same moment by another transaction
        return None
    return row


def remove(session: Session, customer_id: int, channel_id: int) -> bool:
    row = session.scalar(select(OptOut).where(OptOut.customer_id == customer_id,
                                              OptOut.channel_id == channel_id))
    if row is None:
        return False
    session.delete(row)
    return True


def of_customer(session: Session, customer_id: int) -> list[dict]:
    """For the card: every channel the customer opted out of, with how and when."""
    rows = session.execute(
        select(OptOut, Channel.name, Channel.kind).join(Channel, Channel.id == OptOut.channel_id)
        .where(OptOut.customer_id == customer_id).order_by(OptOut.id))
    return [{"channel_id": o.channel_id, "channel_name": name, "channel_kind": kind,
             "source": o.source, "campaign_id": o.campaign_id,
             "created_at": o.created_at.isoformat()} for o, name, kind in rows]


# --- the email unsubscribe link ----------------------------------------------------------

def unsubscribe_token(customer_id: int, channel_id: int, campaign_id: int | None = None) -> str:
    body = f"{customer_id}.{channel_id}.{campaign_id or 0}"
    mac = hmac.new(config["secret_key"].encode(), f"unsubscribe:{body}".encode(),
                   hashlib.sha256).hexdigest()[:24]
    return f"{body}.{mac}"


def read_unsubscribe_token(token: str) -> tuple[int, int, int | None] | None:
    """(customer_id, channel_id, campaign_id) of a token we signed; None otherwise."""
    parts = (token or "").split(".")
    if len(parts) != 4 or not all(p.isdigit() for p in parts[:3]) or len(token) > 120:
        return None
    customer_id, channel_id, campaign_id = (int(p) for p in parts[:3])
    if not hmac.compare_digest(unsubscribe_token(customer_id, channel_id, campaign_id), token):
        return None
    return customer_id, channel_id, campaign_id or None


def unsubscribe_url(customer_id: int, channel_id: int, campaign_id: int | None = None) -> str:
    server = config["server"]
    base = (server.get("public_url") or f"http://{server['host']}:{server['port']}").rstrip("/")
    return f"{base}/unsubscribe/{unsubscribe_token(customer_id, channel_id, campaign_id)}"
