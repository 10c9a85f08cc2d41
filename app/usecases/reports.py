"""Reports (issue 20): a rollup job keeps aggregates, the reports read only those.

The rollup reads committed rows past a watermark (messages by id, and the status-change log a
session listener writes in the changing transaction) and folds them into:

- report_hourly: messages per local hour x channel x author x direction x canned reply, and
  conversations started (direction "conv");
- report_daily_customers: who was in touch per local day x channel x author (reach);
- report_customer_first: each customer's first message (new vs returning);
- report_conversations: per conversation, where it started, its first response and its
  latest resolution;
- report_responses: every agent reply to a waiting customer (first and next response times);
- report_labels, report_label_hourly, report_label_daily_customers: the label filter (see
  _roll_labels: a label is a dimension of its own, kept as labels come and go).

SLA met/breached (response-times) reads conversations whose target fell due in the period
(indexed due times) with their breaches: one row per conversation, no scan of messages.

Watermarks: ids are handed out before commit, so a row with a lower id can commit after a
higher one was read. Ids skipped below the watermark are kept as "gaps" and looked at again
on later runs for GAP_TTL seconds (then they are taken as rolled back). One rollup at a time:
the state row is locked (FOR UPDATE; SQLite writers are serialized anyway), and a batch, its
aggregates and the new watermark commit together, so nothing is counted twice.

Customer merges and unmerges (bulk moves of messages) are followed from `customer_merges`:
both customers' reach and first message are computed again from their messages.

Periods are days in the account's time zone (`account.time_zone`); buckets are the UTC
instants at which a local hour starts, so a local day is a whole number of buckets even in
zones offset by half an hour. Changing the time zone rebuilds the aggregates.
"""
from __future__ import annotations

import csv
import io
import math
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, Iterable, Mapping
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask import has_app_context
from sqlalchemy import String, case, cast, delete, distinct, func, insert, null, select, text
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import PASSIVE_NO_INITIALIZE, flag_modified

from app.domain import business_hours
from app.domain.access import visible_channel_ids
from app.infra.db import after_commit
from app.infra.models import (
    Agent,
    CannedReply,
    Channel,
    Conversation,
    Customer,
    CustomerMerge,
    Message,
    Order,
    ReportConversation,
    ReportAgentDaily,
    ReportChannelHourly,
    ReportCustomerFirst,
    ReportDailyCustomer,
    ReportHourly,
    ReportLabel,
    ReportLabelChange,
    ReportLabelDailyCustomer,
    ReportLabelHourly,
    ReportReach,
    ReportResponse,
    ReportState,
    ReportStatusChange,
    ReportTimeBin,
    SlaBreach,
    Team,
    agent_teams,
    team_channels,
    utcnow,
)
from app.infra.state import config, db, queue

JOB = "reports_rollup"
BATCH = 5000
GAP_TTL = 600.0          # seconds a skipped id is looked for again before it counts as rolled back
MAX_GAPS = 20000
MAX_DAYS = 366
NAMES = ("volume", "response-times", "agents", "canned-usage", "sources", "csat", "bot")
PARAMS = {"from", "to", "channel_id", "team_id", "agent_id", "label", "hours", "format", "table"}
# the aggregates' layout: a state of another version is rebuilt from the raw rows on the next
# rollup (an upgrade that adds aggregate tables fills them this way)
VERSION = 2
CLOCKS = ("calendar", "business")


class ReportInputError(ValueError):
    def __init__(self, field_name: str, reason: str):
        super().__init__(reason)
        self.field = field_name


class ReportForbidden(PermissionError):
    pass


# --- time ------------------------------------------------------------------------------------

def account_zone() -> ZoneInfo:
    name = (config.get("account") or {}).get("time_zone") or "UTC"
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ReportInputError("time_zone", f"unknown time zone {name!r} (account.time_zone)")


def bucket_of(moment: datetime, tz: ZoneInfo) -> datetime:
    """The UTC instant at which the local hour holding `moment` started."""
    local = moment.astimezone(tz)
    return local.replace(minute=0, second=0, microsecond=0).astimezone(timezone.utc)


def local_day(moment: datetime, tz: ZoneInfo) -> date:
    return moment.astimezone(tz).date()


def day_start(day: date, tz: ZoneInfo) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=tz).astimezone(timezone.utc)


