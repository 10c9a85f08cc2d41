"""The rules engine: reads the committed event log (app.infra.events.record_event) past its
cursor and runs the rules whose WHEN matches; then hands out the teams' queues
(app.usecases.distribution). It never runs inside the transaction that made the event.

- Woken after any commit that logged an event (the session listener `wake_after_commit`,
  wired in app/wiring.py) as the job `run_automation`, and by the periodic sweep (`tick`),
  which also fires "idle for N minutes" rules, records SLA breaches and drains the queues.
- One runner at a time: the cursor row is locked (FOR UPDATE on PostgreSQL; SQLite's
  BEGIN IMMEDIATE). Event ids are taken before commit, so on PostgreSQL a later id may
  commit first: ids past a gap are remembered as done and the gap is waited for
  (GAP_TIMEOUT) before it is taken to be a rolled-back transaction.
- Events caused by a rule carry depth + 1 (`stamp_depth`); at rules.MAX_DEPTH no rule fires
  and the stop is logged on the conversation: a rule never triggers itself forever.
- A rule that cannot act (deleted agent or team, missing canned reply, closed WhatsApp
  window) records the failure on the conversation and on the rule; an unassigned
  conversation then waits in its team's queue, visible, never dropped.
"""
from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any, Callable

from sqlalchemy import and_, exists, select
from sqlalchemy.orm import Session

from app.domain import business_hours, rules
from app.infra.db import after_commit
from app.infra.models import (
    Agent,
    AutomationRule,
    CannedReply,
    Channel,
    Conversation,
    ConversationActivity,
    Event,
    Message,
    SlaBreach,
    SlaPolicy,
    Team,
    utcnow,
)
from app.infra.schemas import message_schema
from app.infra.events import record_event
from app.infra.state import db, queue
from app.usecases import distribution
from app.usecases.distribution import add_activity, conversation_changed
from app.usecases.event_reader import GAP_TIMEOUT, EventReader  # noqa: F401 (GAP_TIMEOUT: tests)

log = logging.getLogger(__name__)

CHECKED = "checked"   # activity kind of a periodic rule's look: kept out of the thread
BATCH = 200
MAX_BATCHES = 50
JOB = "run_automation"
DEPTH_KEY = "automation.depth"
# called with (session, conversation, event) when a committed event shows a conversation
# turned resolved (feedback questions: app/wiring.py)
ON_RESOLVED: list[Callable[[Session, Conversation, Event], None]] = []


# --- session listeners (wired in app/wiring.py) -----------------------------------------

def stamp_depth(session: Session, _flush_context, _instances) -> None:
    """before_flush: events written while a rule acts carry the rule's depth."""
    depth = session.info.get(DEPTH_KEY)
    if not depth:
        return
    for obj in session.new:
        if isinstance(obj, Event):
            obj.depth = depth


# what the rules, the SLA clocks and EVENT_HOOKS never act on (handle_event below): a send's
# message.updated and an automated outbound message.created (a campaign's, a bot's). They
# neither wake the rules nor cost them a savepoint and a load each: at a campaign's 200
# sends/s that was two statements and a conversation load per send. Any other event wakes
# the rules (an agent coming online drains the waiting conversations, before_commit).
def _wanted(event: Event) -> bool:
    if event.type == "message.updated":
        return False
    if event.type == "message.created":
        payload = event.payload if isinstance(event.payload, dict) else {}
        if payload.get("direction") == "out" and (payload.get("automated")
                                                  or not payload.get("author_id")):
            return False   # handle_event: only an agent's own reply moves a clock
    return True


# the reader of the committed event log: every event but those above wakes the rules
READER = EventReader("rules", JOB, _wanted, what="rules", logger=log)


# --- the runner --------------------------------------------------------------------------

class ActionFailed(Exception):
    pass


def run_automation() -> int:
    """The job: process every committed event past the cursor. Returns how many."""
    session = db.session
    try:
        return READER.run(session, _handle, BATCH, prepare=prepare_batch,
                          before_commit=_end_of_batch, max_batches=MAX_BATCHES)
    finally:
        session.info.pop(BATCH_KEY, None)


