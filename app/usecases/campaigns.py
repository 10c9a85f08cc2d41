"""Campaigns: one message to a segment, each customer once, on the channel that suits them.

- Exactly one per customer: the runner first claims a (campaign, customer) row (unique), in
  batches, choosing the customer's channel; then, at each channel's pace, it turns claimed
  rows into queued outbound messages, the row's pending → queued change and the message in
  one transaction (a conditional UPDATE: a row is queued once, whoever runs). A worker
  killed anywhere leaves either the claim without a message (queued by the next runner) or
  both; never a second message. Sends go through the durable outbox (app/usecases/outbox.py).
- Channel policy: the channel the customer last wrote from, when it can still reach them
  (not opted out, a handle not blocked, WhatsApp's 24-hour window open or a template
  variant given); then the fall-backs in the policy's order of channel kinds.
- Pacing: per channel, at most `campaigns.<kind>_rate` messages in any second (a channel's
  setting `send_rate` overrides it). The runner queues them and drains the outbox itself, so
  a single worker process never leaves sends waiting behind the campaign.
- The runner is the job `run_campaign`, one at a time per campaign (a lease, renewed each
  step); it works in slices of `campaigns.run_seconds` and queues itself again; the sweep
  (`tick`) starts scheduled campaigns and revives a running one whose runner died.
- Reactions to committed events (like app/usecases/automation.py, own cursor "campaigns"):
  an opt-out keyword records the opt-out; a recipient's message within `reply_days` counts
  as a reply and is marked with the campaign (message meta `campaign_id`).
"""
from __future__ import annotations

import logging
import re
import time
import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from app.domain import optouts, segments
from app.domain.errors import DomainError, NotFound
from app.domain.handles import CHANNEL_IDENTITY_KINDS
from app.infra.db import after_commit
from app.infra.events import NAMESPACE, record_event
from app.infra.models import (
    Agent,
    Campaign,
    CampaignRecipient,
    Channel,
    Conversation,
    Customer,
    Event,
    Identity,
    Message,
    OptOut,
    Segment,
    utcnow,
)
from app.infra.schemas import customer_schema, message_schema
from app.infra.state import config, db, queue
from app.usecases.event_reader import EventReader

log = logging.getLogger(__name__)

JOB = "run_campaign"
REACT_JOB = "campaign_reactions"
CURSOR = "campaigns"
KINDS = ("telegram", "whatsapp", "webchat", "email")
STATUSES = ("draft", "scheduled", "running", "paused", "done", "cancelled")
VARIABLES = ("name", "first_name", "company")
COUNT_KEYS = ("queued", "sent", "delivered", "read", "failed", "replied", "opted_out")
TICK = 0.2
LOOKAHEAD = 2.0   # seconds of each channel's pace the runner keeps queued in the outbox
WINDOW = timedelta(hours=24)
_VARIABLE = re.compile(r"\{([a-z_]+)\}")


class CampaignError(DomainError):
    pass


# --- validation and editing --------------------------------------------------------------

def _text(field: str, value: Any, limit: int = 4096, required: bool = True) -> str:
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value.strip()):
        raise CampaignError(field, "a text is required")
    if len(value) > limit:
        raise CampaignError(field, f"at most {limit} characters")
    unknown = sorted(set(_VARIABLE.findall(value)) - set(VARIABLES))
    if unknown:
        raise CampaignError(field, f"unknown variable {{{unknown[0]}}}; known: "
                                   + ", ".join("{" + v + "}" for v in VARIABLES))
    return value


def _variants(data: Any) -> dict[str, Any]:
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise CampaignError("variants", "an object by channel kind")
    out: dict[str, Any] = {}
    for kind, variant in data.items():
        field = f"variants.{kind}"
        if kind not in KINDS:
            raise CampaignError(field, f"unknown channel kind; one of {', '.join(KINDS)}")
        if not isinstance(variant, dict):
            raise CampaignError(field, "an object")
        allowed = {"email": ("subject", "text", "html"), "whatsapp": ("text", "template"),
                   "telegram": ("text", "buttons"), "webchat": ("text",)}[kind]
        extra = [k for k in variant if k not in allowed]
        if extra:
            raise CampaignError(f"{field}.{extra[0]}", f"unknown; one of {', '.join(allowed)}")
        clean: dict[str, Any] = {}
        for key in ("text", "subject", "html"):
            if key in variant:
                clean[key] = _text(f"{field}.{key}", variant[key],
                                   limit=200 if key == "subject" else 100_000)
        if "template" in variant:
            template = variant["template"]
            if not isinstance(template, dict) or not isinstance(template.get("name"), str) \
                    or not template["name"].strip():
                raise CampaignError(f"{field}.template.name", "an approved template's name")
            if not isinstance(template.get("language", "en"), str):
                raise CampaignError(f"{field}.template.language", "a language code")
            params = template.get("parameters", [])
            if not isinstance(params, list) or not all(isinstance(p, str) for p in params):
                raise CampaignError(f"{field}.template.parameters", "a list of texts")
            expected = template.get("parameter_count")
            if isinstance(expected, int) and len(params) != expected:
                raise CampaignError(f"{field}.template.parameters",
                                    f"the template takes {expected} parameters, "
                                    f"{len(params)} given")
            for n, p in enumerate(params):
                _text(f"{field}.template.parameters.{n}", p, limit=1000)
            clean["template"] = {"name": template["name"].strip(),
                                 "language": template.get("language") or "en",
                                 "parameters": params}
        if "buttons" in variant:
            buttons = variant["buttons"]
            if not isinstance(buttons, list) or len(buttons) > 3 or not all(
                    isinstance(b, str) and 0 < len(b.strip()) <= 40 for b in buttons):
                raise CampaignError(f"{field}.buttons", "up to 3 button titles of 1-40 characters")
            clean["buttons"] = [b.strip() for b in buttons]
        out[kind] = clean
    return out