def percentile(values: list[int], fraction: float) -> int | None:
    """Nearest rank: the smallest value with at least `fraction` of the values at or below
    it (PostgreSQL's percentile_disc)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


# Response and resolution times are kept as per-day histograms (report_time_bins), not read
# back as every sample: at 5,000 messages a day a 30-day median sorted ~100,000 rows per
# report, and a median of answer times is read as "about 12 minutes", not to the second.
# Bins are log-scale with 6 significant bits: exact below 64 s, above it each bin spans at
# most 1/32 of its values (2 s at a minute, 2 min at an hour, 1 h at a day). A bin keeps its
# samples' count and sum; a percentile is the nearest-rank sample's bin, answered as the mean
# of that bin's samples. So it is exact whenever the samples in that bin are equal (every
# hand-computed fixture), and otherwise within the bin: less than 3.2 % off the exact
# nearest-rank value. Counts are exact. Sums and counts add and subtract, so the bins follow
# label changes and reopened conversations exactly, like the hourly counts.
BIN_BITS = 6


def bin_of(seconds: int) -> int:
    """The histogram bin of a duration (monotonic: a longer time never has a lower bin)."""
    s = max(0, int(seconds))
    if s < (1 << BIN_BITS):
        return s
    shift = s.bit_length() - BIN_BITS
    return (shift << BIN_BITS) | (s >> shift)


def bin_percentile(bins: list[tuple[int, int, int]], fraction: float) -> int | None:
    """(bin, samples, seconds) rows of one group: the nearest-rank sample's bin, as the mean
    of its samples (rounded half up)."""
    ordered = sorted(b for b in bins if b[1] > 0)
    total = sum(b[1] for b in ordered)
    if not total:
        return None
    rank = max(1, math.ceil(fraction * total))
    seen = 0
    for _bin, samples, seconds in ordered:
        seen += samples
        if seen >= rank:
            return (2 * seconds + samples) // (2 * samples)
    return None


def binned_stats(values: Iterable[int]) -> dict[str, Any]:
    """count, median and p90 of raw samples with the histograms' precision (the same answer
    the bins give for these samples)."""
    bins: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    n = 0
    for v in values:
        if v is None:
            continue
        b = bins[bin_of(v)]
        b[0] += 1
        b[1] += int(v)
        n += 1
    rows = [(k, c, t) for k, (c, t) in bins.items()]
    return {"count": n, "median": bin_percentile(rows, 0.5), "p90": bin_percentile(rows, 0.9)}


# --- the rollup ------------------------------------------------------------------------------

def _dialect(session: Session) -> str:
    return session.get_bind().dialect.name


def _insert(session: Session, table):
    if _dialect(session) == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    else:
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    return dialect_insert(table)


def _fresh_state(tz: str, merges_wm: int = 0, unmerged_at: str | None = None) -> dict[str, Any]:
    return {"tz": tz, "version": VERSION, "messages": {"wm": 0, "gaps": {}}, "status": {"wm": 0, "gaps": {}},
            "labels": {"wm": 0, "gaps": {}}, "merges": {"wm": merges_wm, "unmerged_at": unmerged_at}, "rolled_at": None}


def _lock_state(session: Session) -> ReportState:
    session.execute(_insert(session, ReportState.__table__)
                    .values(key="rollup", value={}).on_conflict_do_nothing())
    # populate_existing: the session keeps objects across commits, and another rollup (a
    # job thread or worker) may have moved the watermarks since this one last read them; a
    # stale state would fold that batch again (seen as a rebuild racing the rollup job)
    return session.scalar(select(ReportState).where(ReportState.key == "rollup")
                          .with_for_update().execution_options(populate_existing=True))


# every table the rollup writes: wiped by a reset, compared row by row with rebuild() by the
# recount test and `bench.reports --check`
AGGREGATES = (ReportHourly, ReportDailyCustomer, ReportCustomerFirst, ReportConversation,
              ReportResponse, ReportLabel, ReportLabelHourly, ReportLabelDailyCustomer,
              ReportChannelHourly, ReportReach, ReportAgentDaily, ReportTimeBin)


def _reset(session: Session, state: ReportState, tz: str) -> None:
    """Start over (first run, or the time zone changed): every aggregate is rebuilt from the
    raw rows. Conversations resolved before the status log existed get a log row."""
    for model in AGGREGATES:
        session.execute(delete(model))
    # labels as they are now; messages folded from here on count under them (the label log
    # is read again from its start: a diff against these rows, so old entries change nothing)
    labels = [{"conversation_id": cid, "label": label}
              for cid, values in session.execute(select(Conversation.id, Conversation.labels))
              for label in _clean_labels(values)]
    if labels:
        session.execute(insert(ReportLabel), labels)
    # NOT IN (a set computed once), not a correlated NOT EXISTS: on PostgreSQL the planner,
    # seeing an empty log, scanned it once per conversation while this very statement filled
    # it (quadratic: a rebuild at 200,000 conversations did not finish in minutes)
    logged = select(ReportStatusChange.conversation_id)
    session.execute(insert(ReportStatusChange).from_select(
        ["conversation_id", "channel_id", "agent_id", "old_status", "new_status", "at"],
        select(Conversation.id, Conversation.channel_id, Conversation.assignee_id,
               cast(null(), String(20)), Conversation.status, Conversation.resolved_at)
        .where(Conversation.status == "resolved", Conversation.resolved_at.is_not(None),
               Conversation.id.not_in(logged))))
    # merges so far are in the raw rows already: only later ones need following
    state.value = _fresh_state(
        tz, session.scalar(select(func.max(CustomerMerge.id))) or 0,
        _iso(session.scalar(select(func.max(CustomerMerge.unmerged_at)))))


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def _roll_merges(session: Session, state: dict[str, Any], tz: ZoneInfo) -> int:
    """A merge or unmerge moves messages and conversations between customers with bulk
    updates: the per-customer aggregates of both customers are computed again from their
    messages (reach and first message are sets and minimums, so this is idempotent)."""
    cursor = state.setdefault("merges", {"wm": 0, "unmerged_at": None})
    customers: set[int] = set()
    for merge_id, target, source in session.execute(
            select(CustomerMerge.id, CustomerMerge.target_id, CustomerMerge.source_id)
            .where(CustomerMerge.id > int(cursor.get("wm") or 0)).order_by(CustomerMerge.id)):
        customers.update((target, source))
        cursor["wm"] = merge_id
    since = cursor.get("unmerged_at")
    undone = select(CustomerMerge.target_id, CustomerMerge.source_id, CustomerMerge.unmerged_at) \
        .where(CustomerMerge.unmerged_at.is_not(None))
    if since:
        undone = undone.where(CustomerMerge.unmerged_at > datetime.fromisoformat(since))
    for target, source, unmerged_at in session.execute(undone):
        customers.update((target, source))
        if not cursor.get("unmerged_at") or unmerged_at > datetime.fromisoformat(cursor["unmerged_at"]):
            cursor["unmerged_at"] = _iso(unmerged_at)
    if not customers:
        return 0
    ids = sorted(customers)
    session.execute(delete(ReportDailyCustomer).where(ReportDailyCustomer.customer_id.in_(ids)))
    session.execute(delete(ReportReach).where(ReportReach.customer_id.in_(ids)))
    session.execute(delete(ReportCustomerFirst).where(ReportCustomerFirst.customer_id.in_(ids)))
    daily: set[tuple] = set()
    firsts: dict[int, tuple[datetime, int]] = {}
    for customer_id, channel_id, direction, author_id, created_at in session.execute(
            select(Message.customer_id, Message.channel_id, Message.direction, Message.author_id,
                   Message.created_at)
            .where(Message.customer_id.in_(ids), Message.direction.in_(["in", "out"]))):
        channel = channel_id or 0
        daily.add((local_day(created_at, tz), channel,
                   (author_id or 0) if direction == "out" else 0, customer_id))
        if customer_id not in firsts or created_at < firsts[customer_id][0]:
            firsts[customer_id] = (created_at, channel)
    _add_reach(session, ReportDailyCustomer, daily)
    session.execute(delete(ReportLabelDailyCustomer)
                    .where(ReportLabelDailyCustomer.customer_id.in_(ids)))
    _label_reach(session, tz, Message.customer_id.in_(ids))
    if firsts:
        sources = dict(session.execute(select(Customer.id, Customer.source)
                                       .where(Customer.id.in_(list(firsts)))).all())
        session.execute(insert(ReportCustomerFirst),
                        [{"customer_id": c, "first_at": at, "channel_id": ch,
                          **source_key(sources.get(c))} for c, (at, ch) in firsts.items()])
    for conversation_id, customer_id in session.execute(
            select(Conversation.id, Conversation.customer_id)
            .where(Conversation.customer_id.in_(ids))):
        session.execute(ReportConversation.__table__.update()
                        .where(ReportConversation.conversation_id == conversation_id)
                        .values(customer_id=customer_id))
    return len(ids)


def _scan(session: Session, columns, id_column, cursor: dict[str, Any],
          where=None) -> tuple[list, int]:
    """Rows past the watermark plus rows at earlier gaps, in id order; moves the cursor."""
    wm = int(cursor.get("wm", 0))
    gaps: dict[str, float] = dict(cursor.get("gaps") or {})
    stmt = select(*columns).where(id_column > wm).order_by(id_column).limit(BATCH)
    if where is not None:
        stmt = stmt.where(where)
    rows = list(session.execute(stmt))
    late = []
    if gaps:
        late = list(session.execute(select(*columns).where(
            id_column.in_([int(g) for g in gaps]))))
    now = time.time()
    for row in late:
        gaps.pop(str(row.id), None)
    if rows:
        top = rows[-1].id
        seen = {row.id for row in rows}
        missing = top - wm - len(rows)
        if 0 < missing <= MAX_GAPS:
            for gap in range(wm + 1, top):
                if gap not in seen:
                    gaps[str(gap)] = now
        cursor["wm"] = top
    gaps = {k: v for k, v in gaps.items() if now - v < GAP_TTL}
    if len(gaps) > MAX_GAPS:
        gaps = dict(sorted(gaps.items(), key=lambda kv: kv[1])[-MAX_GAPS:])
    cursor["gaps"] = gaps
    return sorted(late + rows, key=lambda row: row.id), len(rows)


def _facts(session: Session, conversation_ids: set[int]) -> dict[int, ReportConversation]:
    facts = {f.conversation_id: f for f in session.scalars(select(ReportConversation).where(
        ReportConversation.conversation_id.in_(conversation_ids)))} if conversation_ids else {}
    missing = conversation_ids - facts.keys()
    if missing:
        for cid, customer_id, channel_id, created_at in session.execute(
                select(Conversation.id, Conversation.customer_id, Conversation.channel_id,
                       Conversation.created_at).where(Conversation.id.in_(missing))):
            fact = ReportConversation(conversation_id=cid, customer_id=customer_id,
                                      channel_id=channel_id, created_at=created_at, reopened=0)
            session.add(fact)
            facts[cid] = fact
    return facts


MESSAGE_COLUMNS = (Message.id, Message.conversation_id, Message.customer_id, Message.channel_id,
                   Message.direction, Message.author_id, Message.created_at, Message.automated,
                   Message.canned_reply_id)


def _roll_messages(session: Session, state: dict[str, Any], tz: ZoneInfo) -> int:
    rows, fresh = _scan(session, MESSAGE_COLUMNS, Message.id, state["messages"])
    rows = [r for r in rows if r.direction in ("in", "out")]
    if not rows:
        return fresh
    facts = _facts(session, {r.conversation_id for r in rows})
    customer_ids = {r.customer_id for r in rows}
    firsts = {c.customer_id: c for c in session.scalars(select(ReportCustomerFirst).where(
        ReportCustomerFirst.customer_id.in_(customer_ids)))}
    sources = dict(session.execute(select(Customer.id, Customer.source)
                                   .where(Customer.id.in_(customer_ids))).all())
    hourly: dict[tuple, list[int]] = defaultdict(lambda: [0, 0])
    daily: set[tuple] = set()
    label_hourly: dict[tuple, list[int]] = defaultdict(lambda: [0, 0])
    label_daily: set[tuple] = set()
    labels = _labels_of(session, {r.conversation_id for r in rows})
    responses: list[dict[str, Any]] = []
    bins: dict[tuple, list[int]] = defaultdict(lambda: [0, 0])
    schedules = _Schedules(session)
    schedules.load({r.conversation_id for r in rows if r.direction == "out"})
    for r in rows:
        channel = r.channel_id or 0
        agent = (r.author_id or 0) if r.direction == "out" else 0
        key = (bucket_of(r.created_at, tz), channel, agent, r.direction, r.canned_reply_id or 0)
        reach = (local_day(r.created_at, tz), channel, agent, r.customer_id)
        hourly[key][0] += 1
        hourly[key][1] += bool(r.automated)
        daily.add(reach)
        for label in labels.get(r.conversation_id, ()):
            label_hourly[(label, *key)][0] += 1
            label_hourly[(label, *key)][1] += bool(r.automated)
            label_daily.add((label, *reach))
        first = firsts.get(r.customer_id)
        if first is None:
            firsts[r.customer_id] = first = ReportCustomerFirst(
                customer_id=r.customer_id, first_at=r.created_at, channel_id=channel)
            session.add(first)
        elif r.created_at < first.first_at:
            first.first_at, first.channel_id = r.created_at, channel
        fact = facts[r.conversation_id]
        if fact.started_at is None:
            if fact.resolved_at is not None and fact.channel_id != channel:
                # resolved before its first message was folded: its resolution's bins move
                # to the channel of that message, as the report reads it
                held = labels.get(r.conversation_id, ())
                _resolution_bins(bins, fact, tz, held, -1)
                fact.channel_id = channel
                _resolution_bins(bins, fact, tz, held, +1)
            fact.started_at, fact.channel_id = r.created_at, channel
            hourly[(bucket_of(r.created_at, tz), channel, 0, "conv", 0)][0] += 1
            for label in labels.get(r.conversation_id, ()):
                label_hourly[(label, bucket_of(r.created_at, tz), channel, 0, "conv", 0)][0] += 1
        if r.direction == "in":
            fact.first_in_at = fact.first_in_at or r.created_at
            fact.awaiting_since = fact.awaiting_since or r.created_at
        elif not r.automated and fact.awaiting_since is not None:
            seconds = max(0, int((r.created_at - fact.awaiting_since).total_seconds()))
            is_first = fact.first_response_at is None
            business = business_seconds(schedules(r.conversation_id), fact.awaiting_since,
                                        r.created_at)
            responses.append({"conversation_id": r.conversation_id, "channel_id": channel,
                              "agent_id": agent, "at": r.created_at, "seconds": seconds,
                              "first": is_first, "business_seconds": business})
            _bin_add(bins, ("", *labels.get(r.conversation_id, ())), local_day(r.created_at, tz),
                     channel, "first" if is_first else "next", seconds, business, +1)
            if is_first:
                fact.first_response_at, fact.first_response_agent_id = r.created_at, agent
            fact.awaiting_since = None
    for customer_id in customer_ids:
        first = firsts[customer_id]
        for key, value in source_key(sources.get(customer_id)).items():
            if getattr(first, key) != value:
                setattr(first, key, value)
    session.flush()
    _add_hourly(session, ReportHourly, hourly, tz)
    _add_reach(session, ReportDailyCustomer, daily)
    _add_hourly(session, ReportLabelHourly, label_hourly, tz)
    _add_reach(session, ReportLabelDailyCustomer, label_daily)
    if responses:
        session.execute(insert(ReportResponse), responses)
    _add_bins(session, bins)
    return fresh


class _Schedules:
    """The business hours of conversations' teams, read once per batch (None: no team or no
    schedule, i.e. always open)."""

    def __init__(self, session: Session):
        self.session = session
        self.known: dict[int, Any] = {}

    def load(self, conversation_ids: Iterable[int]) -> None:
        ids = sorted(set(conversation_ids) - self.known.keys())
        for n in range(0, len(ids), 5000):
            for cid, hours in self.session.execute(
                    select(Conversation.id, Team.business_hours)
                    .outerjoin(Team, Team.id == Conversation.team_id)
                    .where(Conversation.id.in_(ids[n:n + 5000]))):
                self.known[cid] = hours
        for cid in ids:
            self.known.setdefault(cid, None)

    def __call__(self, conversation_id: int) -> Any:
        if conversation_id not in self.known:
            self.load([conversation_id])
        return self.known[conversation_id]


def business_seconds(hours: Any, start: datetime, end: datetime) -> int:
    """Seconds of [start, end) inside the schedule's open hours. Whose schedule: the
    conversation's team's (the SLA clock runs on the same one, so a business-hours first
    response here is what the SLA measured); no team or no schedule means always open, and the
    business time equals the calendar time. Computed when the response or resolution is
    folded: a later change of the schedule does not rewrite history (`reports rebuild` does)."""
    if business_hours.always_open(hours):
        return max(0, int((end - start).total_seconds()))
    return max(0, round(business_hours.business_minutes_between(hours, start, end) * 60))


def _bin_add(bins: dict[tuple, list[int]], labels: Iterable[str], day: date, channel: int,
             kind: str, calendar: int | None, business: int | None, sign: int) -> None:
    for label in labels:
        for clock, value in (("calendar", calendar), ("business", business)):
            if value is None:
                continue
            counts = bins[(label, clock, day, channel, kind, bin_of(value))]
            counts[0] += sign
            counts[1] += sign * int(value)


def _resolution_bins(bins: dict[tuple, list[int]], fact: ReportConversation, tz: ZoneInfo,
                     labels: Iterable[str], sign: int, all_too: bool = True) -> None:
    if fact.resolved_at is None or fact.resolution_seconds is None:
        return
    _bin_add(bins, (("",) if all_too else ()) + tuple(labels), local_day(fact.resolved_at, tz),
             fact.channel_id or 0, "resolution", fact.resolution_seconds,
             fact.resolution_business_seconds, sign)


def _add_bins(session: Session, bins: Mapping[tuple, list[int]]) -> None:
    rows = [{"label": k[0], "clock": k[1], "day": k[2], "channel_id": k[3], "kind": k[4],
             "bin": k[5], "samples": v[0], "seconds": v[1]} for k, v in bins.items() if v[0]]
    if not rows:
        return
    table = ReportTimeBin.__table__
    stmt = _insert(session, table)
    stmt = stmt.on_conflict_do_update(
        index_elements=["label", "clock", "day", "channel_id", "kind", "bin"],
        set_={"samples": table.c.samples + stmt.excluded.samples,
              "seconds": table.c.seconds + stmt.excluded.seconds})
    session.execute(stmt, rows)
    if any(r["samples"] < 0 for r in rows):
        session.execute(delete(ReportTimeBin).where(
            ReportTimeBin.label.in_(sorted({r["label"] for r in rows if r["samples"] < 0})),
            ReportTimeBin.samples <= 0))


HOURLY_KEY = ("bucket", "channel_id", "agent_id", "direction", "canned_reply_id")
REACH_KEY = ("day", "channel_id", "agent_id", "customer_id")


def _add_hourly(session: Session, model, rows: Mapping[tuple, list[int]], tz: ZoneInfo) -> None:
    """Add (or, with negative counts, take away) messages to hourly rows; the label table's
    keys start with the label. The coarse rows (per channel hourly, agents per day) get the
    same counts summed over the dimensions they drop."""
    if not rows:
        return
    labelled = model is ReportLabelHourly
    key = (("label",) if labelled else ()) + HOURLY_KEY
    table = model.__table__
    stmt = _insert(session, table)
    stmt = stmt.on_conflict_do_update(
        index_elements=list(key),
        set_={"messages": table.c.messages + stmt.excluded.messages,
              "automated": table.c.automated + stmt.excluded.automated})
    session.execute(stmt, [{**dict(zip(key, k)), "messages": v[0], "automated": v[1]}
                           for k, v in rows.items()])
    per_channel: dict[tuple, list[int]] = defaultdict(lambda: [0, 0])
    per_agent: dict[tuple, list[int]] = defaultdict(lambda: [0, 0])
    days: dict[datetime, date] = {}
    for k, (messages, automated) in rows.items():
        label, (bucket, channel, agent, direction, canned) = (k[0], k[1:]) if labelled else ("", k)
        counts = per_channel[(label, bucket, channel, direction)]
        counts[0] += messages
        counts[1] += automated
        if direction == "out":
            day = days.get(bucket) or days.setdefault(bucket, local_day(bucket, tz))
            counts = per_agent[(label, day, agent, channel)]
            counts[0] += messages
            counts[1] += messages if canned else 0
    _upsert_sums(session, ReportChannelHourly, ("label", "bucket", "channel_id", "direction"),
                 ("messages", "automated"), per_channel)
    _upsert_sums(session, ReportAgentDaily, ("label", "day", "agent_id", "channel_id"),
                 ("replies", "canned_replies"), per_agent)


def _upsert_sums(session: Session, model, key: tuple[str, ...], values: tuple[str, str],
                 rows: Mapping[tuple, list[int]]) -> None:
    rows = {k: v for k, v in rows.items() if v != [0, 0]}
    if not rows:
        return
    table = model.__table__
    stmt = _insert(session, table)
    stmt = stmt.on_conflict_do_update(
        index_elements=list(key),
        set_={name: table.c[name] + stmt.excluded[name] for name in values})
    session.execute(stmt, [{**dict(zip(key, k)), values[0]: v[0], values[1]: v[1]}
                           for k, v in rows.items()])
    shrunk = sorted({k[0] for k, v in rows.items() if v[0] < 0})
    if shrunk:
        session.execute(delete(model).where(model.label.in_(shrunk), table.c[values[0]] <= 0))


def _add_reach(session: Session, model, rows: Iterable[tuple]) -> None:
    """Reach rows are sets: adding one twice changes nothing. The coarse set (without the
    agent) gets the same rows' projection."""
    labelled = model is ReportLabelDailyCustomer
    key = (("label",) if labelled else ()) + REACH_KEY
    rows = [dict(zip(key, k)) for k in rows]
    if rows:
        session.execute(_insert(session, model.__table__).on_conflict_do_nothing(), rows)
        coarse = {(r["label"] if labelled else "", r["day"], r["channel_id"], r["customer_id"])
                  for r in rows}
        session.execute(_insert(session, ReportReach.__table__).on_conflict_do_nothing(),
                        [{"label": k[0], "day": k[1], "channel_id": k[2], "customer_id": k[3]}
                         for k in coarse])