def _handle(session: Session, event: Event) -> None:
    """One event; what it wrote is flushed before the next one (the batch shares a
    savepoint), with the depth of the rule that acted (stamp_depth)."""
    try:
        handle_event(session, event)
        if session.new or session.info.get(DEPTH_KEY):
            session.flush()
    finally:
        session.info.pop(DEPTH_KEY, None)


def _end_of_batch(session: Session) -> None:
    session.info.pop(BATCH_KEY, None)
    distribution.drain_all(session)


# --- a batch's loads: one query per kind ---------------------------------------------------

BATCH_KEY = "automation.batch"   # session.info: the enabled rules and SLA policies of a batch


def _conversation_id(event: Event) -> Any:
    payload = event.payload if isinstance(event.payload, dict) else {}
    if event.type in ("conversation.created", "conversation.updated"):
        return payload.get("id")
    if event.type == "message.created":
        return payload.get("conversation_id")
    return None


def prepare_batch(session: Session, events: list[Event]) -> list[Any]:
    """What handle_event reads per event, for the whole batch: its conversations and the
    channels (one query each, held in the session until the batch ends), the enabled rules
    and SLA policies (one query each, read from session.info by fire and policy_for)."""
    ids = {i for i in map(_conversation_id, events) if isinstance(i, int)}
    held: list[Any] = list(session.scalars(select(Conversation).where(
        Conversation.id.in_(sorted(ids))))) if ids else []
    held += session.scalars(select(Channel)).all()
    enabled = list(session.scalars(select(AutomationRule).where(
        AutomationRule.enabled.is_(True)).order_by(AutomationRule.position, AutomationRule.id)))
    by_trigger: dict[str, list[AutomationRule]] = {}
    for rule in enabled:
        by_trigger.setdefault(rule.event, []).append(rule)
    policies = list(session.scalars(select(SlaPolicy).where(SlaPolicy.enabled.is_(True))
                                    .order_by(SlaPolicy.id)))
    session.info[BATCH_KEY] = {"rules": by_trigger, "policies": policies}
    return held + enabled + policies


# --- events -> triggers ------------------------------------------------------------------

# reactions to a committed event that run before the rules (the answer bot: it holds a new
# conversation before a rule distributes it); app/wiring.py fills this
EVENT_HOOKS: list = []


def handle_event(session: Session, event: Event) -> None:
    for hook in EVENT_HOOKS:
        hook(session, event)
    payload = event.payload if isinstance(event.payload, dict) else {}
    if event.type == "conversation.created":
        conversation = session.get(Conversation, payload.get("id"))
        if conversation is None:
            return
        conversation.seen_status = payload.get("status")
        update_sla(session, conversation)
        fire(session, "conversation_created", conversation, event.depth)
    elif event.type == "conversation.updated":
        conversation = session.get(Conversation, payload.get("id"))
        if conversation is None:
            return
        old, new = conversation.seen_status, payload.get("status")
        conversation.seen_status = new
        if conversation.status != "resolved":
            update_sla(session, conversation)
        if old is None or old == new:
            return
        fire(session, "status_changed", conversation, event.depth, status=new)
        if new == "resolved":
            for hook in ON_RESOLVED:
                hook(session, conversation, event)
        if new == "open" and old in ("resolved", "snoozed", "pending"):
            _reopened(session, conversation)
            fire(session, "conversation_reopened", conversation, event.depth, status=new)
    elif event.type == "message.created":
        conversation = session.get(Conversation, payload.get("conversation_id"))
        if conversation is None:
            return
        when = _at(payload.get("created_at"))
        if (payload.get("meta") or {}).get("csat"):
            return   # a feedback question or its answer: no rule, no SLA clock
        if payload.get("direction") == "in":
            if conversation.first_response_at is not None \
                    and conversation.next_response_due_at is None:
                _next_response_due(session, conversation, when)
            fire(session, "customer_message", conversation, event.depth,
                 text=payload.get("text") or "")
        elif payload.get("direction") == "out" and not payload.get("automated") \
                and payload.get("author_id"):
            conversation.next_response_due_at = None     # answered
            if conversation.first_response_at is None:
                conversation.first_response_at = when
                update_sla(session, conversation)
            fire(session, "agent_reply", conversation, event.depth,
                 text=payload.get("text") or "")