def _policy(data: Any) -> dict[str, Any]:
    if data is None:
        return {"order": list(KINDS)}
    if not isinstance(data, dict) or set(data) - {"order"}:
        raise CampaignError("channel_policy", 'an object {"order": [channel kinds]}')
    order = data.get("order", list(KINDS))
    if not isinstance(order, list) or not order or any(k not in KINDS for k in order) \
            or len(set(order)) != len(order):
        raise CampaignError("channel_policy.order",
                            f"a list of distinct channel kinds: {', '.join(KINDS)}")
    return {"order": order}


def _schedule(data: Any) -> tuple[dict[str, Any], datetime | None]:
    if not data:
        return {}, None
    if not isinstance(data, dict) or set(data) - {"at"}:
        raise CampaignError("schedule", 'an object {"at": ISO time with its zone}')
    try:
        at = datetime.fromisoformat(str(data["at"]).replace("Z", "+00:00"))
    except (KeyError, ValueError):
        raise CampaignError("schedule.at", "an ISO 8601 time, e.g. 2026-12-01T09:00:00+01:00")
    if at.tzinfo is None:
        raise CampaignError("schedule.at", "give the time zone, e.g. +01:00 or Z")
    return {"at": at.isoformat()}, at


def _segment(session: Session, value: Any) -> Segment:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 2**31:
        raise CampaignError("segment_id", "a segment id is required")
    segment = session.get(Segment, value)
    if segment is None:
        raise CampaignError("segment_id", "no such segment")
    return segment


def create_campaign(session: Session, data: dict[str, Any], agent: Agent) -> Campaign:
    name = data.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        raise CampaignError("name", "a name of 1-200 characters is required")
    segment = _segment(session, data.get("segment_id"))
    schedule, at = _schedule(data.get("schedule"))
    campaign = Campaign(name=name.strip(), segment_id=segment.id, text=_text("text", data.get("text")),
                        variants=_variants(data.get("variants")),
                        channel_policy=_policy(data.get("channel_policy")),
                        schedule=schedule, scheduled_at=at, status="draft",
                        created_by_id=agent.id)
    session.add(campaign)
    session.flush()
    return campaign


def update_campaign(session: Session, campaign: Campaign, data: dict[str, Any]) -> None:
    """A draft, scheduled or paused campaign's fields; a running one's message never (422)."""
    message_fields = {"text", "variants", "segment_id", "channel_policy"} & set(data)
    if campaign.status in ("running", "done", "cancelled") and message_fields:
        field = sorted(message_fields)[0]
        raise CampaignError(field, f"a {campaign.status} campaign's message cannot be changed; "
                                   "pause or cancel it")
    if campaign.status == "paused" and "segment_id" in data:
        raise CampaignError("segment_id", "a started campaign keeps its segment")
    if "name" in data:
        name = data["name"]
        if not isinstance(name, str) or not name.strip() or len(name) > 200:
            raise CampaignError("name", "a name of 1-200 characters is required")
        campaign.name = name.strip()
    if "text" in data:
        campaign.text = _text("text", data["text"])
    if "variants" in data:
        campaign.variants = _variants(data["variants"])
    if "channel_policy" in data:
        campaign.channel_policy = _policy(data["channel_policy"])
    if "segment_id" in data:
        campaign.segment_id = _segment(session, data["segment_id"]).id
    if "schedule" in data:
        if campaign.status not in ("draft", "scheduled"):
            raise CampaignError("schedule", "only a campaign not started can be rescheduled")
        campaign.schedule, campaign.scheduled_at = _schedule(data["schedule"])


def _transition(campaign: Campaign, allowed: tuple[str, ...], action: str) -> None:
    if campaign.status not in allowed:
        raise CampaignError(None, f"a {campaign.status} campaign cannot {action}", status=409)