def _clean_labels(values: Any) -> set[str]:
    return {str(v).strip()[:100] for v in (values or []) if str(v).strip()}


def _labels_of(session: Session, conversation_ids: set[int]) -> dict[int, list[str]]:
    """The labels the rollup last folded for these conversations."""
    out: dict[int, list[str]] = defaultdict(list)
    ids = sorted(conversation_ids)
    for n in range(0, len(ids), 5000):
        for cid, label in session.execute(select(ReportLabel.conversation_id, ReportLabel.label)
                                          .where(ReportLabel.conversation_id.in_(ids[n:n + 5000]))):
            out[cid].append(label)
    return out


def _folded(state: dict[str, Any]):
    """A test on a message id: folded into the aggregates already (at or below the messages'
    watermark and not a gap still waited for)."""
    cursor = state["messages"]
    wm = int(cursor.get("wm", 0))
    gaps = {int(g) for g in cursor.get("gaps") or {}}
    return lambda message_id: message_id <= wm and message_id not in gaps


def _label_reach(session: Session, tz: ZoneInfo, where, folded=None) -> None:
    """Per-label reach rows again from the messages matching `where`, under the labels the
    rollup holds for their conversations (rows are a set: adding one twice changes nothing)."""
    rows: set[tuple] = set()
    for message_id, customer_id, channel_id, direction, author_id, created_at, label in \
            session.execute(select(Message.id, Message.customer_id, Message.channel_id,
                                   Message.direction, Message.author_id, Message.created_at,
                                   ReportLabel.label)
                            .join(ReportLabel, ReportLabel.conversation_id == Message.conversation_id)
                            .where(where, Message.direction.in_(["in", "out"]))):
        if folded is not None and not folded(message_id):
            continue
        rows.add((label, local_day(created_at, tz), channel_id or 0,
                  (author_id or 0) if direction == "out" else 0, customer_id))
    _add_reach(session, ReportLabelDailyCustomer, rows)