def _at(value: Any):
    """An event's ISO time (a message's own time), else now; never in the future."""
    from datetime import datetime

    try:
        parsed = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        parsed = None
    now = utcnow()
    return min(parsed, now) if parsed is not None and parsed.tzinfo is not None else now


def _next_response_due(session: Session, conversation: Conversation, since) -> None:
    policy = policy_for(session, conversation)
    if policy is None or not policy.next_response_minutes:
        return
    team = session.get(Team, conversation.team_id) if conversation.team_id else None
    conversation.next_response_due_at = business_hours.add_business_minutes(
        team.business_hours if team else None, since, policy.next_response_minutes)


def _reopened(session: Session, conversation: Conversation) -> None:
    """A reopened conversation whose assignee is not online goes back to distribution."""
    if conversation.assignee_id is None:
        return
    agent = session.get(Agent, conversation.assignee_id)
    # away agents keep their conversations; only one who went offline (or left) loses it
    if agent is not None and agent.active and agent.availability != "offline":
        return
    team = distribution.team_for(session, conversation)
    if team is None or team.distribution == "manual":
        return
    name = agent.name if agent is not None else "the assignee"
    add_activity(session, conversation, "unassigned",
                 f"reopened while {name} is {agent.availability if agent else 'gone'}: "
                 f"back to team {team.name}'s distribution",
                 details={"agent_id": conversation.assignee_id, "team_id": team.id})
    distribution.enqueue(session, conversation, team)
    conversation_changed(session, conversation)


# --- rules -------------------------------------------------------------------------------

def _latest_inbound_text(session: Session, conversation: Conversation) -> str:
    return session.scalar(select(Message.text).where(
        Message.conversation_id == conversation.id, Message.direction == "in")
        .order_by(Message.id.desc()).limit(1)) or ""


def facts_for(session: Session, conversation: Conversation, text: str | None) -> rules.Facts:
    channel = session.get(Channel, conversation.channel_id)
    customer = conversation.customer
    source = customer.source if isinstance(customer.source, dict) else {}
    utm = source.get("utm") if isinstance(source.get("utm"), dict) else {}

    def hours_open(team_id: int | None) -> bool:
        team = session.get(Team, team_id) if team_id else distribution.team_for(
            session, conversation)
        return business_hours.is_open(team.business_hours if team else None, utcnow())

    from sqlalchemy import func

    from app.infra.models import Deal, Order, PipelineStage

    closed = select(PipelineStage.key).where(PipelineStage.outcome != "open")
    has_open_deal = session.scalar(select(Deal.id).where(
        Deal.customer_id == conversation.customer_id,
        Deal.stage.not_in(["won", "lost"]), Deal.stage.not_in(closed)).limit(1)) is not None
    last_order = session.scalar(select(func.max(Order.placed_at)).where(
        Order.customer_id == conversation.customer_id))
    return rules.Facts(
        has_open_deal=has_open_deal,
        days_since_order=(utcnow() - last_order).total_seconds() / 86400 if last_order else None,
        channel_id=conversation.channel_id, channel_kind=channel.kind if channel else None,
        team_id=conversation.team_id,
        text=text if text is not None else _latest_inbound_text(session, conversation),
        customer_tags=[str(t) for t in customer.tags or []], priority=conversation.priority,
        status=conversation.status,
        utm_source=utm.get("source") or source.get("utm_source"), hours_open=hours_open)