def start(session: Session, campaign: Campaign, visible=None) -> None:
    """Start now, or at the schedule's time. Refused (422) when the segment is empty."""
    _transition(campaign, ("draft", "scheduled"), "start")
    segment = session.get(Segment, campaign.segment_id) if campaign.segment_id else None
    if segment is None:
        raise CampaignError("segment_id", "the campaign's segment was deleted")
    if segments.count(session, segment.filter, visible) == 0:
        raise CampaignError("segment_id", "the segment has no customers")
    campaign.segment_filter = dict(segment.filter or {})
    if campaign.scheduled_at is not None and campaign.scheduled_at > utcnow():
        campaign.status = "scheduled"
    else:
        _run_now(session, campaign)
    progress_after_commit(session, campaign)


def _run_now(session: Session, campaign: Campaign) -> None:
    campaign.status = "running"
    campaign.started_at = campaign.started_at or utcnow()
    campaign_id = campaign.id
    after_commit(session, lambda: queue.enqueue(JOB, campaign_id))


def pause(session: Session, campaign: Campaign) -> None:
    _transition(campaign, ("running", "scheduled"), "be paused")
    campaign.status = "paused"
    progress_after_commit(session, campaign)


def resume(session: Session, campaign: Campaign) -> None:
    _transition(campaign, ("paused",), "resume")
    _run_now(session, campaign)
    progress_after_commit(session, campaign)


def cancel(session: Session, campaign: Campaign) -> None:
    """Stops new sends at once: claimed rows are dropped, messages not yet taken by a worker
    are failed with the reason (a send already in flight finishes)."""
    _transition(campaign, ("draft", "scheduled", "running", "paused"), "be cancelled")
    campaign.status = "cancelled"
    campaign.finished_at = utcnow()
    session.execute(update(CampaignRecipient)
                    .where(CampaignRecipient.campaign_id == campaign.id,
                           CampaignRecipient.status == "pending")
                    .values(status="cancelled").execution_options(synchronize_session=False))
    mine = select(CampaignRecipient.message_id).where(CampaignRecipient.campaign_id == campaign.id,
                                                      CampaignRecipient.message_id.is_not(None))
    stopped = list(session.scalars(
        select(Message.id).where(Message.id.in_(mine), Message.status == "queued")
        .with_for_update()))
    if stopped:
        session.execute(update(Message).where(Message.id.in_(stopped),
                                              Message.status == "queued")
                        .values(status="failed", error="campaign cancelled")
                        .execution_options(synchronize_session=False))
        session.execute(update(CampaignRecipient)
                        .where(CampaignRecipient.campaign_id == campaign.id,
                               CampaignRecipient.message_id.in_(stopped))
                        .values(status="cancelled").execution_options(synchronize_session=False))
    progress_after_commit(session, campaign)


def get_campaign(session: Session, campaign_id: int, agent: Agent | None = None) -> Campaign:
    """The campaign; with `agent`: only one they may see (else 404, as if absent)."""
    campaign = session.get(Campaign, campaign_id)
    if campaign is None or (agent is not None and not can_see(session, agent, campaign)):
        raise NotFound(None, "campaign not found")
    return campaign


# --- who may do what ---------------------------------------------------------------------
# A campaign reaches the customers of its creator's channels (the segment is evaluated with
# the creator's team access). So: an admin sees and manages every campaign; an agent sees
# their own campaigns and those of the agents they share a team with (colleagues working
# the same channels), and may start, pause, resume, cancel or edit only their own; an
# outside bot's token manages none.

def _teammates(session: Session, agent: Agent):
    from app.infra.models import agent_teams

    mine = select(agent_teams.c.team_id).where(agent_teams.c.agent_id == agent.id)
    return select(agent_teams.c.agent_id).where(agent_teams.c.team_id.in_(mine))


def visible_campaigns(session: Session, agent: Agent):
    """A SELECT of the campaigns the agent may see."""
    query = select(Campaign)
    if agent.is_admin:
        return query
    return query.where(or_(Campaign.created_by_id == agent.id,
                           Campaign.created_by_id.in_(_teammates(session, agent))))


def can_see(session: Session, agent: Agent, campaign: Campaign) -> bool:
    if agent.is_admin or campaign.created_by_id == agent.id:
        return True
    return campaign.created_by_id is not None and \
        campaign.created_by_id in set(session.scalars(_teammates(session, agent)))


def can_manage(agent: Agent, campaign: Campaign | None = None) -> bool:
    """Create (campaign None), edit, start, pause, resume, cancel."""
    if agent.role == "bot":
        return False
    return campaign is None or agent.is_admin or campaign.created_by_id == agent.id


def check_manage(agent: Agent, campaign: Campaign | None = None) -> None:
    if not can_manage(agent, campaign):
        raise DomainError(None, "only the campaign's creator or an admin may change it"
                          if campaign is not None else "an outside bot cannot make campaigns",
                          status=403)


# --- progress ----------------------------------------------------------------------------