def _roll_labels(session: Session, state: dict[str, Any], tz: ZoneInfo) -> int:
    """Fold label changes. Why a label dimension in the rollup rows and not a join at read
    time: report_hourly has no conversation in its key (that is what keeps it small), and a
    per-conversation aggregate joined to the labels grows with the conversations and is slow
    for a common label. Instead, when a conversation gains a label, the messages already
    folded for it are added to that label's rows; when it loses one, they are taken away
    (hourly counts are sums, so subtracting is exact; reach rows are sets, so the customer's
    rows under that label are computed again). Messages folded later count under the labels
    held then, so in every state the label rows equal a recount over the conversations
    carrying the label (the recount test checks it)."""
    rows, fresh = _scan(session, (ReportLabelChange.id, ReportLabelChange.conversation_id),
                        ReportLabelChange.id, state.setdefault("labels", {"wm": 0, "gaps": {}}))
    ids = {r.conversation_id for r in rows}
    if not ids:
        return fresh
    current = {cid: _clean_labels(values) for cid, values in session.execute(
        select(Conversation.id, Conversation.labels).where(Conversation.id.in_(ids)))}
    held = {cid: set(values) for cid, values in _labels_of(session, ids).items()}
    changes = {}
    for cid in ids:
        now, before = current.get(cid, set()), held.get(cid, set())
        if now != before:
            changes[cid] = (now - before, before - now)
    if not changes:
        return fresh
    folded = _folded(state)
    per_conversation: dict[int, dict[tuple, list[int]]] = defaultdict(
        lambda: defaultdict(lambda: [0, 0]))
    reach: dict[int, set[tuple]] = defaultdict(set)
    for r in session.execute(select(*MESSAGE_COLUMNS).where(
            Message.conversation_id.in_(list(changes)), Message.direction.in_(["in", "out"]))):
        if not folded(r.id):
            continue
        channel = r.channel_id or 0
        agent = (r.author_id or 0) if r.direction == "out" else 0
        counts = per_conversation[r.conversation_id][
            (bucket_of(r.created_at, tz), channel, agent, r.direction, r.canned_reply_id or 0)]
        counts[0] += 1
        counts[1] += bool(r.automated)
        reach[r.conversation_id].add((local_day(r.created_at, tz), channel, agent, r.customer_id))
    for cid, started_at, channel in session.execute(
            select(ReportConversation.conversation_id, ReportConversation.started_at,
                   ReportConversation.channel_id)
            .where(ReportConversation.conversation_id.in_(list(changes)),
                   ReportConversation.started_at.is_not(None))):
        per_conversation[cid][(bucket_of(started_at, tz), channel, 0, "conv", 0)][0] += 1
    delta: dict[tuple, list[int]] = defaultdict(lambda: [0, 0])
    added_reach: set[tuple] = set()
    recount: dict[str, set[int]] = defaultdict(set)
    for cid, (added, removed) in changes.items():
        for label in added:
            for key, (m, a) in per_conversation[cid].items():
                delta[(label, *key)][0] += m
                delta[(label, *key)][1] += a
            added_reach.update((label, *k) for k in reach[cid])
        for label in removed:
            for key, (m, a) in per_conversation[cid].items():
                delta[(label, *key)][0] -= m
                delta[(label, *key)][1] -= a
            recount[label].update(k[3] for k in reach[cid])
        if removed:
            session.execute(delete(ReportLabel).where(ReportLabel.conversation_id == cid,
                                                      ReportLabel.label.in_(sorted(removed))))
    held_now = [{"conversation_id": cid, "label": label}
                for cid, (added, _removed) in changes.items() for label in sorted(added)]
    if held_now:
        session.execute(insert(ReportLabel), held_now)
    _add_hourly(session, ReportLabelHourly, {k: v for k, v in delta.items() if v != [0, 0]}, tz)
    touched = {k[0] for k, v in delta.items() if v[0] < 0}
    if touched:
        session.execute(delete(ReportLabelHourly).where(
            ReportLabelHourly.label.in_(sorted(touched)), ReportLabelHourly.messages <= 0))
    _move_bins(session, changes, tz)
    _add_reach(session, ReportLabelDailyCustomer, added_reach)
    for label, customers in recount.items():
        session.execute(delete(ReportLabelDailyCustomer).where(
            ReportLabelDailyCustomer.label == label,
            ReportLabelDailyCustomer.customer_id.in_(sorted(customers))))
        session.execute(delete(ReportReach).where(
            ReportReach.label == label, ReportReach.customer_id.in_(sorted(customers))))
        _label_reach(session, tz, (Message.customer_id.in_(sorted(customers)))
                     & (ReportLabel.label == label), folded)
    return fresh


def _move_bins(session: Session, changes: Mapping[int, tuple[set[str], set[str]]],
               tz: ZoneInfo) -> None:
    """A conversation gaining (losing) labels: its folded responses and its current resolution
    are added to (taken from) those labels' time bins."""
    bins: dict[tuple, list[int]] = defaultdict(lambda: [0, 0])
    ids = sorted(changes)
    for r in session.execute(
            select(ReportResponse.conversation_id, ReportResponse.channel_id, ReportResponse.at,
                   ReportResponse.first, ReportResponse.seconds, ReportResponse.business_seconds)
            .where(ReportResponse.conversation_id.in_(ids))):
        added, removed = changes[r.conversation_id]
        for labels, sign in ((added, +1), (removed, -1)):
            _bin_add(bins, labels, local_day(r.at, tz), r.channel_id,
                     "first" if r.first else "next", r.seconds, r.business_seconds, sign)
    for fact in session.scalars(select(ReportConversation).where(
            ReportConversation.conversation_id.in_(ids),
            ReportConversation.resolved_at.is_not(None))):
        added, removed = changes[fact.conversation_id]
        _resolution_bins(bins, fact, tz, added, +1, all_too=False)
        _resolution_bins(bins, fact, tz, removed, -1, all_too=False)
    _add_bins(session, bins)


STATUS_COLUMNS = (ReportStatusChange.id, ReportStatusChange.conversation_id,
                  ReportStatusChange.agent_id, ReportStatusChange.old_status,
                  ReportStatusChange.new_status, ReportStatusChange.at)


def _roll_status(session: Session, state: dict[str, Any], tz: ZoneInfo) -> int:
    rows, fresh = _scan(session, STATUS_COLUMNS, ReportStatusChange.id, state["status"])
    if not rows:
        return fresh
    ids = {r.conversation_id for r in rows}
    facts = _facts(session, ids)
    labels = _labels_of(session, ids)
    schedules = _Schedules(session)
    schedules.load(r.conversation_id for r in rows if r.new_status == "resolved")
    bins: dict[tuple, list[int]] = defaultdict(lambda: [0, 0])
    for r in rows:
        fact = facts[r.conversation_id]
        held = labels.get(r.conversation_id, ())
        # the latest resolution is the one reported: the one it replaces leaves the bins
        _resolution_bins(bins, fact, tz, held, -1)
        if r.new_status == "resolved":
            fact.resolved_at, fact.resolved_agent_id = r.at, r.agent_id
            fact.resolution_seconds = max(0, int((r.at - fact.created_at).total_seconds()))
            fact.resolution_business_seconds = business_seconds(
                schedules(r.conversation_id), fact.created_at, r.at)
            _resolution_bins(bins, fact, tz, held, +1)
        elif r.old_status == "resolved":
            fact.resolved_at = fact.resolution_seconds = fact.resolved_agent_id = None
            fact.resolution_business_seconds = None
            fact.reopened += 1
    session.flush()
    _add_bins(session, bins)
    return fresh


def rollup() -> dict[str, int]:
    """Fold every committed row past the watermarks into the aggregates, batch by batch."""
    counts = {"messages": 0, "status_changes": 0, "batches": 0}
    session = db.session
    session.commit()
    while True:
        state = _lock_state(session)
        tz = account_zone()
        value = dict(state.value or {})
        if value.get("tz") != tz.key or value.get("version") != VERSION:
            _reset(session, state, tz.key)
            value = dict(state.value)
        messages = _roll_messages(session, value, tz)
        changes = _roll_status(session, value, tz)
        session.flush()
        labelled = _roll_labels(session, value, tz)
        session.flush()
        _roll_merges(session, value, tz)
        if messages or changes or labelled:
            value["rolled_at"] = utcnow().isoformat()
        state.value = value
        flag_modified(state, "value")
        session.commit()
        # sessions keep objects across commits (expire_on_commit=False): bulk statements above
        # may have changed rows behind them
        session.expire_all()
        counts["messages"] += messages
        counts["status_changes"] += changes
        counts["batches"] += 1
        if messages < BATCH and changes < BATCH and labelled < BATCH:
            return counts


def rollup_job() -> dict[str, int]:
    """The "reports_rollup" job, woken after commits that add messages or status changes."""
    queue.awake(JOB)
    return rollup()


def rebuild() -> dict[str, int]:
    """Throw the aggregates away and fold everything again (`threadline reports rebuild`)."""
    session = db.session
    state = _lock_state(session)
    _reset(session, state, account_zone().key)
    flag_modified(state, "value")
    session.commit()
    return rollup()


# --- the session listener: status changes and waking the rollup -----------------------------