def fire(session: Session, trigger: str, conversation: Conversation, depth: int,
         text: str | None = None, only: list[AutomationRule] | None = None,
         status: str | None = None) -> int:
    """Run the enabled rules of `trigger` on the conversation; returns how many acted."""
    batch = session.info.get(BATCH_KEY)
    if only is not None:
        candidates = only
    elif batch is not None:   # the reader's batch loaded them once (prepare_batch)
        candidates = list(batch["rules"].get(trigger, ()))
    else:
        candidates = list(session.scalars(
            select(AutomationRule).where(AutomationRule.enabled.is_(True),
                                         AutomationRule.event == trigger)
            .order_by(AutomationRule.position, AutomationRule.id)))
    if not candidates:
        return 0
    facts = facts_for(session, conversation, text)
    if status:
        facts.status = status   # the status the event reports, not a later one
    fired = 0
    for rule in candidates:
        try:
            if not rules.conditions_hold(rule.conditions or [], facts):
                continue
        except ValueError as exc:
            _rule_failed(session, rule, conversation, str(exc))
            continue
        if depth >= rules.MAX_DEPTH:
            add_activity(session, conversation, "loop_stopped",
                         f"rule '{rule.name}' not run: {depth} rule steps in a row "
                         f"(a rule loop stopped)", rule_id=rule.id,
                         details={"depth": depth})
            continue
        session.info[DEPTH_KEY] = depth + 1   # what the actions cause is one step deeper
        # every rule of one event judges the event as it was (not what an earlier rule of
        # the same event made of it): a chain of changes goes through the event log
        run_actions(session, rule, conversation)
        fired += 1
    return fired


def _rule_failed(session: Session, rule: AutomationRule, conversation: Conversation,
                 reason: str) -> None:
    rule.failed_count = (rule.failed_count or 0) + 1
    rule.last_error = f"conversation {conversation.id}: {reason}"[:2000]
    add_activity(session, conversation, "rule_failed", f"rule '{rule.name}' could not act: "
                 f"{reason}", rule_id=rule.id)
    if conversation.assignee_id is None and conversation.waiting_since is None \
            and conversation.status == "open":
        conversation.waiting_since = utcnow()   # the team's queue: visible, never dropped
        team = distribution.team_for(session, conversation)
        if team is not None and conversation.team_id is None:
            conversation.team_id = team.id
        conversation_changed(session, conversation)


def run_actions(session: Session, rule: AutomationRule, conversation: Conversation) -> None:
    rule.fired_count = (rule.fired_count or 0) + 1
    for action in rule.actions or []:
        try:
            with session.begin_nested():
                said = ACTIONS[action.get("type")](session, rule, conversation, action)
                if said:
                    add_activity(session, conversation, "rule", f"{said} by rule '{rule.name}'",
                                 rule_id=rule.id, details={"action": action})
        except ActionFailed as exc:
            _rule_failed(session, rule, conversation, str(exc))
        except KeyError:
            _rule_failed(session, rule, conversation, f"unknown action {action.get('type')!r}")


def _assign_team(session, rule, conversation, action) -> str:
    team = session.get(Team, action.get("team_id"))
    if team is None:
        raise ActionFailed(f"team {action.get('team_id')} does not exist")
    conversation.team_id = team.id
    conversation_changed(session, conversation)
    return f"moved to team {team.name}"


def _distribute(session, rule, conversation, action) -> str | None:
    if conversation.handled_by is not None:   # a bot holds it; its hand-off distributes it
        return f"left to the bot ({conversation.handled_by}) until it hands over"
    team = session.get(Team, action["team_id"]) if action.get("team_id") else \
        distribution.team_for(session, conversation)
    if team is None:
        raise ActionFailed(f"team {action.get('team_id')} does not exist" if action.get(
            "team_id") else "the conversation has no team and its channel belongs to none")
    if conversation.assignee_id is not None and not action.get("reassign"):
        return None   # already someone's
    agent_id = distribution.distribute(session, conversation, team,
                                       reason=f"rule '{rule.name}'")
    if agent_id is None:
        conversation_changed(session, conversation)
        if team.distribution == "manual":
            return f"queued for team {team.name} (manual distribution)"
        return f"waiting for an available agent of team {team.name}"
    return None   # the assignment logged its own line, with the rule's name


def _assign_agent(session, rule, conversation, action) -> str:
    agent = session.get(Agent, action.get("agent_id"))
    if agent is None or not agent.active:
        raise ActionFailed(f"agent {action.get('agent_id')} does not exist or is deactivated")
    conversation.assignee_id = agent.id
    conversation.waiting_since = None
    conversation_changed(session, conversation)
    return f"assigned to {agent.name}"