def counts(session: Session, campaign_id: int) -> dict[str, Any]:
    """Per channel: queued (claimed or in the outbox), sent, delivered, read, failed, and
    replied / opted_out; the customers skipped and why; overall progress 0..1."""
    rows = session.execute(
        select(CampaignRecipient.channel_id, CampaignRecipient.status,
               CampaignRecipient.reason, Message.status, func.count(),
               func.count(CampaignRecipient.replied_at), func.count(CampaignRecipient.opted_out_at))
        .outerjoin(Message, Message.id == CampaignRecipient.message_id)
        .where(CampaignRecipient.campaign_id == campaign_id)
        .group_by(CampaignRecipient.channel_id, CampaignRecipient.status,
                  CampaignRecipient.reason, Message.status))
    per: dict[int, dict[str, int]] = {}
    skipped: dict[str, int] = {}
    cancelled = 0
    for channel_id, status, reason, message_status, n, replied, opted in rows:
        if status == "skipped":
            skipped[reason or "no_channel"] = skipped.get(reason or "no_channel", 0) + n
            continue
        if status == "cancelled":
            cancelled += n
            continue
        entry = per.setdefault(channel_id, {k: 0 for k in COUNT_KEYS} | {"total": 0})
        entry["total"] += n
        entry["replied"] += replied
        entry["opted_out"] += opted
        if status == "pending" or message_status in ("queued", "sending", None):
            entry["queued"] += n
        else:
            entry[message_status if message_status in entry else "failed"] += n
    names = {c.id: c for c in session.scalars(select(Channel).where(Channel.id.in_(list(per))))}
    channels = []
    for channel_id, entry in sorted(per.items(), key=lambda kv: kv[0] or 0):
        channel = names.get(channel_id)
        channels.append({"channel_id": channel_id, "channel_name": channel.name if channel else "",
                         "channel_kind": channel.kind if channel else "", **entry,
                         "progress": _ratio(entry)})
    total = {k: sum(c[k] for c in channels) for k in COUNT_KEYS + ("total",)}
    return {"channels": channels, "totals": total, "skipped": skipped, "cancelled": cancelled,
            "progress": _ratio(total)}


def _ratio(entry: dict[str, int]) -> float:
    if not entry["total"]:
        return 0.0
    done = entry["total"] - entry["queued"]
    return round(done / entry["total"], 4)


def campaign_dict(session: Session, campaign: Campaign,
                  agent: Agent | None = None) -> dict[str, Any]:
    """With `agent`: also whether they may start, pause, cancel or edit it (`can_manage`)."""
    segment = session.get(Segment, campaign.segment_id) if campaign.segment_id else None
    return {"id": campaign.id, "name": campaign.name, "segment_id": campaign.segment_id,
            "segment_name": segment.name if segment else None,
            "text": campaign.text, "variants": campaign.variants,
            "channel_policy": campaign.channel_policy, "schedule": campaign.schedule,
            "status": campaign.status, "created_by_id": campaign.created_by_id,
            "created_at": campaign.created_at.isoformat(),
            "started_at": campaign.started_at.isoformat() if campaign.started_at else None,
            "finished_at": campaign.finished_at.isoformat() if campaign.finished_at else None,
            "expanded": campaign.expanded, "ordered": ordered(session, campaign),
            **({"can_manage": can_manage(agent, campaign)} if agent is not None else {}),
            **counts(session, campaign.id)}


def ordered(session: Session, campaign: Campaign) -> int:
    """Recipients who placed an order (pushed by the shop or CRM) within `reply_days` of the
    campaign's start."""
    from app.infra.models import Order

    if campaign.started_at is None:
        return 0
    until = campaign.started_at + timedelta(days=float(config["campaigns"]["reply_days"]))
    bought = select(Order.id).where(Order.customer_id == CampaignRecipient.customer_id,
                                    Order.placed_at >= campaign.started_at,
                                    Order.placed_at <= until).exists()
    return int(session.scalar(select(func.count()).select_from(CampaignRecipient).where(
        CampaignRecipient.campaign_id == campaign.id, CampaignRecipient.status == "queued",
        bought)) or 0)


def emit_progress(payload: dict[str, Any]) -> None:
    """Socket.IO `campaign.progress` to every agent on /agents (counts only, not logged)."""
    from app.infra.extensions import socketio

    if socketio.server is None:
        return
    try:
        socketio.emit("campaign.progress", {"type": "campaign.progress", "data": payload},
                      namespace=NAMESPACE)
    except Exception:  # a lost progress tick is redrawn by the next one
        log.exception("campaign.progress not emitted")


def _progress_payload(session: Session, campaign: Campaign) -> dict[str, Any]:
    return {"id": campaign.id, "status": campaign.status, **counts(session, campaign.id)}


def progress_after_commit(session: Session, campaign: Campaign) -> None:
    session.flush()
    payload = _progress_payload(session, campaign)
    after_commit(session, lambda: emit_progress(payload))


# --- choosing each customer's channel ----------------------------------------------------

def _rate(channel: Channel) -> float:
    from app.usecases.outbox import channel_rate

    return channel_rate(channel)


