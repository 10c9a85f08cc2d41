"""Feedback after a conversation (CSAT, issue 21).

- Asking: the rules engine reads the committed event log (app.usecases.automation); when a
  conversation turns resolved it calls `on_resolved` (wired in app/wiring.py). A question is
  queued through the durable outbox, once per conversation, never twice to a customer within
  the throttle period, only after an agent answered (not a bot alone, not when the last
  exchange was automated), on the customer's channel: Telegram/WhatsApp/site chat with the
  buttons "csat:<conversation>:<1-5>" (meta["buttons"]; the site chat draws stars), email
  with five signed links to /feedback/<token>.
- Answers: ingest asks `place_answer` where an inbound message belongs; a button press, a
  reply starting with a digit 1-5 (within ANSWER_WINDOW) or a free text shortly after the
  score (COMMENT_WINDOW, the comment) joins the resolved conversation it answers, without
  reopening it (no new conversation, no distribution, no rules). `after_inbound` records it;
  the feedback page records link answers (`answer_by_token`).
"""
from __future__ import annotations

import logging
from datetime import timedelta
from html import escape
from typing import Any

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from connectors.base import Inbound

from app.domain import csat as rules
from app.domain.rules import detect_language
from app.infra.events import record_event
from app.infra.models import (
    Agent,
    Channel,
    Conversation,
    CsatSettings,
    CsatSurvey,
    CsatThrottle,
    Customer,
    Event,
    Identity,
    Message,
    OptOut,
    utcnow,
)
from app.infra.state import config
from app.usecases.distribution import add_activity

log = logging.getLogger(__name__)

KINDS = ("telegram", "whatsapp", "email", "webchat")
ANSWER_WINDOW = timedelta(days=2)     # a plain digit reply counts as the answer this long
LINK_VALID = timedelta(days=14)       # the email's links (and buttons) are good this long
COMMENT_WINDOW = timedelta(minutes=60)   # a free text after the score becomes the comment
BOT_EVENT_WINDOW = timedelta(minutes=10)
ACTIVITY = "csat"


# --- settings ----------------------------------------------------------------------------

def get_settings(session: Session) -> CsatSettings:
    found = session.get(CsatSettings, 1)
    if found is None:
        found = CsatSettings(id=1, enabled=False, questions={},
                             throttle_days=rules.THROTTLE_DAYS, updated_at=utcnow())
        session.add(found)
        session.flush()
    return found


def settings_out(found: CsatSettings) -> dict[str, Any]:
    return {"enabled": bool(found.enabled), "throttle_days": found.throttle_days,
            "questions": {lang: rules.question(found.questions, lang)
                          for lang in rules.LANGUAGES},
            "default_questions": dict(rules.QUESTIONS)}


def update_settings(session: Session, agent: Agent | None, patch: dict[str, Any]) -> CsatSettings:
    """Raises FieldError on a bad field (nothing written)."""
    from app.domain.audit import audit

    clean = rules.check_settings(patch)
    found = get_settings(session)
    before = settings_out(found)
    if "enabled" in clean:
        found.enabled = clean["enabled"]
    if "throttle_days" in clean:
        found.throttle_days = clean["throttle_days"]
    if "questions" in clean:
        merged = dict(found.questions or {})
        for lang, text in clean["questions"].items():
            # the built-in text stays the default: only a different text is stored
            if text and text != rules.QUESTIONS[lang]:
                merged[lang] = text
            else:
                merged.pop(lang, None)
        found.questions = merged
    found.updated_at = utcnow()
    session.flush()
    audit(agent, "csat.settings", "csat_settings", 1, before=before, after=settings_out(found))
    return found


# --- tokens of the email links -----------------------------------------------------------

def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(config["secret_key"], salt="threadline.csat")


def token_for(survey_id: int) -> str:
    return _serializer().dumps(survey_id)