def _add_label(session, rule, conversation, action) -> str | None:
    label = str(action["label"]).strip()
    if label in (conversation.labels or []):
        return None
    conversation.labels = [*(conversation.labels or []), label]
    conversation_changed(session, conversation)
    return f"labelled {label}"


def _set_priority(session, rule, conversation, action) -> str | None:
    if conversation.priority == action["priority"]:
        return None
    conversation.priority = action["priority"]
    conversation_changed(session, conversation)
    return f"priority set to {action['priority']}"


def _auto_reply(session, rule, conversation, action) -> str:
    from app.usecases.outbox import ReplyError, enqueue_reply

    if conversation.handled_by is not None:
        return f"no auto-reply: the bot ({conversation.handled_by}) is answering"
    text = action.get("text") or ""
    if action.get("canned_reply_id") is not None:
        canned = session.get(CannedReply, action["canned_reply_id"])
        if canned is None:
            raise ActionFailed(f"canned reply {action['canned_reply_id']} does not exist")
        text = canned.text
    text = rules.fill_variables(text, conversation.customer.name, None)
    try:
        message = enqueue_reply(session, conversation, None, text, automated=True)
    except ReplyError as exc:
        raise ActionFailed(f"auto-reply not sent: {exc}") from exc
    message.meta = {**(message.meta or {}), "rule_id": rule.id}
    return "auto-reply queued"


def _add_note(session, rule, conversation, action) -> str:
    message = Message(conversation_id=conversation.id, customer_id=conversation.customer_id,
                      channel_id=None, direction="note", author_id=None,
                      text=rules.fill_variables(action["text"], conversation.customer.name,
                                                None),
                      status="received", automated=True, created_at=utcnow(),
                      meta={"rule_id": rule.id})
    session.add(message)
    session.flush()
    record_event(session, "message.created", message_schema.dump(message),
                 conversation.channel_id)
    return "note added"


def _resolve(session, rule, conversation, action) -> str | None:
    if conversation.status == "resolved":
        return None
    conversation.status, conversation.resolved_at = "resolved", utcnow()
    conversation.snoozed_until = None
    conversation.waiting_since = None
    conversation_changed(session, conversation)
    return "resolved"


def _snooze(session, rule, conversation, action) -> str:
    conversation.status = "snoozed"
    conversation.snoozed_until = utcnow() + timedelta(minutes=int(action["minutes"]))
    conversation.waiting_since = None
    conversation_changed(session, conversation)
    return f"snoozed for {action['minutes']} min"


def _webhook(session, rule, conversation, action) -> str:
    """POST the conversation to an outgoing webhook endpoint (signed, retried, in its delivery
    log like every other webhook), as the event `automation.webhook`."""
    from app.infra.models import WebhookDelivery, WebhookEndpoint
    from app.infra.schemas import conversation_schema
    from app.usecases.hooks import event_body

    endpoint = session.get(WebhookEndpoint, action.get("endpoint_id"))
    if endpoint is None or not endpoint.active:
        raise ActionFailed(f"webhook endpoint {action.get('endpoint_id')} does not exist or "
                           f"is disabled")
    event = record_event(session, "automation.webhook", {
        "rule": {"id": rule.id, "name": rule.name},
        "conversation": conversation_schema.dump(conversation)}, conversation.channel_id)
    session.flush()
    now = utcnow()
    delivery = WebhookDelivery(endpoint_id=endpoint.id, event_id=event.id,
                               event_type=event.type, body=event_body(event), status="pending",
                               attempts=0, enqueued_at=now, log=[], created_at=now)
    session.add(delivery)
    session.flush()
    delivery_id = delivery.id
    after_commit(session, lambda: queue.enqueue("deliver_webhook", delivery_id))
    return f"webhook to {endpoint.description or endpoint.url} queued"


ACTIONS = {"webhook": _webhook, "assign_team": _assign_team, "distribute": _distribute,
           "assign_agent": _assign_agent, "add_label": _add_label,
           "set_priority": _set_priority, "auto_reply": _auto_reply, "add_note": _add_note,
           "resolve": _resolve, "snooze": _snooze}