def record_changes(session: Session, _flush_context) -> None:
    """after_flush: log each change of a conversation's status to or from resolved in the same
    transaction, and wake the rollup once the transaction commits."""
    rows = []
    woken = False
    relabelled = []
    for obj in list(session.new) + list(session.dirty):
        if isinstance(obj, Message) and obj in session.new:
            woken = True
            continue
        if not isinstance(obj, Conversation):
            continue
        # the state's own history, not `.attrs.<name>.history`: that builds every
        # attribute's AttributeState first, once per conversation per flush
        state = sa_inspect(obj)
        if state.get_history("labels", PASSIVE_NO_INITIALIZE).added \
                and (obj.labels or obj not in session.new):
            relabelled.append({"conversation_id": obj.id})
        history = state.get_history("status", PASSIVE_NO_INITIALIZE)
        if not history.added:
            continue
        new = history.added[0]
        old = history.deleted[0] if history.deleted else None
        if new == old or (new != "resolved" and old != "resolved"):
            continue
        rows.append({"conversation_id": obj.id, "channel_id": obj.channel_id,
                     "agent_id": obj.assignee_id, "old_status": old, "new_status": new,
                     "at": (obj.resolved_at if new == "resolved" and obj.resolved_at
                            else utcnow())})
    if rows:
        session.connection().execute(ReportStatusChange.__table__.insert(), rows)
        woken = True
    if relabelled:
        session.connection().execute(ReportLabelChange.__table__.insert(), relabelled)
        woken = True
    if woken and not session.info.get("reports.wake"):
        session.info["reports.wake"] = True
        after_commit(session, _wake)


def _wake() -> None:
    if has_app_context():
        queue.wake(JOB)


def clear_wake_flag(session: Session, *_args) -> None:
    session.info.pop("reports.wake", None)


# --- filters ---------------------------------------------------------------------------------

@dataclass
class Filters:
    first_day: date
    last_day: date
    tz: ZoneInfo
    start: datetime
    end: datetime
    channels: set[int] | None          # None: every channel
    agent_id: int | None
    team_id: int | None
    label: str | None = None
    clock: str = "calendar"            # hours=business: durations in the team's open hours
    notes: list[str] = field(default_factory=list)

    def period(self) -> dict[str, Any]:
        return {"from": self.first_day.isoformat(), "to": self.last_day.isoformat(),
                "time_zone": self.tz.key}


def _parse_day(args: Mapping[str, str], name: str) -> date | None:
    raw = (args.get(name) or "").strip()
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise ReportInputError(name, "expected a date YYYY-MM-DD")


def _parse_id(args: Mapping[str, str], name: str) -> int | None:
    raw = (args.get(name) or "").strip()
    if not raw:
        return None
    if not raw.isdigit():
        raise ReportInputError(name, "expected a number")
    return int(raw)


def parse_filters(args: Mapping[str, str], viewer: Agent) -> Filters:
    unknown = sorted(set(args) - PARAMS)
    if unknown:
        raise ReportInputError(unknown[0], "unknown filter (known: " + ", ".join(sorted(PARAMS)) + ")")
    fmt = args.get("format")
    if fmt not in (None, "", "json", "csv"):
        raise ReportInputError("format", "json or csv")
    if args.get("table") and fmt != "csv":
        raise ReportInputError("table", "a table is chosen for format=csv only")
    clock = (args.get("hours") or "calendar").strip()
    if clock not in CLOCKS:
        raise ReportInputError("hours", "calendar or business")
    tz = account_zone()
    today = utcnow().astimezone(tz).date()
    last = _parse_day(args, "to") or today
    first = _parse_day(args, "from") or last - timedelta(days=29)
    if last < first:
        raise ReportInputError("to", "the period ends before it starts")
    if (last - first).days + 1 > MAX_DAYS:
        raise ReportInputError("from", f"the period is longer than {MAX_DAYS} days")
    channels = visible_channel_ids(viewer)
    channel_id, team_id, agent_id = (_parse_id(args, n) for n in ("channel_id", "team_id", "agent_id"))
    session = db.session
    if channel_id is not None:
        if session.get(Channel, channel_id) is None:
            raise ReportInputError("channel_id", "no such channel")
        if channels is not None and channel_id not in channels:
            raise ReportForbidden("this channel belongs to a team you are not in")
        channels = {channel_id}
    if team_id is not None:
        if session.get(Team, team_id) is None:
            raise ReportInputError("team_id", "no such team")
        if not viewer.is_admin and team_id not in {t.id for t in viewer.teams}:
            raise ReportForbidden("you are not a member of this team")
        team_set = set(session.scalars(select(team_channels.c.channel_id)
                                       .where(team_channels.c.team_id == team_id)))
        channels = team_set if channels is None else channels & team_set
    if agent_id is not None:
        other = session.get(Agent, agent_id)
        if other is None:
            raise ReportInputError("agent_id", "no such agent")
        if not viewer.is_admin and agent_id != viewer.id:
            shared = session.scalar(select(func.count()).select_from(agent_teams).where(
                agent_teams.c.agent_id == agent_id,
                agent_teams.c.team_id.in_([t.id for t in viewer.teams] or [-1])))
            if not shared:
                raise ReportForbidden("this agent is not in any of your teams")
    label = (args.get("label") or "").strip() or None
    if label is not None and session.scalar(
            select(ReportLabel.label).where(ReportLabel.label == label).limit(1)) is None:
        raise ReportInputError("label", "no conversation carries this label")
    return Filters(first, last, tz, day_start(first, tz), day_start(last + timedelta(days=1), tz),
                   channels, agent_id, team_id, label, clock)


def known_labels() -> list[str]:
    """The labels the Reports page offers (those on conversations the rollup has seen)."""
    return list(db.session.scalars(select(ReportLabel.label).distinct().order_by(ReportLabel.label)))


def _in(column, channels: set[int] | None):
    return True if channels is None else column.in_(sorted(channels) or [-1])


def _labelled(column, f: "Filters"):
    """With a label: rows of conversations carrying it (tables with a conversation per row)."""
    if f.label is None:
        return True
    return column.in_(select(ReportLabel.conversation_id).where(ReportLabel.label == f.label))


def _hourly(f: "Filters"):
    """The hourly table to read and its label condition."""
    if f.label is None:
        return ReportHourly, True
    return ReportLabelHourly, ReportLabelHourly.label == f.label


def _labelled_ids(f: "Filters") -> set[int] | None:
    """The conversations carrying the filter's label (None: no label filter), for a report
    filtered in Python (the bot's events keep the conversation in their payload)."""
    if f.label is None:
        return None
    return set(db.session.scalars(select(ReportLabel.conversation_id)
                                  .where(ReportLabel.label == f.label)))


def _reach(f: "Filters"):
    if f.label is None:
        return ReportDailyCustomer, True
    return ReportLabelDailyCustomer, ReportLabelDailyCustomer.label == f.label


# --- the reports -----------------------------------------------------------------------------

def _channels(f: Filters) -> dict[int, Channel]:
    stmt = select(Channel).order_by(Channel.id)
    if f.channels is not None:
        stmt = stmt.where(Channel.id.in_(sorted(f.channels) or [-1]))
    return {c.id: c for c in db.session.scalars(stmt) if c.kind != "crm"}


def _channel_out(channels: dict[int, Channel], channel_id: int) -> dict[str, Any]:
    channel = channels.get(channel_id)
    return {"channel_id": channel_id, "channel_name": channel.name if channel else "",
            "kind": channel.kind if channel else ""}


def _days(f: Filters) -> list[date]:
    return [f.first_day + timedelta(days=n) for n in range((f.last_day - f.first_day).days + 1)]


def _count_distinct(group, column, where) -> dict[Any, int]:
    """count(DISTINCT column) per group (None: one total) as a count over a DISTINCT
    subquery: PostgreSQL hashes the distinct pairs instead of sorting every row per group."""
    pairs = select(*((group,) if group is not None else ()), column).where(*where) \
        .distinct().subquery()
    if group is None:
        return {None: db.session.scalar(select(func.count()).select_from(pairs))}
    key = pairs.c[0]
    return dict(db.session.execute(select(key, func.count()).group_by(key)).all())