def choose_channels(session: Session, campaign: Campaign, customer_ids: list[int],
                    now: datetime) -> dict[int, tuple[int | None, str | None]]:
    """customer id -> (channel id, None | "template") or (None, why not)."""
    order = (campaign.channel_policy or {}).get("order") or list(KINDS)
    has_template = bool(campaign.variants.get("whatsapp", {}).get("template"))
    channels = {c.id: c for c in session.scalars(select(Channel).where(Channel.active.is_(True)))
                if c.kind in order}
    by_kind: dict[str, list[Channel]] = {}
    for channel in sorted(channels.values(), key=lambda c: c.id):
        by_kind.setdefault(channel.kind, []).append(channel)
    written: dict[int, list[tuple[int, datetime]]] = {}
    for customer_id, channel_id, _last_id, last_at in session.execute(
            select(Message.customer_id, Message.channel_id, func.max(Message.id),
                   func.max(Message.created_at))
            .where(Message.customer_id.in_(customer_ids), Message.direction == "in",
                   Message.channel_id.is_not(None))
            .group_by(Message.customer_id, Message.channel_id)
            .order_by(func.max(Message.id).desc())):
        written.setdefault(customer_id, []).append((channel_id, last_at))
    handles: dict[int, list[Identity]] = {}
    for identity in session.scalars(select(Identity).where(Identity.customer_id.in_(customer_ids))):
        handles.setdefault(identity.customer_id, []).append(identity)
    opted = set(session.execute(select(OptOut.customer_id, OptOut.channel_id)
                                .where(OptOut.customer_id.in_(customer_ids))).all())
    out: dict[int, tuple[int | None, str | None]] = {}
    for customer_id in customer_ids:
        last_at = dict(written.get(customer_id, []))
        candidates = [c for c, _ in written.get(customer_id, []) if c in channels]
        own = handles.get(customer_id, [])
        for kind in order:   # fall-backs: channels that may write first
            if kind == "email" or (kind == "whatsapp" and has_template):
                for channel in by_kind.get(kind, []):
                    if any(i.kind in CHANNEL_IDENTITY_KINDS[kind] for i in own):
                        candidates.append(channel.id)
        # the channels the customer wrote from, latest first; then the policy's fall-backs
        written_order = [c for c in dict.fromkeys(candidates) if c in last_at]
        rest = [c for c in dict.fromkeys(candidates) if c not in last_at]
        rest.sort(key=lambda c: order.index(channels[c].kind))
        reason = "no_channel"
        choice: tuple[int | None, str | None] | None = None
        for channel_id in written_order + rest:
            channel = channels[channel_id]
            if (customer_id, channel_id) in opted:
                reason = "opted_out"
                continue
            reach = [i for i in own if i.kind in CHANNEL_IDENTITY_KINDS[channel.kind]]
            if reach and not any(i.reachable for i in reach):
                reason = "unreachable"
                continue
            if not reach and channel_id not in last_at:
                continue
            if channel.kind == "whatsapp":
                window = channel_id in last_at and now - last_at[channel_id] < WINDOW
                if not window:
                    if not has_template:
                        reason = "window_closed"
                        continue
                    choice = (channel_id, "template")
                    break
            choice = (channel_id, None)
            break
        out[customer_id] = choice or (None, reason)
    return out


# --- the runner --------------------------------------------------------------------------

def _take(session: Session, campaign_id: int) -> bool:
    now = utcnow()
    lease = timedelta(seconds=float(config["jobs"]["lease"]))
    taken = session.execute(
        update(Campaign).where(Campaign.id == campaign_id, Campaign.status == "running",
                               or_(Campaign.runner_until.is_(None), Campaign.runner_until < now))
        .values(runner_until=now + lease).execution_options(synchronize_session=False)
    ).rowcount == 1
    session.commit()
    return taken


def _renew(session: Session, campaign_id: int) -> None:
    lease = timedelta(seconds=float(config["jobs"]["lease"]))
    session.execute(update(Campaign).where(Campaign.id == campaign_id)
                    .values(runner_until=utcnow() + lease)
                    .execution_options(synchronize_session=False))


def _visible(session: Session, campaign: Campaign):
    from app.domain.access import visible_channel_ids

    agent = session.get(Agent, campaign.created_by_id) if campaign.created_by_id else None
    return visible_channel_ids(agent) if agent is not None else None


def expand_batch(session: Session, campaign: Campaign, visible) -> int:
    """Claim the next batch of the segment's customers: one recipient row each (unique per
    campaign and customer, so a re-run after a crash claims nobody twice)."""
    batch = int(config["campaigns"]["batch"])
    ids = list(session.scalars(
        segments.members_query(session, campaign.segment_filter or {}, visible)
        .where(Customer.id > campaign.cursor).limit(batch)))
    if ids:
        choices = choose_channels(session, campaign, ids, utcnow())
        rows = [{"campaign_id": campaign.id, "customer_id": cid, "channel_id": ch,
                 "status": "pending" if ch else "skipped", "reason": reason,
                 "created_at": utcnow()} for cid, (ch, reason) in choices.items()]
        _insert_ignoring_duplicates(session, rows)
        campaign.cursor = ids[-1]
    if len(ids) < batch:
        campaign.expanded = True
    return len(ids)