# --- SLA ---------------------------------------------------------------------------------

def policy_for(session: Session, conversation: Conversation) -> SlaPolicy | None:
    batch = session.info.get(BATCH_KEY)
    policies = batch["policies"] if batch is not None else list(session.scalars(
        select(SlaPolicy).where(SlaPolicy.enabled.is_(True)).order_by(SlaPolicy.id)))
    best, best_score = None, -1
    for policy in policies:
        if policy.team_id is not None and policy.team_id != conversation.team_id:
            continue
        if policy.priority is not None and policy.priority != conversation.priority:
            continue
        score = (2 if policy.team_id is not None else 0) + (1 if policy.priority else 0)
        if score > best_score:
            best, best_score = policy, score
    return best


def update_sla(session: Session, conversation: Conversation) -> None:
    """Due times in the team's business hours from the conversation's start."""
    policy = policy_for(session, conversation)
    if policy is None:
        conversation.sla_policy_id = None
        conversation.first_response_due_at = conversation.resolution_due_at = None
        conversation.sla_warning_at = conversation.next_response_due_at = None
        return
    team = session.get(Team, conversation.team_id) if conversation.team_id else None
    hours = team.business_hours if team else None
    start = conversation.created_at
    conversation.sla_policy_id = policy.id
    targets = []
    if policy.first_response_minutes:
        conversation.first_response_due_at = business_hours.add_business_minutes(
            hours, start, policy.first_response_minutes)
        if conversation.first_response_at is None:
            targets.append(policy.first_response_minutes)
    else:
        conversation.first_response_due_at = None
    if policy.resolution_minutes:
        conversation.resolution_due_at = business_hours.add_business_minutes(
            hours, start, policy.resolution_minutes)
        targets.append(policy.resolution_minutes)
    else:
        conversation.resolution_due_at = None
    warnings = [business_hours.add_business_minutes(hours, start,
                                                    m * policy.warn_percent / 100)
                for m in targets]
    warnings = [w for w in warnings if w is not None]
    conversation.sla_warning_at = min(warnings) if warnings else None


def record_breaches(session: Session, now=None) -> int:
    now = now or utcnow()
    count = 0
    for kind, due, met in (("first_response", Conversation.first_response_due_at,
                            Conversation.first_response_at.is_(None)),
                           ("next_response", Conversation.next_response_due_at, None),
                           ("resolution", Conversation.resolution_due_at, None)):
        stmt = select(Conversation).where(
            Conversation.status != "resolved", due.is_not(None), due < now,
            ~exists().where(and_(SlaBreach.conversation_id == Conversation.id,
                                 SlaBreach.kind == kind)))
        if met is not None:
            stmt = stmt.where(met)
        for conversation in session.scalars(stmt.limit(500)):
            due_at = getattr(conversation, due.key)
            session.add(SlaBreach(conversation_id=conversation.id,
                                  policy_id=conversation.sla_policy_id, kind=kind,
                                  due_at=due_at, breached_at=now,
                                  team_id=conversation.team_id,
                                  assignee_id=conversation.assignee_id))
            add_activity(session, conversation, "sla_breached",
                         f"SLA {kind.replace('_', ' ')} target missed (due "
                         f"{due_at.strftime('%Y-%m-%d %H:%M')} UTC)",
                         details={"kind": kind, "due_at": due_at.isoformat()})
            count += 1
    return count


# --- the periodic part -------------------------------------------------------------------

def _checked(session: Session, conversation: Conversation, rule: AutomationRule) -> None:
    """A periodic rule looked at the conversation and did not apply: remembered (so it is
    not looked at again until new activity), not shown in the thread."""
    session.add(ConversationActivity(conversation_id=conversation.id, kind=CHECKED,
                                     rule_id=rule.id, text="", details={},
                                     created_at=utcnow()))
    session.flush()