def survey_for_token(session: Session, token: str) -> tuple[CsatSurvey | None, str | None]:
    """The survey a link names, or (None, "expired" | "invalid")."""
    try:
        survey_id = _serializer().loads(token, max_age=int(LINK_VALID.total_seconds()))
    except SignatureExpired:
        return None, "expired"
    except BadSignature:
        return None, "invalid"
    survey = session.get(CsatSurvey, survey_id) if isinstance(survey_id, int) else None
    return (survey, None) if survey is not None else (None, "invalid")


def public_base() -> str:
    server = config["server"]
    return (server.get("public_url") or f"http://{server['host']}:{server['port']}").rstrip("/")


def feedback_url(survey_id: int, score: int | None = None) -> str:
    url = f"{public_base()}/feedback/{token_for(survey_id)}"
    return f"{url}?score={score}" if score else url


# --- asking ------------------------------------------------------------------------------

def on_resolved(session: Session, conversation: Conversation, event: Event) -> None:
    """Called by the rules engine for a committed change of a conversation to resolved."""
    try:
        with session.begin_nested():
            reason = ask(session, conversation, event)
            if reason:
                log.info("CSAT not asked for conversation %s: %s", conversation.id, reason)
    except Exception:
        log.exception("CSAT question for conversation %s failed", conversation.id)


def why_not(session: Session, conversation: Conversation, settings: CsatSettings,
            now, event: Event | None = None) -> str | None:
    """Why no question goes out for this resolved conversation (None: ask)."""
    if not settings.enabled:
        return "disabled"
    if conversation.handled_by is not None:
        return f"handled by {conversation.handled_by}"
    if session.scalar(select(CsatSurvey.id).where(
            CsatSurvey.conversation_id == conversation.id)) is not None:
        return "already asked"
    # a bot's resolution is logged with the change it made: look around the resolving event
    around = (event.created_at if event is not None and event.created_at else now)
    bot_resolved = session.scalars(select(Event.payload).where(
        Event.created_at >= max(conversation.created_at, around - BOT_EVENT_WINDOW),
        Event.type == "bot.resolved").limit(100))
    for payload in bot_resolved:
        if isinstance(payload, dict) and conversation.id in (
                payload.get("conversation_id"), payload.get("id"),
                (payload.get("conversation") or {}).get("id")):
            return "resolved by a bot"
    agent_reply = session.scalar(select(Message.id).where(
        Message.conversation_id == conversation.id, Message.direction == "out",
        Message.author_id.is_not(None), Message.automated.is_(False)).limit(1))
    if agent_reply is None:
        return "no agent answered"
    last = session.scalar(select(Message).where(
        Message.conversation_id == conversation.id, Message.direction.in_(("in", "out")))
        .order_by(Message.id.desc()).limit(1))
    if last is not None and last.automated:
        return "the last exchange was automated"
    throttle = session.get(CsatThrottle, conversation.customer_id)
    if throttle is not None and throttle.last_asked_at > now - timedelta(
            days=settings.throttle_days):
        return "asked recently"
    customer = session.get(Customer, conversation.customer_id)
    if _opted_out(customer) or session.scalar(select(OptOut.id).where(
            OptOut.customer_id == conversation.customer_id).limit(1)) is not None:
        return "the customer opted out"
    return None


def _opted_out(customer: Customer | None) -> bool:
    """An opt-out written on the card by people (custom field or tag); the recorded opt-outs
    (keywords, a blocked bot, the unsubscribe link) are the OptOut rows."""
    if customer is None:
        return True
    fields = customer.custom_fields if isinstance(customer.custom_fields, dict) else {}
    tags = {str(t).lower() for t in customer.tags or []}
    return bool(fields.get("opted_out") or getattr(customer, "opted_out", False)
                or {"opted-out", "opted_out", "blocked"} & tags)