def _insert_ignoring_duplicates(session: Session, rows: list[dict]) -> None:
    if session.bind.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    session.execute(insert(CampaignRecipient).values(rows).on_conflict_do_nothing(
        index_elements=["campaign_id", "customer_id"]))


def render(text: str, customer: Customer) -> str:
    first = (customer.name or "").split(" ")[0]
    values = {"name": customer.name or "", "first_name": first, "company": customer.company or ""}
    return _VARIABLE.sub(lambda m: values.get(m.group(1), m.group(0)), text)


def dispatch(session: Session, campaign: Campaign, windows: Any = None) -> int:
    """Turn claimed rows into queued outbound messages, set-wise: per channel, enough to keep
    `LOOKAHEAD` seconds of its pace waiting in the outbox (counting every queued message of
    the channel, replies too, so a reply never waits behind a whole campaign). The outbox
    sends them at the channel's pace (app/infra/pace.py). Returns how many were queued."""
    pending = session.execute(
        select(CampaignRecipient.channel_id, func.count())
        .where(CampaignRecipient.campaign_id == campaign.id,
               CampaignRecipient.status == "pending")
        .group_by(CampaignRecipient.channel_id)).all()
    if not pending:
        return 0
    channel_ids = [c for c, _ in pending if c is not None]
    channels = {c.id: c for c in session.scalars(select(Channel).where(
        Channel.id.in_(channel_ids)))}
    backlog = dict(session.execute(
        select(Message.channel_id, func.count())
        .where(Message.status.in_(("queued", "sending")), Message.channel_id.in_(channel_ids))
        .group_by(Message.channel_id)).all())
    queued = 0
    for channel_id in sorted(channel_ids):
        channel = channels.get(channel_id)
        if channel is None:
            continue
        room = int(_rate(channel) * LOOKAHEAD + 0.999) - backlog.get(channel_id, 0)
        if room <= 0:
            continue
        # the claim: pending -> queued once, whoever runs (a conditional UPDATE)
        batch = (select(CampaignRecipient.id)
                 .where(CampaignRecipient.campaign_id == campaign.id,
                        CampaignRecipient.status == "pending",
                        CampaignRecipient.channel_id == channel_id)
                 .order_by(CampaignRecipient.id).limit(room))
        claimed = session.execute(
            update(CampaignRecipient)
            .where(CampaignRecipient.id.in_(batch.scalar_subquery()),
                   CampaignRecipient.status == "pending")
            .values(status="queued")
            .returning(CampaignRecipient.id, CampaignRecipient.customer_id,
                       CampaignRecipient.reason)
            .execution_options(synchronize_session=False)).all()
        if claimed:
            _queue_messages(session, campaign, channel, sorted(claimed))
            queued += len(claimed)
    if queued:   # the drains of other workers join in (the runner drains too)
        after_commit(session, lambda: queue.wake("send_queued"))
    return queued


def _queue_messages(session: Session, campaign: Campaign, channel: Channel,
                    claimed: list) -> None:
    """The claimed rows' messages, each in the customer's latest conversation (a resolved
    one is opened for a customer without any): a few statements for the whole batch."""
    customer_ids = [row.customer_id for row in claimed]
    customers = {c.id: c for c in session.scalars(
        select(Customer).where(Customer.id.in_(customer_ids)))}
    latest = (select(func.max(Conversation.id)).where(Conversation.customer_id.in_(customer_ids))
              .group_by(Conversation.customer_id))
    conversations = {row.customer_id: (row.id, row.channel_id) for row in session.execute(
        select(Conversation.customer_id, Conversation.id, Conversation.channel_id)
        .where(Conversation.id.in_(latest)))}
    now = utcnow()
    missing = [cid for cid in customer_ids if cid not in conversations]
    if missing:
        opened = [Conversation(customer_id=cid, channel_id=channel.id, status="resolved",
                               resolved_at=now, subject=campaign.name, last_activity_at=now)
                  for cid in missing]
        session.add_all(opened)
        session.flush()
        conversations.update((c.customer_id, (c.id, c.channel_id)) for c in opened)
    messages = []
    for row in claimed:
        customer = customers[row.customer_id]
        conversation_id, _ = conversations[row.customer_id]
        messages.append(_campaign_message(campaign, channel, customer, conversation_id,
                                          row.reason, now))
    session.add_all(messages)
    session.flush()
    session.execute(update(CampaignRecipient), [
        {"id": row.id, "message_id": message.id} for row, message in zip(claimed, messages)])
    for message in messages:
        record_event(session, "message.created", message_schema.dump(message),
                     conversations[message.customer_id][1])