def fire_idle_rules(session: Session, now=None) -> int:
    now = now or utcnow()
    fired = 0
    idle_rules = list(session.scalars(select(AutomationRule).where(
        AutomationRule.enabled.is_(True), AutomationRule.event == "conversation_idle")
        .order_by(AutomationRule.position, AutomationRule.id)))
    for rule in idle_rules:
        minutes = int((rule.options or {}).get("minutes") or 0)
        if minutes < 1:
            continue
        already = exists().where(and_(
            ConversationActivity.conversation_id == Conversation.id,
            ConversationActivity.rule_id == rule.id,
            ConversationActivity.created_at >= Conversation.last_activity_at))
        stale = list(session.scalars(select(Conversation).where(
            Conversation.status == "open",
            Conversation.last_activity_at < now - timedelta(minutes=minutes), ~already)
            .order_by(Conversation.id).limit(200)))
        for conversation in stale:
            if not fire(session, "conversation_idle", conversation, 0, only=[rule]):
                _checked(session, conversation, rule)
            fired += 1
    return fired


def fire_sla_warning_rules(session: Session, now=None) -> int:
    """WHEN "SLA about to breach": once per rule and conversation, after its warning time."""
    now = now or utcnow()
    fired = 0
    warning_rules = list(session.scalars(select(AutomationRule).where(
        AutomationRule.enabled.is_(True), AutomationRule.event == "sla_warning")
        .order_by(AutomationRule.position, AutomationRule.id)))
    for rule in warning_rules:
        already = exists().where(and_(ConversationActivity.conversation_id == Conversation.id,
                                      ConversationActivity.rule_id == rule.id))
        due = list(session.scalars(select(Conversation).where(
            Conversation.status != "resolved", Conversation.sla_warning_at.is_not(None),
            Conversation.sla_warning_at <= now, ~already).order_by(Conversation.id).limit(200)))
        for conversation in due:
            if not fire(session, "sla_warning", conversation, 0, only=[rule]):
                _checked(session, conversation, rule)
            fired += 1
    return fired


def tick() -> dict[str, Any]:
    """From the sweep: idle and SLA-warning rules, SLA breaches, queues, a wake for the
    runner."""
    session = db.session
    counts = {"idle": fire_idle_rules(session), "sla_warning": fire_sla_warning_rules(session),
              "breaches": record_breaches(session)}
    counts["assigned"] = len(distribution.drain_all(session))
    session.commit()
    READER.wake()
    return counts


# --- standard rules ----------------------------------------------------------------------

GREETING_TEXT = ("Hello {{customer.first_name}}! Thank you for writing to us: an agent will "
                 "answer you shortly.")
AWAY_TEXT = ("Hello {{customer.first_name}}! We are away right now; we will answer as soon "
             "as we are back.")


def install_standard_rules(session: Session) -> list[AutomationRule]:
    """Greeting, away reply and "distribute between agents", disabled: one switch each on
    /settings/rules. Idempotent (the rules are found by their `standard` key)."""
    existing = {r.standard: r for r in session.scalars(
        select(AutomationRule).where(AutomationRule.standard.is_not(None)))}

    def canned(shortcut: str, title: str, text: str) -> int:
        reply = session.scalar(select(CannedReply).where(CannedReply.shortcut == shortcut))
        if reply is None:
            reply = CannedReply(shortcut=shortcut, title=title, text=text)
            session.add(reply)
            session.flush()
        return reply.id

    wanted = [
        ("distribute", "Distribute between agents", "conversation_created", [],
         lambda: [{"type": "distribute"}]),
        ("greeting", "Greeting", "conversation_created",
         [{"type": "business_hours", "value": "open"}],
         lambda: [{"type": "auto_reply",
                   "canned_reply_id": canned("greeting", "Greeting", GREETING_TEXT)}]),
        ("away", "Away reply", "conversation_created",
         [{"type": "business_hours", "value": "closed"}],
         lambda: [{"type": "auto_reply",
                   "canned_reply_id": canned("away", "Away reply", AWAY_TEXT)}]),
    ]
    installed = []
    for position, (key, name, event, conditions, actions) in enumerate(wanted):
        if key in existing:
            installed.append(existing[key])
            continue
        rule = AutomationRule(name=name, event=event, conditions=conditions, actions=actions(),
                              enabled=False, position=position, standard=key, options={})
        session.add(rule)
        installed.append(rule)
    session.flush()
    return installed