def _channel_for(session: Session, conversation: Conversation) -> tuple[Channel | None, str]:
    """The customer's latest channel (the reply route) if we can reach them there."""
    from app.usecases.outbox import customer_channel_ids

    for channel_id in customer_channel_ids(session, conversation.customer_id)[:1]:
        channel = session.get(Channel, channel_id)
        if channel is None or not channel.active:
            return None, "the customer's channel is inactive"
        if channel.kind not in KINDS:
            return None, f"no feedback on {channel.kind}"
        sender = session.scalar(select(Message.meta).where(
            Message.customer_id == conversation.customer_id, Message.channel_id == channel.id,
            Message.direction == "in").order_by(Message.id.desc()).limit(1)) or {}
        kind, _, value = str(sender.get("from") or "").partition(":")
        identity = session.scalar(select(Identity).where(Identity.kind == kind,
                                                         Identity.value == value))
        if identity is not None and not identity.reachable:
            return None, "the customer is not reachable (blocked or bounced)"
        return channel, ""
    return None, "the customer wrote on no channel"


def customer_language(session: Session, conversation: Conversation) -> str:
    texts = session.scalars(select(Message.text).where(
        Message.conversation_id == conversation.id, Message.direction == "in")
        .order_by(Message.id.desc()).limit(5))
    found = detect_language(" ".join(t or "" for t in texts))
    return found if found in rules.LANGUAGES else "en"


def ask(session: Session, conversation: Conversation, event: Event | None = None) -> str | None:
    """Queue the question for a resolved conversation; returns why not, or None when asked."""
    from app.usecases.outbox import ReplyError, enqueue_reply

    now = utcnow()
    settings = get_settings(session)
    reason = why_not(session, conversation, settings, now, event)
    if reason:
        return reason
    channel, reason = _channel_for(session, conversation)
    if channel is None:
        return reason
    language = customer_language(session, conversation)
    survey = CsatSurvey(conversation_id=conversation.id, customer_id=conversation.customer_id,
                        channel_id=channel.id, agent_id=conversation.assignee_id,
                        team_id=conversation.team_id, language=language, asked_at=now)
    session.add(survey)
    session.flush()
    text = rules.question(settings.questions, language)
    subject = html = None
    if channel.kind == "email":
        subject = rules.EMAIL_SUBJECT[language]
        links = [(n, feedback_url(survey.id, n)) for n in rules.SCORES]
        text = "\n".join([text, "", rules.EMAIL_CLICK[language],
                          *[f"{n} — {url}" for n, url in links]])
        html = (f"<p>{escape(rules.question(settings.questions, language))}</p>"
                f"<p>{escape(rules.EMAIL_CLICK[language])}</p><p>" + " ".join(
                    f'<a href="{escape(url)}" style="display:inline-block;padding:8px 14px;'
                    f'margin:2px;border:1px solid #d4a017;border-radius:6px;'
                    f'text-decoration:none;font-size:18px">{"★" * n} {n}</a>'
                    for n, url in links) + "</p>")
    try:
        message = enqueue_reply(session, conversation, None, text, channel_id=channel.id,
                                subject=subject, automated=True)
    except ReplyError as exc:   # a closed WhatsApp window, ...
        session.delete(survey)
        session.flush()
        return f"cannot send: {exc}"
    message.html = html
    message.meta = {**(message.meta or {}), "csat": {"conversation_id": conversation.id},
                    **({"buttons": rules.buttons(conversation.id)}
                       if channel.kind != "email" else {})}
    survey.message_id = message.id
    throttle = session.get(CsatThrottle, conversation.customer_id)
    if throttle is None:
        session.add(CsatThrottle(customer_id=conversation.customer_id, last_asked_at=now))
    else:
        throttle.last_asked_at = now
    session.flush()
    add_activity(session, conversation, "csat_asked",
                 f"feedback question sent to the customer ({channel.kind})",
                 details={"survey_id": survey.id, "channel_id": channel.id})
    return None


# --- answers on a channel ----------------------------------------------------------------

_PREFETCHED = "csat.surveys"