def _campaign_message(campaign: Campaign, channel: Channel, customer: Customer,
                      conversation_id: int, reason: str | None, now: datetime) -> Message:
    variant = campaign.variants.get(channel.kind, {})
    text = render(variant.get("text") or campaign.text, customer)
    meta: dict[str, Any] = {"campaign_id": campaign.id}
    subject = html = None
    if channel.kind == "email":
        url = optouts.unsubscribe_url(customer.id, channel.id, campaign.id)
        subject = render(variant.get("subject") or campaign.name, customer)
        text = f"{text}\n\n--\nUnsubscribe: {url}"
        if variant.get("html"):
            html = (render(variant["html"], customer)
                    + f'<p style="font-size:12px"><a href="{url}">Unsubscribe</a></p>')
        meta["headers"] = {"List-Unsubscribe": f"<{url}>",
                           "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
                           "Precedence": "bulk", "Auto-Submitted": "auto-generated"}
    if reason == "template":
        template = variant["template"]
        params = [render(p, customer) for p in template.get("parameters", [])]
        meta["template"] = {"name": template["name"], "language": template["language"],
                            **({"components": [{"type": "body", "parameters": [
                                {"type": "text", "text": p} for p in params]}]} if params else {})}
    if channel.kind == "telegram" and variant.get("buttons"):
        meta["buttons"] = [{"id": f"campaign:{campaign.id}:{n}", "title": title}
                           for n, title in enumerate(variant["buttons"])]
    return Message(uuid=str(uuid.uuid4()), conversation_id=conversation_id,
                   customer_id=customer.id, channel_id=channel.id, direction="out", text=text,
                   html=html, subject=subject, status="queued", automated=True,
                   created_at=now, enqueued_at=now, meta=meta, attachments=[], history=[],
                   attempts=0, deleted=False, content_type="text")


def _outstanding(session: Session, campaign_id: int) -> bool:
    """Rows still waiting: claimed but not queued, or messages not yet sent or failed."""
    if session.scalar(select(CampaignRecipient.id).where(
            CampaignRecipient.campaign_id == campaign_id,
            CampaignRecipient.status == "pending").limit(1)) is not None:
        return True
    return session.scalar(
        select(Message.id).join(CampaignRecipient, CampaignRecipient.message_id == Message.id)
        .where(CampaignRecipient.campaign_id == campaign_id,
               Message.status.in_(("queued", "sending"))).limit(1)) is not None


def run_campaign(campaign_id: int) -> str:
    """The job: one slice of a running campaign (claim, queue at pace, drain the outbox)."""
    from app.usecases import outbox

    session = db.session
    if not _take(session, campaign_id):
        return "busy"
    end = time.monotonic() + float(config["campaigns"]["run_seconds"])
    windows = None
    last_emit, last_payload = 0.0, None
    result = "slice"
    campaign = session.get(Campaign, campaign_id)
    visible = _visible(session, campaign)
    try:
        while True:
            campaign = session.get(Campaign, campaign_id, populate_existing=True)
            if campaign is None or campaign.status != "running":
                result = campaign.status if campaign else "deleted"
                break
            step = time.monotonic()
            if not campaign.expanded:
                expand_batch(session, campaign, visible)
            queued = dispatch(session, campaign, windows)
            _renew(session, campaign_id)
            session.commit()
            if queued or time.monotonic() - last_emit > 1.0:
                # this worker sends what it queued (and any reply due), for a while: then it
                # tops the outbox up again before it runs dry
                outbox.send_queued(until=time.monotonic() + LOOKAHEAD / 2)
            finished = campaign.expanded and not _outstanding(session, campaign_id)
            if finished:
                changed = session.execute(
                    update(Campaign).where(Campaign.id == campaign_id,
                                           Campaign.status == "running")
                    .values(status="done", finished_at=utcnow())
                    .execution_options(synchronize_session=False)).rowcount
                session.commit()
                campaign = session.get(Campaign, campaign_id, populate_existing=True)
                emit_progress(_progress_payload(session, campaign))
                session.commit()
                result = "done" if changed else campaign.status
                break
            if time.monotonic() - last_emit > 0.5:
                payload = _progress_payload(session, campaign)
                session.commit()
                if payload != last_payload:
                    emit_progress(payload)
                    last_payload = payload
                last_emit = time.monotonic()
            session.commit()   # no transaction (on SQLite: the write lock) held while asleep
            if time.monotonic() > end:
                break
            time.sleep(max(0.0, TICK - (time.monotonic() - step)))
    finally:
        session.rollback()
        session.execute(update(Campaign).where(Campaign.id == campaign_id)
                        .values(runner_until=None).execution_options(synchronize_session=False))
        if result == "slice":
            after_commit(session, lambda: queue.enqueue(JOB, campaign_id))
        session.commit()
    return result


def tick(now=None) -> dict[str, int]:
    """From the sweep: start scheduled campaigns that are due; give a running campaign whose
    runner died (its lease lapsed) a new one."""
    session = db.session
    now = now or utcnow()
    started = 0
    for campaign in session.scalars(select(Campaign).where(Campaign.status == "scheduled",
                                                           Campaign.scheduled_at <= now)):
        _run_now(session, campaign)
        started += 1
    revived = list(session.scalars(select(Campaign.id).where(
        Campaign.status == "running",
        or_(Campaign.runner_until.is_(None), Campaign.runner_until < now))))
    session.commit()
    for campaign_id in revived:
        queue.enqueue(JOB, campaign_id)
    return {"started": started, "revived": len(revived)}