def volume(f: Filters) -> dict[str, Any]:
    session = db.session
    channels = _channels(f)
    if f.agent_id is None:
        # without an agent: the per channel rows (no agent x canned reply split)
        H, by_label = ReportChannelHourly, ReportChannelHourly.label == (f.label or "")
    else:
        H, by_label = _hourly(f)
    D, reach_label = _reach(f)
    where = [by_label, H.bucket >= f.start, H.bucket < f.end,
             _in(H.channel_id, f.channels)]
    if f.agent_id is not None:
        where.append(H.agent_id == f.agent_id)
    rows = session.execute(
        select(H.bucket, H.channel_id, H.direction,
               func.sum(H.messages))
        .where(*where).group_by(H.bucket, H.channel_id,
                                H.direction)).all()
    per_channel: dict[int, dict[str, int]] = defaultdict(
        lambda: {"messages_in": 0, "messages_out": 0, "conversations": 0})
    per_day = {d: {"date": d.isoformat(), "messages_in": 0, "messages_out": 0, "conversations": 0}
               for d in _days(f)}
    heatmap = [[0] * 24 for _ in range(7)]
    key = {"in": "messages_in", "out": "messages_out", "conv": "conversations"}
    places: dict[datetime, tuple[dict[str, Any] | None, int, int]] = {}
    for bucket, channel_id, direction, count in rows:
        place = places.get(bucket)
        if place is None:   # a bucket comes once per channel and direction: convert it once
            local = bucket.astimezone(f.tz)
            place = places[bucket] = (per_day.get(local.date()), local.weekday(), local.hour)
        name = key[direction]
        per_channel[channel_id][name] += count
        if place[0] is not None:
            place[0][name] += count
        if direction == "in":
            heatmap[place[1]][place[2]] += count
    if f.agent_id is not None:
        # with an agent: the conversations that agent answered first
        for channel_id, at in session.execute(
                select(ReportResponse.channel_id, ReportResponse.at).where(
                    ReportResponse.first.is_(True), ReportResponse.agent_id == f.agent_id,
                    ReportResponse.at >= f.start, ReportResponse.at < f.end,
                    _in(ReportResponse.channel_id, f.channels),
                    _labelled(ReportResponse.conversation_id, f))):
            per_channel[channel_id]["conversations"] += 1
            per_day[at.astimezone(f.tz).date()]["conversations"] += 1
    if f.agent_id is None:
        # reach without the agent split: one row per day x channel x customer in touch
        D, reach_label = ReportReach, ReportReach.label == (f.label or "")
    daily = [reach_label, D.day >= f.first_day, D.day <= f.last_day,
             _in(D.channel_id, f.channels)]
    if f.agent_id is not None:
        daily.append(D.agent_id == f.agent_id)
    # reach: distinct customers per channel, in all and per day, counted in the database over
    # the period's reach rows (without an agent: one per day x channel x customer in touch);
    # new: the customer's first message ever falls in the period (by index)
    # counted in the database, a few rows back: reading the period's ~30,000 (channel,
    # customer) pairs into Python made every few calls pay a full garbage collection of the
    # process (~100-250 ms, the p95 of this report at 2,000,000 messages)
    newcomers = select(ReportCustomerFirst.customer_id).where(
        ReportCustomerFirst.first_at >= f.start, ReportCustomerFirst.first_at < f.end)
    counts = (func.count(distinct(D.customer_id)),
              func.count(distinct(case((D.customer_id.in_(newcomers), D.customer_id)))))
    customers: dict[int, int] = {}
    new: dict[int, int] = {}
    for channel_id, n, fresh in session.execute(
            select(D.channel_id, *counts).where(*daily).group_by(D.channel_id)):
        customers[channel_id], new[channel_id] = n, fresh
    total_customers, total_new = session.execute(select(*counts).where(*daily)).one()
    for d, n in session.execute(select(D.day, func.count(distinct(D.customer_id)))
                                .where(*daily).group_by(D.day)):
        if d in per_day:
            per_day[d]["customers"] = n
    ids = sorted(set(channels) | set(per_channel) | set(customers))
    items = []
    for channel_id in ids:
        if channel_id == 0:
            continue
        counts = per_channel.get(channel_id) or {"messages_in": 0, "messages_out": 0,
                                                 "conversations": 0}
        reach = customers.get(channel_id, 0)
        items.append({**_channel_out(channels, channel_id), **counts, "customers": reach,
                      "new_customers": new.get(channel_id, 0),
                      "returning_customers": reach - new.get(channel_id, 0)})
    items.sort(key=lambda i: (-(i["messages_in"] + i["messages_out"]), i["channel_id"]))
    totals = {k: sum(i[k] for i in items) for k in ("messages_in", "messages_out", "conversations")}
    totals.update(customers=total_customers, new_customers=total_new,
                  returning_customers=total_customers - total_new)
    series = [{**d, "customers": d.get("customers", 0)} for d in per_day.values()]
    return {"items": items, "totals": totals, "series": series, "heatmap": heatmap}


EMPTY = {"count": 0, "median": None, "p90": None}
TIME_KINDS = ("first", "next", "resolution")


def _stats_of(groups: Mapping[Any, Mapping[int, list[int]]]) -> dict[Any, dict[str, Any]]:
    out = {}
    for key, by_bin in groups.items():
        rows = [(b, n, total) for b, (n, total) in by_bin.items()]
        n = sum(r[1] for r in rows)
        if n:
            out[key] = {"count": n, "median": bin_percentile(rows, 0.5),
                        "p90": bin_percentile(rows, 0.9)}
    return out


def _times(f: Filters) -> dict[str, dict[Any, dict[str, Any]]]:
    """kind -> channel (None: all of them) -> count, median, p90 of the period's first
    responses, next responses and resolutions in the filter's clock. Without an agent filter
    from the per-day histograms (one query); with one, from that agent's own samples (few),
    binned the same way so the figures agree."""
    session = db.session
    groups: dict[str, dict[Any, dict[int, list[int]]]] = {
        k: defaultdict(lambda: defaultdict(lambda: [0, 0])) for k in TIME_KINDS}

    def add(kind: str, channel: Any, b: int, n: int, total: int) -> None:
        for key in (channel, None):
            counts = groups[kind][key][b]
            counts[0] += n
            counts[1] += total

    if f.agent_id is None:
        B = ReportTimeBin
        stmt = select(B.kind, B.channel_id, B.bin, func.sum(B.samples), func.sum(B.seconds)) \
            .where(B.label == (f.label or ""), B.clock == f.clock, B.day >= f.first_day,
                   B.day <= f.last_day, _in(B.channel_id, f.channels)) \
            .group_by(B.kind, B.channel_id, B.bin)
        for kind, channel, b, n, total in session.execute(stmt):
            add(kind, channel, b, int(n), int(total))
    else:
        R, C = ReportResponse, ReportConversation
        value = R.business_seconds if f.clock == "business" else R.seconds
        for first, channel, v in session.execute(
                select(R.first, R.channel_id, value).where(
                    R.at >= f.start, R.at < f.end, _in(R.channel_id, f.channels),
                    _labelled(R.conversation_id, f), R.agent_id == f.agent_id)):
            if v is not None:
                add("first" if first else "next", channel, bin_of(v), 1, v)
        value = C.resolution_business_seconds if f.clock == "business" else C.resolution_seconds
        for channel, v in session.execute(
                select(C.channel_id, value).where(
                    C.resolved_at >= f.start, C.resolved_at < f.end,
                    _in(C.channel_id, f.channels), _labelled(C.conversation_id, f),
                    C.resolved_agent_id == f.agent_id)):
            if v is not None:
                add("resolution", channel, bin_of(v), 1, v)
    return {kind: _stats_of(groups[kind]) for kind in TIME_KINDS}


def response_times(f: Filters) -> dict[str, Any]:
    channels = _channels(f)
    times = _times(f)
    first, nxt, resolution = times["first"], times["next"], times["resolution"]
    ids = sorted((set(channels) | set(first) | set(nxt) | set(resolution)) - {None, 0})
    items = [{**_channel_out(channels, cid), "first_response": first.get(cid, EMPTY),
              "next_response": nxt.get(cid, EMPTY), "resolution": resolution.get(cid, EMPTY)}
             for cid in ids]
    totals = {"first_response": first.get(None, EMPTY), "next_response": nxt.get(None, EMPTY),
              "resolution": resolution.get(None, EMPTY)}
    met = sla(f, channels)
    for item in items:
        item["sla"] = met["by_channel"].get(item["channel_id"], _sla_empty())
    business = f.clock == "business"
    return {"items": items, "totals": totals, "unit": "seconds", "clock": f.clock,
            "business_hours": "the conversation's team's schedule (always open without one)"
            if business else None,
            "precision": "counts exact; a median or p90 is the mean of the samples in its "
                         "histogram bin: exact when they are equal, otherwise within 3.2 %",
            "sla": met["totals"],
            "sla_by_channel": [{**_channel_out(channels, cid), **v}
                               for cid, v in sorted(met["by_channel"].items()) if cid in channels],
            "sla_by_team": met["by_team"], "sla_by_agent": met["by_agent"],
            "note": ("response and resolution times in business hours (the open hours of the "
                     "conversation's team; always open without a schedule)" if business else
                     "response and resolution times in calendar time") +
                    "; SLA: conversations whose target fell due in the period, met (reached in "
                    "time), breached (a breach was recorded, or reached late, or overdue) or "
                    "pending"}


SLA_KINDS = ("first_response", "resolution")
SLA_OUTCOMES = ("met", "breached", "pending")


def _sla_empty() -> dict[str, dict[str, Any]]:
    return {kind: {"met": 0, "breached": 0, "pending": 0, "met_share": None}
            for kind in SLA_KINDS}