def prefetch_surveys(session: Session, customer_ids: list[int]):
    """Ingest's batch prefetch (ingest.BATCH_PREFETCH): the recent questions of every
    customer of a set of inbound messages in one query, which `place_answer` reads instead
    of one query per message. Returns the function that forgets them."""
    since = utcnow() - LINK_VALID
    found: dict[int, list[CsatSurvey]] = {customer_id: [] for customer_id in customer_ids}
    if customer_ids:
        for survey in session.scalars(select(CsatSurvey).where(
                CsatSurvey.customer_id.in_(customer_ids), CsatSurvey.asked_at >= since)
                .order_by(CsatSurvey.asked_at.desc(), CsatSurvey.id.desc())):
            found[survey.customer_id].append(survey)
    session.info[_PREFETCHED] = found
    return lambda: session.info.pop(_PREFETCHED, None)


def _surveys_of(session: Session, customer_id: int, since) -> list[CsatSurvey]:
    prefetched = session.info.get(_PREFETCHED)
    if prefetched is not None and customer_id in prefetched:
        return [s for s in prefetched[customer_id] if s.asked_at >= since][:5]
    return list(session.scalars(select(CsatSurvey).where(
        CsatSurvey.customer_id == customer_id, CsatSurvey.asked_at >= since)
        .order_by(CsatSurvey.asked_at.desc(), CsatSurvey.id.desc()).limit(5)))


def classify(session: Session, customer: Customer, channel: Channel, inbound: Inbound,
             now=None) -> tuple[CsatSurvey, str, int | None, str] | None:
    """(survey, how, score, comment) when the inbound message answers a question: how is
    "button", "reply" (a digit) or "comment"; else None."""
    now = now or utcnow()
    button = rules.parse_button(inbound.button_id)
    if button is not None:
        conversation_id, score = button
        survey = session.scalar(select(CsatSurvey).where(
            CsatSurvey.conversation_id == conversation_id))
        if survey is None or survey.customer_id != customer.id \
                or survey.asked_at < now - LINK_VALID:
            return None
        return survey, "button", score, ""
    if inbound.kind != "message":
        return None
    recent = [s for s in _surveys_of(session, customer.id, now - LINK_VALID)
              if s.channel_id == channel.id]
    if not recent:
        return None
    survey = recent[0]
    conversation = session.get(Conversation, survey.conversation_id)
    if conversation is None or conversation.status != "resolved":
        return None
    if session.scalar(select(Conversation.id).where(
            Conversation.customer_id == customer.id,
            Conversation.status != "resolved")) is not None:
        return None   # the customer has an open request: their message belongs there
    reply = rules.parse_reply(inbound.text)
    in_comment_window = survey.answered_at is not None \
        and survey.answered_at > now - COMMENT_WINDOW
    if reply is not None and survey.asked_at > now - ANSWER_WINDOW \
            and (survey.score is None or in_comment_window):
        return survey, "reply", reply[0], reply[1]
    text = (inbound.text or "").strip()
    if text and in_comment_window and not survey.comment:
        return survey, "comment", None, text[:rules.MAX_COMMENT]
    return None


def place_answer(session: Session, customer: Customer, channel: Channel,
                 inbound: Inbound) -> Conversation | None:
    """Ingest's placement hook: the resolved conversation an answer belongs to."""
    found = classify(session, customer, channel, inbound)
    if found is None:
        return None
    return session.get(Conversation, found[0].conversation_id)


def after_inbound(session: Session, channel: Channel, inbound: Inbound,
                  message: Message) -> None:
    """Ingest's after-inbound hook: record the answer a message placed by `place_answer`
    carries (the message is in a resolved conversation only then)."""
    conversation = session.get(Conversation, message.conversation_id)
    if conversation is None or (conversation.status != "resolved"
                                and rules.parse_button(inbound.button_id) is None):
        return   # only a button may answer a conversation reopened meanwhile
    customer = session.get(Customer, message.customer_id)
    found = classify(session, customer, channel, inbound)
    if found is None or found[0].conversation_id != conversation.id:
        return
    survey, how, score, comment = found
    message.meta = {**(message.meta or {}), "csat": how}
    if how == "comment":
        record_comment(session, survey, comment)
    else:
        record_score(session, survey, score, "button" if how == "button" else "reply",
                     comment or None)