# --- reactions to committed events -------------------------------------------------------

def _wanted(event: Event) -> bool:
    """A customer's new message: opt-out keywords, replies to a campaign."""
    return event.type == "message.created" and isinstance(event.payload, dict) \
        and event.payload.get("direction") == "in"


READER = EventReader(CURSOR, REACT_JOB, _wanted, what="campaign reactions", logger=log)


def react() -> int:
    """The job: opt-out keywords and replies in customers' messages committed since last
    time. Returns how many events it read."""
    session = db.session
    try:
        return READER.run(session, lambda s, event: _on_inbound(s, event.payload), 500,
                          prepare=_prepare_batch)
    finally:
        session.info.pop(_BATCH_KEY, None)


_BATCH_KEY = "campaigns.batch"   # session.info: the batch's candidate recipients


def _prepare_batch(session: Session, events: list[Event]) -> list[Any]:
    """The batch's messages with one query, and with one more every queued recipient of
    their customers whose campaign message falls in the reply window of one of them
    (_on_inbound picks each message's own from these instead of a query per message)."""
    ids = sorted({e.payload.get("id") for e in events if isinstance(e.payload.get("id"), int)})
    messages = list(session.scalars(select(Message).where(Message.id.in_(ids)))) if ids else []
    messages = [m for m in messages if m.channel_id is not None]
    session.info.pop(_BATCH_KEY, None)
    if not messages:
        return messages
    window = timedelta(days=float(config["campaigns"]["reply_days"]))
    candidates: dict[int, list[tuple[CampaignRecipient, datetime]]] = {}
    rows = session.execute(
        select(CampaignRecipient, Message.created_at)
        .join(Message, Message.id == CampaignRecipient.message_id)
        .where(CampaignRecipient.customer_id.in_(sorted({m.customer_id for m in messages})),
               CampaignRecipient.status == "queued",
               Message.created_at >= min(m.created_at for m in messages) - window,
               Message.created_at <= max(m.created_at for m in messages))
        .order_by(CampaignRecipient.id.desc())).all()
    for recipient, sent_at in rows:
        candidates.setdefault(recipient.customer_id, []).append((recipient, sent_at))
    session.info[_BATCH_KEY] = {"messages": {m.id for m in messages},
                                "candidates": candidates}
    return messages + [r for r, _ in rows]


def _recipient_for(session: Session, message: Message, since: datetime):
    """The newest queued recipient of the message's customer whose campaign message went out
    within the reply window before it."""
    batch = session.info.get(_BATCH_KEY)
    if batch is not None and message.id in batch["messages"]:
        for recipient, sent_at in batch["candidates"].get(message.customer_id, ()):
            if since <= sent_at <= message.created_at:
                return recipient
        return None
    return session.scalar(
        select(CampaignRecipient).join(Message, Message.id == CampaignRecipient.message_id)
        .where(CampaignRecipient.customer_id == message.customer_id,
               CampaignRecipient.status == "queued", Message.created_at >= since,
               Message.created_at <= message.created_at)
        .order_by(CampaignRecipient.id.desc()).limit(1))


def _on_inbound(session: Session, payload: dict[str, Any]) -> None:
    message = session.get(Message, payload.get("id"))
    if message is None or message.channel_id is None:
        return
    since = message.created_at - timedelta(days=float(config["campaigns"]["reply_days"]))
    recipient = _recipient_for(session, message, since)
    keyword = optouts.is_opt_out_keyword(message.text)
    if keyword:
        recorded = optouts.record(session, message.customer_id, message.channel_id, "keyword",
                                  message.text.strip(),
                                  campaign_id=recipient.campaign_id if recipient else None)
        if recorded is not None:
            customer = session.get(Customer, message.customer_id)
            session.flush()
            record_event(session, "customer.updated", customer_schema.dump(customer),
                         message.channel_id)
    if recipient is None:
        return
    if keyword and recipient.opted_out_at is None:
        recipient.opted_out_at = utcnow()
    if recipient.replied_at is None:
        recipient.replied_at = utcnow()
    if message.meta.get("campaign_id") is None:
        message.meta = {**message.meta, "campaign_id": recipient.campaign_id}
        session.flush()
        record_event(session, "message.updated", message_schema.dump(message),
                     message.conversation.channel_id)


def on_send_failed(session: Session, message: Message, channel: Channel) -> None:
    """Outbox hook: a Telegram user who blocked the bot is opted out of that bot."""
    if channel.kind != "telegram" or "blocked by the user" not in (message.error or "").lower():
        return
    campaign_id = message.meta.get("campaign_id")
    optouts.record(session, message.customer_id, channel.id, "blocked",
                   "bot was blocked by the user", campaign_id=campaign_id)
    if campaign_id:
        session.execute(update(CampaignRecipient)
                        .where(CampaignRecipient.campaign_id == campaign_id,
                               CampaignRecipient.customer_id == message.customer_id,
                               CampaignRecipient.opted_out_at.is_(None))
                        .values(opted_out_at=utcnow())
                        .execution_options(synchronize_session=False))