def _sla_share(block: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    for counts in block.values():
        decided = counts["met"] + counts["breached"]
        counts["met_share"] = round(counts["met"] / decided, 4) if decided else None
    return block


def sla(f: Filters, channels: dict[int, Channel]) -> dict[str, Any]:
    """SLA met/breached per channel, team and agent (the conversation's current channel,
    team and assignee). A conversation counts once per target (first response, resolution)
    whose due time falls in the period: breached if the sweep recorded a breach, or the
    target was reached after its due time, or it is overdue and not reached; met if reached
    in time; pending otherwise. Read from the conversations by their indexed due times: one
    row per conversation with an SLA, never the messages."""
    from sqlalchemy import and_, case, literal, true

    session = db.session
    now = utcnow()
    reached = {"first_response": and_(Conversation.first_response_at.is_not(None),
                                      Conversation.first_response_at <= Conversation.first_response_due_at),
               "resolution": and_(Conversation.status == "resolved",
                                  Conversation.resolved_at.is_not(None),
                                  Conversation.resolved_at <= Conversation.resolution_due_at)}
    dues = {"first_response": Conversation.first_response_due_at,
            "resolution": Conversation.resolution_due_at}
    totals = _sla_empty()
    by: dict[str, dict[Any, dict[str, dict[str, Any]]]] = {"channel": {}, "team": {}, "agent": {}}
    for kind in SLA_KINDS:
        due = dues[kind]
        where = [due >= f.start, due < f.end, _in(Conversation.channel_id, f.channels),
                 _labelled(Conversation.id, f)]
        if f.agent_id is not None:
            where.append(Conversation.assignee_id == f.agent_id)
        recorded = select(literal(1).label("hit")).where(
            SlaBreach.conversation_id == Conversation.id, SlaBreach.kind == kind)
        stmt = select(Conversation.channel_id, Conversation.team_id, Conversation.assignee_id)
        if _dialect(session) == "postgresql":
            # a lateral lookup per conversation (the unique index): as EXISTS or a join the
            # planner hashed every breach ever recorded (0.7 s against 0.2 s at 200,000)
            hit = recorded.limit(1).lateral("recorded")
            stmt = stmt.select_from(Conversation).outerjoin(hit, true())
            breach = hit.c.hit.is_not(None)
        else:
            breach = recorded.exists()
        outcome = case((breach, "breached"), (reached[kind], "met"), (due < now, "breached"),
                       else_="pending")
        groups = (Conversation.channel_id, Conversation.team_id, Conversation.assignee_id)
        for channel_id, team_id, agent_id, result, n in session.execute(
                stmt.add_columns(outcome, func.count()).where(*where)
                .group_by(*groups, outcome)):
            totals[kind][result] += n
            for name, key in (("channel", channel_id), ("team", team_id), ("agent", agent_id)):
                by[name].setdefault(key, _sla_empty())[kind][result] += n
    _sla_share(totals)
    for groups in by.values():
        for block in groups.values():
            _sla_share(block)
    teams = {t.id: t.name for t in session.scalars(select(Team))}
    people = {a.id: a.name for a in session.scalars(select(Agent))}
    by_team = [{"team_id": k, "name": teams.get(k, "") if k else "", **v}
               for k, v in by["team"].items()]
    by_agent = [{"agent_id": k, "name": people.get(k, "") if k else "", **v}
                for k, v in by["agent"].items()]
    for rows in (by_team, by_agent):
        rows.sort(key=lambda r: (r["name"] == "", r["name"]))
    return {"totals": totals, "by_channel": by["channel"], "by_team": by_team,
            "by_agent": by_agent}


def agents(f: Filters) -> dict[str, Any]:
    session = db.session
    A = ReportAgentDaily
    replies: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    for agent_id, n, canned in session.execute(
            select(A.agent_id, func.sum(A.replies), func.sum(A.canned_replies))
            .where(A.label == (f.label or ""), A.day >= f.first_day, A.day <= f.last_day,
                   _in(A.channel_id, f.channels), A.agent_id != 0)
            .group_by(A.agent_id)):
        replies[agent_id] = [int(n), int(canned)]
    rwhere = [ReportResponse.at >= f.start, ReportResponse.at < f.end,
              _in(ReportResponse.channel_id, f.channels), _labelled(ReportResponse.conversation_id, f)]
    # handled (distinct conversations per agent) and the first responses, from one read of
    # the period's responses (conversation, agent, first, seconds)
    value = ReportResponse.business_seconds if f.clock == "business" else ReportResponse.seconds
    handled = _count_distinct(ReportResponse.agent_id, ReportResponse.conversation_id, rwhere)
    first_values: dict[int, list[int]] = defaultdict(list)
    for agent_id, seconds in session.execute(
            select(ReportResponse.agent_id, value).where(*rwhere, ReportResponse.first.is_(True))):
        if seconds is not None:
            first_values[agent_id].append(seconds)
    first = {a: binned_stats(v) for a, v in first_values.items()}
    swhere = [ReportStatusChange.at >= f.start, ReportStatusChange.at < f.end,
              _in(ReportStatusChange.channel_id, f.channels),
              _labelled(ReportStatusChange.conversation_id, f)]
    # resolved and reopened in one read of the period's status log (a change is one or the
    # other: the log holds changes to or from resolved only)
    resolved: dict[int | None, int] = {}
    reopened: dict[int | None, int] = {}
    change = case((ReportStatusChange.new_status == "resolved", "resolved"), else_="reopened")
    for agent_id, kind, n in session.execute(
            select(ReportStatusChange.agent_id, change, func.count()).where(*swhere)
            .group_by(ReportStatusChange.agent_id, change)):
        (resolved if kind == "resolved" else reopened)[agent_id] = n
    people = {a.id: a for a in session.scalars(select(Agent).order_by(Agent.name))}
    ids = {a.id for a in people.values() if a.active} | set(replies) | set(handled) \
        | (set(resolved) | set(reopened)) - {None}
    if f.agent_id is not None:
        ids = {f.agent_id}
    elif f.team_id is not None:
        members = set(session.scalars(select(agent_teams.c.agent_id)
                                      .where(agent_teams.c.team_id == f.team_id)))
        ids = {i for i in ids if i in members or replies.get(i) or handled.get(i)}
    items = []
    for agent_id in ids:
        agent = people.get(agent_id)
        n, canned = replies.get(agent_id, [0, 0])
        items.append({"agent_id": agent_id, "name": agent.name if agent else "",
                      "handled": handled.get(agent_id, 0), "replies": n,
                      "canned_replies": canned,
                      "first_responses": first.get(agent_id, EMPTY)["count"],
                      "median_first_response": first.get(agent_id, EMPTY)["median"],
                      "resolved": resolved.get(agent_id, 0),
                      "reopened": reopened.get(agent_id, 0)})
    items.sort(key=lambda i: (-i["replies"], -i["handled"], i["name"]))
    return {"items": items, "unit": "seconds", "clock": f.clock,
            "note": "handled: conversations in which the agent answered a waiting customer; "
                    "resolved and reopened: by the conversation's assignee at that moment"}


def canned_usage(f: Filters) -> dict[str, Any]:
    session = db.session
    H, by_label = _hourly(f)
    where = [by_label, H.bucket >= f.start, H.bucket < f.end,
             _in(H.channel_id, f.channels), H.direction == "out",
             H.agent_id != 0]
    if f.agent_id is not None:
        where.append(H.agent_id == f.agent_id)
    rows = session.execute(
        select(H.agent_id, H.canned_reply_id, func.sum(H.messages))
        .where(*where).group_by(H.agent_id, H.canned_reply_id)).all()
    replies = {c.id: c for c in session.scalars(select(CannedReply))}
    people = {a.id: a for a in session.scalars(select(Agent))}
    per_reply: dict[int, dict[str, Any]] = {}
    per_agent: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    for agent_id, canned_id, n in rows:
        per_agent[agent_id][0] += n
        if canned_id:
            per_agent[agent_id][1] += n
            entry = per_reply.setdefault(canned_id, {"uses": 0, "agents": set()})
            entry["uses"] += n
            entry["agents"].add(agent_id)
    total = sum(v[0] for v in per_agent.values())
    canned = sum(v[1] for v in per_agent.values())
    items = []
    for canned_id, entry in per_reply.items():
        reply = replies.get(canned_id)
        items.append({"canned_reply_id": canned_id,
                      "shortcut": reply.shortcut if reply else "",
                      "title": (reply.title if reply else "") or "",
                      "uses": entry["uses"], "agents": len(entry["agents"]),
                      "share": round(entry["uses"] / total, 4) if total else 0.0})
    items.sort(key=lambda i: (-i["uses"], i["shortcut"]))
    by_agent = [{"agent_id": a, "name": people[a].name if a in people else "",
                 "replies": v[0], "canned_replies": v[1],
                 "share": round(v[1] / v[0], 4) if v[0] else 0.0}
                for a, v in per_agent.items()]
    by_agent.sort(key=lambda i: (-i["canned_replies"], i["name"]))
    return {"items": items, "by_agent": by_agent,
            "totals": {"replies": total, "canned_replies": canned,
                       "share": round(canned / total, 4) if total else 0.0}}


def source_key(source: Any) -> dict[str, str]:
    """The first-touch source of a CRM card as report columns (UTM tags flat or under "utm")."""
    source = source if isinstance(source, dict) else {}
    utm = source.get("utm") if isinstance(source.get("utm"), dict) else {}
    referrer = str(source.get("referrer") or "")
    if "://" in referrer:
        referrer = referrer.split("://", 1)[1].split("/", 1)[0]
    return {"source_channel": str(source.get("channel") or "")[:40],
            "utm_source": str(utm.get("utm_source") or source.get("utm_source") or "")[:200],
            "utm_medium": str(utm.get("utm_medium") or source.get("utm_medium") or "")[:200],
            "utm_campaign": str(utm.get("utm_campaign") or source.get("utm_campaign") or "")[:200],
            "referrer": referrer[:200],
            "deep_link": str(source.get("deep_link") or "")[:200]}


SOURCE_COLUMNS = ("source_channel", "utm_source", "utm_medium", "utm_campaign", "referrer",
                  "deep_link")


def sources(f: Filters) -> dict[str, Any]:
    session = db.session
    started = [ReportConversation.started_at >= f.start, ReportConversation.started_at < f.end,
               _in(ReportConversation.channel_id, f.channels),
               _labelled(ReportConversation.conversation_id, f)]
    if f.agent_id is not None:
        started.append(ReportConversation.first_response_agent_id == f.agent_id)
    keys = [getattr(ReportCustomerFirst, c) for c in SOURCE_COLUMNS]
    groups: dict[tuple, dict[str, Any]] = {}

    def group(key: tuple) -> dict[str, Any]:
        return groups.setdefault(tuple(key), {**dict(zip(SOURCE_COLUMNS, key)), "conversations": 0,
                                              "customers": 0, "buyers": 0, "orders": 0,
                                              "revenue": {}})

    for *key, conversations, customers in session.execute(
            select(*keys, func.count(), func.count(distinct(ReportConversation.customer_id)))
            .select_from(ReportConversation)
            .join(ReportCustomerFirst,
                  ReportCustomerFirst.customer_id == ReportConversation.customer_id)
            .where(*started).group_by(*keys)):
        g = group(key)
        g["conversations"], g["customers"] = conversations, customers
    engaged = select(ReportConversation.customer_id).where(*started)
    placed = [Order.placed_at >= f.start, Order.placed_at < f.end, Order.customer_id.in_(engaged)]
    joined = select(*keys).select_from(Order).join(
        ReportCustomerFirst, ReportCustomerFirst.customer_id == Order.customer_id).where(*placed)
    for *key, orders, buyers in session.execute(
            joined.add_columns(func.count(), func.count(distinct(Order.customer_id)))
            .group_by(*keys)):
        g = group(key)
        g["orders"], g["buyers"] = orders, buyers
    for *key, currency, revenue in session.execute(
            joined.add_columns(Order.currency, func.sum(Order.total))
            .group_by(*keys, Order.currency)):
        g = group(key)
        cur = currency or ""
        total = Decimal(g["revenue"].get(cur, "0")) + Decimal(str(revenue or 0))
        g["revenue"][cur] = str(total.quantize(Decimal("0.01")))
    items = sorted(groups.values(), key=lambda g: (-g["orders"], -g["conversations"],
                                                   tuple(g[c] for c in SOURCE_COLUMNS)))
    return {"items": items,
            "note": "customers whose conversation started in the period, by their card's "
                    "first-touch source; orders placed in the period by those customers"}


def csat(f: Filters) -> dict[str, Any]:
    """Feedback questions asked in the period (app.usecases.csat): per channel and per agent
    (the conversation's assignee when it was resolved), with the overall row first."""
    from app.infra.models import CsatSurvey

    session = db.session
    where = [CsatSurvey.asked_at >= f.start, CsatSurvey.asked_at < f.end,
             _in(CsatSurvey.channel_id, f.channels)]
    if f.agent_id is not None:
        where.append(CsatSurvey.agent_id == f.agent_id)
    where.append(_labelled(CsatSurvey.conversation_id, f))
    rows = session.execute(select(CsatSurvey.channel_id, CsatSurvey.agent_id, CsatSurvey.score,
                                  func.count()).where(*where)
                           .group_by(CsatSurvey.channel_id, CsatSurvey.agent_id,
                                     CsatSurvey.score)).all()
    channels = _channels(f)
    people = {a.id: a.name for a in session.scalars(select(Agent))}

    def figures(selected) -> dict[str, Any]:
        asked = sum(n for *_, n in selected)
        distribution = {str(s): 0 for s in range(1, 6)}
        for _c, _a, score, n in selected:
            if score is not None:
                distribution[str(score)] += n
        answered = sum(distribution.values())
        total = sum(int(s) * n for s, n in distribution.items())
        return {"asked": asked, "answered": answered,
                "response_rate": round(answered / asked, 4) if asked else None,
                "average": round(total / answered, 2) if answered else None,
                "distribution": distribution}

    items = [{"group": "total", "channel_id": None, "agent_id": None, "name": "",
              **figures(rows)}]
    for channel_id in sorted({r[0] for r in rows}, key=lambda c: (c is None, c or 0)):
        items.append({"group": "channel", **_channel_out(channels, channel_id),
                      "agent_id": None, "name": channels[channel_id].name
                      if channel_id in channels else "",
                      **figures([r for r in rows if r[0] == channel_id])})
    for agent_id in sorted({r[1] for r in rows}, key=lambda a: (a is None, people.get(a, ""))):
        items.append({"group": "agent", "channel_id": None, "agent_id": agent_id,
                      "name": people.get(agent_id, "") if agent_id else "",
                      **figures([r for r in rows if r[1] == agent_id])})
    for item in items:
        item.pop("channel_name", None)
    return {"items": items, "totals": items[0],
            "note": "questions asked in the period; response_rate = answered / asked; "
                    "average over the answered; per agent: the conversation's assignee "
                    "when it was resolved"}


def bot(f: Filters) -> dict[str, Any]:
    """The answer bot (issue 18), from its events: per channel the automated replies, the
    conversations it answered, resolved alone and handed to people (by reason); per article
    how often it was sent and the customers' "did this help?" answers."""
    from app.infra.models import Event, KbArticle

    session = db.session
    channels = _channels(f)
    H = ReportChannelHourly
    by_label = H.label == (f.label or "")
    rows = session.execute(
        select(H.channel_id, func.sum(H.automated))
        .where(by_label, H.bucket >= f.start, H.bucket < f.end,
               _in(H.channel_id, f.channels), H.direction == "out")
        .group_by(H.channel_id)).all()
    per_channel: dict[int, dict[str, Any]] = {}

    def channel_row(cid: int) -> dict[str, Any]:
        return per_channel.setdefault(cid, {
            **_channel_out(channels, cid), "automated_replies": 0, "answered": 0,
            "bot_resolved": 0, "handed_off": 0, "handoff_reasons": {}})

    for cid, n in rows:
        if n:
            channel_row(cid)["automated_replies"] = n
    events = session.execute(
        select(Event.type, Event.channel_id, Event.payload)
        .where(Event.type.in_(("bot.answered", "bot.handoff", "bot.resolved", "bot.feedback")),
               Event.created_at >= f.start, Event.created_at < f.end,
               _in(Event.channel_id, f.channels)).order_by(Event.id)).all()
    answered: dict[int, set[int]] = defaultdict(set)
    resolved: dict[int, set[int]] = defaultdict(set)
    handed: dict[int, dict[int, str]] = defaultdict(dict)
    articles: dict[int, dict[str, int]] = {}
    # the label's conversations only when there are bot events to filter (a common label
    # holds tens of thousands of conversations)
    labelled = _labelled_ids(f) if events else None
    for type_, cid, payload in events:
        payload = payload if isinstance(payload, dict) else {}
        conv = payload.get("conversation_id")
        if labelled is not None and conv not in labelled:
            continue
        cid = cid or 0
        article_id = payload.get("article_id")
        if type_ == "bot.answered":
            answered[cid].add(conv)
        elif type_ == "bot.resolved":
            resolved[cid].add(conv)
        elif type_ == "bot.handoff" and payload.get("bot", "answer_bot") == "answer_bot":
            handed[cid][conv] = str(payload.get("reason") or "")
        if article_id is not None and type_ in ("bot.answered", "bot.feedback"):
            entry = articles.setdefault(int(article_id), {"sent": 0, "helpful_yes": 0,
                                                          "helpful_no": 0})
            if type_ == "bot.answered":
                entry["sent"] += 1
            elif payload.get("helpful") is True:
                entry["helpful_yes"] += 1
            elif payload.get("helpful") is False:
                entry["helpful_no"] += 1
    for cid in set(answered) | set(resolved) | set(handed):
        row = channel_row(cid)
        alone = resolved[cid] - set(handed[cid])
        row.update(answered=len(answered[cid]), bot_resolved=len(alone),
                   handed_off=len(handed[cid]))
        reasons: dict[str, int] = defaultdict(int)
        for reason in handed[cid].values():
            reasons[reason] += 1
        row["handoff_reasons"] = dict(sorted(reasons.items()))
    titles = {a.id: (a.title, a.language) for a in session.scalars(
        select(KbArticle).where(KbArticle.id.in_(sorted(articles) or [-1])))}
    by_article = sorted(({"article_id": aid, "title": titles.get(aid, ("", ""))[0],
                          "language": titles.get(aid, ("", ""))[1], **counts}
                         for aid, counts in articles.items()),
                        key=lambda a: (-a["sent"], a["article_id"]))
    items = sorted(per_channel.values(), key=lambda r: r["channel_id"])
    totals = {key: sum(r[key] for r in items) for key in
              ("automated_replies", "answered", "bot_resolved", "handed_off")}
    totals["helpful_yes"] = sum(a["helpful_yes"] for a in by_article)
    totals["helpful_no"] = sum(a["helpful_no"] for a in by_article)
    return {"items": items, "articles": by_article, "totals": totals,
            "note": "bot_resolved: conversations the answer bot resolved without people; "
                    "handed_off: conversations it handed to people (by reason)"}


REPORTS = {"volume": volume, "response-times": response_times, "agents": agents,
           "canned-usage": canned_usage, "sources": sources, "csat": csat, "bot": bot}


def run_report(name: str, f: Filters) -> dict[str, Any]:
    if _dialect(db.session) == "postgresql":
        # short queries over aggregates: PostgreSQL's JIT compiled each of them for 100-200 ms
        # (bench/README.md) and won nothing back
        db.session.execute(text("SET LOCAL jit = off"))
    body = REPORTS[name](f)
    state = db.session.get(ReportState, "rollup")
    db.session.commit()  # SQLite: end the read transaction
    return {"report": name, "period": f.period(),
            "filters": {"channel_id": sorted(f.channels) if f.channels is not None else None,
                        "team_id": f.team_id, "agent_id": f.agent_id, "label": f.label,
                        "hours": f.clock},
            "rolled_up_at": (state.value or {}).get("rolled_at") if state else None,
            "next_cursor": None, **body}


# --- CSV -------------------------------------------------------------------------------------

def _flat(item: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in item.items():
        if isinstance(value, dict) and key != "revenue":
            out.update(_flat(value, f"{prefix}{key}_"))
        elif key == "revenue":
            out[prefix + key] = "; ".join(f"{c} {v}".strip() for c, v in sorted(value.items()))
        else:
            out[prefix + key] = "" if value is None else value
    return out


def tables(body: dict[str, Any]) -> list[str]:
    """What `table=` may name in a CSV export: the report's lists of rows."""
    return sorted(k for k, v in body.items()
                  if isinstance(v, list) and all(isinstance(i, dict) for i in v))


def to_csv(body: dict[str, Any], table: str = "items") -> str:
    rows = [_flat(item) for item in body.get(table, [])]
    columns: list[str] = []
    for row in rows:
        columns.extend(c for c in row if c not in columns)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    if not columns:
        writer.writerow(["note"])
        writer.writerow([body.get("note", "")])
        return buffer.getvalue()
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_csv_cell(row.get(c, "")) for c in columns])
    return buffer.getvalue()


def _csv_cell(value: Any) -> Any:
    # a cell starting with = + - @ is a formula in spreadsheets: quote it as text
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@"):
        return "'" + value
    return value


def names() -> Iterable[str]:
    return NAMES