# --- recording ---------------------------------------------------------------------------

def record_score(session: Session, survey: CsatSurvey, score: int, via: str,
                 comment: str | None = None) -> CsatSurvey:
    if score not in rules.SCORES:
        raise ValueError("score must be 1 to 5")
    first = survey.score is None
    changed = survey.score != score
    survey.score = score
    survey.answered_at = utcnow()
    survey.answered_via = via
    if comment:
        survey.comment = comment[:rules.MAX_COMMENT]
    session.flush()
    if first or changed or comment:
        _announce(session, survey)
    if first and via in ("button", "reply"):
        _thank(session, survey)
    return survey


def record_comment(session: Session, survey: CsatSurvey, comment: str) -> CsatSurvey:
    survey.comment = (comment or "").strip()[:rules.MAX_COMMENT] or None
    session.flush()
    _announce(session, survey)
    return survey


def _thank(session: Session, survey: CsatSurvey) -> None:
    """After a score on a chat channel: thanks, and the offer of a comment."""
    from app.usecases.outbox import ReplyError, enqueue_reply

    conversation = session.get(Conversation, survey.conversation_id)
    try:
        message = enqueue_reply(session, conversation, None,
                                rules.COMMENT_THANKS.get(survey.language, rules.COMMENT_THANKS["en"]),
                                channel_id=survey.channel_id, automated=True)
    except ReplyError as exc:
        log.info("CSAT thanks not sent: %s", exc)
        return
    message.meta = {**(message.meta or {}), "csat": {"thanks": survey.id}}


def _announce(session: Session, survey: CsatSurvey) -> None:
    """The thread's system line, and the card's live update."""
    from app.infra.schemas import customer_schema

    conversation = session.get(Conversation, survey.conversation_id)
    text = f"Customer rated {survey.score}/5" if survey.score else "Customer commented"
    if survey.comment:
        text += f": {survey.comment}"
    add_activity(session, conversation, ACTIVITY, text,
                 details={"survey_id": survey.id, "score": survey.score,
                          "comment": survey.comment, "via": survey.answered_via})
    customer = session.get(Customer, survey.customer_id)
    if customer is not None:
        record_event(session, "customer.updated", customer_schema.dump(customer),
                     conversation.channel_id)


def survey_out(survey: CsatSurvey | None) -> dict[str, Any] | None:
    if survey is None:
        return None
    return {"id": survey.id, "conversation_id": survey.conversation_id,
            "channel_id": survey.channel_id, "agent_id": survey.agent_id,
            "team_id": survey.team_id, "language": survey.language,
            "asked_at": survey.asked_at.isoformat() if survey.asked_at else None,
            "score": survey.score, "comment": survey.comment,
            "answered_at": survey.answered_at.isoformat() if survey.answered_at else None,
            "answered_via": survey.answered_via}


def for_conversation(session: Session, conversation_id: int) -> CsatSurvey | None:
    return session.scalar(select(CsatSurvey).where(
        CsatSurvey.conversation_id == conversation_id))


def for_customer(session: Session, customer_id: int, limit: int = 10) -> dict[str, Any]:
    """The card's block: the latest answers and the customer's average."""
    rows = list(session.scalars(select(CsatSurvey).where(CsatSurvey.customer_id == customer_id)
                                .order_by(CsatSurvey.asked_at.desc(), CsatSurvey.id.desc())
                                .limit(limit)))
    average, answered = session.execute(select(func.avg(CsatSurvey.score),
                                               func.count(CsatSurvey.score)).where(
        and_(CsatSurvey.customer_id == customer_id, CsatSurvey.score.is_not(None)))).one()
    return {"average": round(float(average), 2) if average is not None else None,
            "answered": answered, "items": [survey_out(s) for s in rows]}
