"""The built-in answer bot (issue 18): answers customers from the knowledge base before a
person does, and hands over to people when it cannot.

It reacts to COMMITTED events, read by the rules engine's runner (app/usecases/automation.py
calls `on_event` for each event before the rules, wired in app/wiring.py), never inside the
ingest transaction:

- `conversation.created` (and a customer message in an open conversation nobody took): when
  the channel's `answer_bot` setting is `always`, or `after_hours` while the team's business
  hours (app/domain/business_hours.py) are closed, the bot holds the conversation
  (`handled_by = "answer_bot"`): it stays out of the people's queue and of distribution.
- A customer message in a conversation the bot holds: the knowledge base is searched in the
  customer's language; above `kb.ANSWER_THRESHOLD` the bot answers through the durable outbox
  with the article's short answer, a link to /help and two buttons ("kb:<id>:yes|no").
- "yes" resolves the conversation as answered by the bot. "no", a low score, a third question,
  or words like "оператор", "человек", "konsultant", "agent" hand it to people
  (`handled_by = None`, the team's distribution) with a note in the thread saying why.
- Menus (the channel's `bot_menu` setting: a greeting and up to 10 buttons "menu:<n>", n
  from 1): the first customer message of a new conversation the bot holds gets the menu
  instead of the hand-off a low score would bring. A first message that already asks for a
  person is handed over, and one the knowledge base answers above the threshold gets that
  answer only: the customer asked a clear question, and a menu on top of the article's own
  "did this help?" buttons would leave two sets of buttons to choose from (its "no" still
  reaches a person). A pressed menu button does its item's action: "article" answers with
  the article as above, "handoff" hands to people (to the item's team if it names one) with
  the note "customer chose: <title>", "text" sends the scripted text.
- Never an answer to an automated message (auto-reply, bounce: Message.automated).

Events for the reports: bot.answered {article_id}, bot.handoff {bot, reason},
bot.resolved, bot.feedback {article_id, helpful}; each also carries conversation_id.
"""
from __future__ import annotations

import logging
import re
from typing import Any

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from app.domain import business_hours, kb
from app.domain.search import WORD, fold
from app.infra.events import record_event
from app.infra.models import (
    Channel,
    Conversation,
    ConversationActivity,
    Event,
    KbArticle,
    Message,
    Team,
    utcnow,
)
from app.infra.schemas import message_schema
from app.infra.state import config
from app.usecases import distribution
from app.usecases.distribution import add_activity, conversation_changed

log = logging.getLogger(__name__)

BOT = "answer_bot"
MAX_ANSWERS = 2            # a third question the bot could not settle goes to people
BUTTON = re.compile(r"^kb:(\d+):(yes|no)$")
MENU_BUTTON = re.compile(r"^menu:(\d+)$")
# a customer asking for a person (word stems, folded): "оператор", "человек", "живой",
# "менеджер", "konsultant", "człowiek", "agent", "human", "person"
PERSON_WORDS = ("оператор", "человек", "живого", "живой", "менеджер", "сотрудник",
                "консультант", "konsultant", "człowiek", "czlowiek", "pracownik", "agent",
                "human", "person", "operator")

# what the bot says, in the customer's language
SAY = {
    "ru": {"more": "Подробнее: {url}", "helped": "Это помогло?", "yes": "Да, спасибо",
           "no": "Нет, нужен человек", "glad": "Рады помочь! Если будут вопросы — пишите.",
           "handoff": "Передаю ваш вопрос оператору — вам ответят здесь же."},
    "pl": {"more": "Więcej: {url}", "helped": "Czy to pomogło?", "yes": "Tak, dziękuję",
           "no": "Nie, z konsultantem", "glad": "Cieszymy się, że pomogliśmy!",
           "handoff": "Przekazuję pytanie konsultantowi — odpowie tutaj."},
    "en": {"more": "More: {url}", "helped": "Did this help?", "yes": "Yes, thanks",
           "no": "No, I need a person", "glad": "Glad we could help!",
           "handoff": "I am passing your question to a person — they will answer here."},
}
# why the bot handed over, as the note in the thread says it (agents read English notes from
# rules too; the reason key is what the reports count)
REASONS = {
    "not_helpful": "the customer said the answer did not help",
    "asked_for_person": "the customer asked for a person",
    "low_score": "no knowledge base article answers the question well enough",
    "repeated": "the customer asked again after the bot's answers",
    "missing_article": "the article the customer answered about no longer exists",
    "menu_choice": "the customer chose a person in the menu",
    "missing_menu_item": "the menu item the customer chose no longer exists",
}


# --- the hook the rules engine calls ------------------------------------------------------

def on_event(session: Session, event: Event) -> None:
    payload = event.payload if isinstance(event.payload, dict) else {}
    if event.type == "conversation.created":
        conversation = session.get(Conversation, payload.get("id"))
        if conversation is not None and _may_hold(session, conversation):
            _hold(session, conversation)
    elif event.type == "message.created" and payload.get("direction") == "in":
        conversation = session.get(Conversation, payload.get("conversation_id"))
        if conversation is None:
            return
        hold = conversation.handled_by is None and _may_hold(session, conversation) \
            and not _handed_off_before(session, conversation)
        if not hold and conversation.handled_by != BOT:
            return   # nothing for the bot: its message is not even loaded
        message = session.get(Message, payload.get("id"))
        if message is None:
            return
        if hold:
            _hold(session, conversation)
        if conversation.handled_by == BOT:
            on_customer_message(session, conversation, message)


def holds(conversation: Conversation) -> bool:
    return conversation.handled_by is not None


# --- holding a conversation ---------------------------------------------------------------

def mode(channel: Channel | None) -> str:
    return str((channel.settings or {}).get("answer_bot") or "off") if channel else "off"


def _may_hold(session: Session, conversation: Conversation) -> bool:
    """A new or untaken open conversation, on a channel whose answer bot is on now, with
    published articles to answer from."""
    if conversation.status != "open" or conversation.assignee_id is not None \
            or conversation.handled_by is not None or conversation.waiting_since is not None:
        return False
    channel = session.get(Channel, conversation.channel_id)
    setting = mode(channel)
    if setting == "off" or channel is None or not channel.active:
        return False
    if setting == "after_hours":
        team = distribution.team_for(session, conversation)
        if business_hours.is_open(team.business_hours if team else None, utcnow()):
            return False
    if _agent_replied(session, conversation):
        return False
    return session.scalar(select(KbArticle.id).where(KbArticle.published.is_(True)).limit(1)) \
        is not None


def _agent_replied(session: Session, conversation: Conversation) -> bool:
    return session.scalar(select(Message.id).where(
        Message.conversation_id == conversation.id, Message.direction == "out",
        Message.author_id.is_not(None)).limit(1)) is not None


def _handed_off_before(session: Session, conversation: Conversation) -> bool:
    return session.scalar(select(exists().where(
        ConversationActivity.conversation_id == conversation.id,
        ConversationActivity.kind == "bot_handoff"))) or False


def _hold(session: Session, conversation: Conversation) -> None:
    conversation.handled_by = BOT
    add_activity(session, conversation, "bot", "the answer bot took the conversation "
                 "(outside business hours)" if mode(session.get(Channel, conversation.channel_id))
                 == "after_hours" else "the answer bot took the conversation")
    conversation_changed(session, conversation)


# --- a customer message in a conversation the bot holds ----------------------------------

def on_customer_message(session: Session, conversation: Conversation, message: Message) -> None:
    if message.automated:
        # an auto-reply or a bounce: never answered (a loop between two robots otherwise)
        add_activity(session, conversation, "bot", "the answer bot ignored an automated "
                     "message (auto-reply or bounce)")
        return
    button = str((message.meta or {}).get("button_id") or "")
    pressed = BUTTON.match(button)
    if pressed:
        _feedback(session, conversation, message, int(pressed.group(1)),
                  pressed.group(2) == "yes")
        return
    chosen = MENU_BUTTON.match(button)
    if chosen:
        _menu_choice(session, conversation, message, int(chosen.group(1)))
        return
    if button:
        return      # someone else's button (csat:...): theirs to handle
    language = _language(session, conversation, message.text or "")
    if asks_for_person(message.text or ""):
        handoff(session, conversation, "asked_for_person", language)
        return
    answered = _answers_given(session, conversation)
    if answered >= MAX_ANSWERS:
        handoff(session, conversation, "repeated", language)
        return
    hits = kb.search(session, message.text or "", language, limit=1)
    best = hits[0] if hits else None
    if (best is None or best.confidence < kb.ANSWER_THRESHOLD) \
            and _offer_menu(session, conversation, message):
        return      # a new conversation's vague first message: the menu, not a hand-off
    if best is None or best.confidence < kb.ANSWER_THRESHOLD:
        handoff(session, conversation, "low_score", language,
                details={"confidence": best.confidence if best else 0.0,
                         "article_id": best.article.id if best else None})
        return
    _answer(session, conversation, best)


def asks_for_person(text: str) -> bool:
    words = [fold(w) for w in WORD.findall(text or "")]
    return any(w.startswith(p) for w in words for p in (fold(p) for p in PERSON_WORDS))


def _language(session: Session, conversation: Conversation, text: str) -> str:
    """The language of the customer's words, else of their earlier messages, else English."""
    found = kb.detect_language(text)
    if found:
        return found
    for earlier in session.scalars(select(Message.text).where(
            Message.conversation_id == conversation.id, Message.direction == "in")
            .order_by(Message.id.desc()).limit(5)):
        found = kb.detect_language(earlier or "")
        if found:
            return found
    return "en"


def _answers_given(session: Session, conversation: Conversation) -> int:
    """How many articles the bot sent in this conversation since the customer last pressed
    one of its buttons (a conversation holds a handful of messages: read in Python)."""
    metas = session.scalars(select(Message.meta).where(
        Message.conversation_id == conversation.id, Message.direction.in_(("in", "out")),
        Message.author_id.is_(None)).order_by(Message.id))
    count = 0
    for meta in metas:
        meta = meta or {}
        if BUTTON.match(str(meta.get("button_id") or "")):
            count = 0
        elif meta.get("kb_article_id"):
            count += 1
    return count


def help_url(article: KbArticle) -> str:
    base = str(config["server"].get("public_url") or "").rstrip("/")
    return f"{base}{kb.help_path(article)}"


def _say(session: Session, conversation: Conversation, text: str,
         meta: dict[str, Any] | None = None) -> Message | None:
    """A reply of the bot's through the durable outbox (marked as the bot's)."""
    from app.usecases.outbox import ReplyError, enqueue_reply

    unread = conversation.unread_count
    try:
        message = enqueue_reply(session, conversation, None, text, automated=True,
                                meta={"bot": BOT, **(meta or {})})
    except ReplyError as exc:
        add_activity(session, conversation, "bot", f"the answer bot could not reply: {exc}")
        return None
    conversation.unread_count = unread     # the bot read nothing for the agents
    return message


# --- the menu ------------------------------------------------------------------------------

def menu(channel: Channel | None) -> dict[str, Any] | None:
    found = (channel.settings or {}).get("bot_menu") if channel else None
    return found if isinstance(found, dict) and found.get("items") else None


def _offer_menu(session: Session, conversation: Conversation, message: Message) -> bool:
    """The channel's menu, once, on the first customer message of the conversation."""
    items = menu(session.get(Channel, conversation.channel_id))
    if items is None:
        return False
    earlier = session.scalar(select(Message.id).where(
        Message.conversation_id == conversation.id, Message.id != message.id,
        Message.direction == "in", Message.id < message.id).limit(1))
    if earlier is not None:
        return False
    buttons = [{"id": f"menu:{n}", "title": item["title"]}
               for n, item in enumerate(items["items"], start=1)]
    sent = _say(session, conversation, items["greeting"], {"buttons": buttons, "bot_menu": True})
    if sent is None:
        return False
    add_activity(session, conversation, "bot", "the answer bot offered the channel's menu")
    return True


def _menu_choice(session: Session, conversation: Conversation, message: Message,
                 n: int) -> None:
    items = (menu(session.get(Channel, conversation.channel_id)) or {}).get("items") or []
    language = _language(session, conversation, "")
    if not 1 <= n <= len(items):
        handoff(session, conversation, "missing_menu_item", language, details={"item": n})
        return
    item = items[n - 1]
    title = item["title"]
    if item["action"] == "article":
        article = session.get(KbArticle, item.get("article_id"))
        if article is None or not article.published:
            handoff(session, conversation, "missing_article", language,
                    details={"article_id": item.get("article_id")})
            return
        _answer(session, conversation, kb.Hit(article=article, score=1.0, confidence=1.0),
                chosen=title)
    elif item["action"] == "handoff":
        team_id = item.get("team_id")
        if team_id is not None and session.get(Team, team_id) is not None:
            conversation.team_id = team_id
        handoff(session, conversation, "menu_choice", language,
                details={"item": n, "title": title}, why=f"customer chose: {title}")
    else:
        if _say(session, conversation, item["text"], {"bot_menu_item": n}) is None:
            handoff(session, conversation, "low_score", language)
            return
        add_activity(session, conversation, "bot",
                     f"the answer bot answered the menu choice “{title}” with its text",
                     details={"item": n})


def _answer(session: Session, conversation: Conversation, hit: kb.Hit,
            chosen: str | None = None) -> None:
    article = hit.article
    say = SAY.get(article.language, SAY["en"])
    text = "\n\n".join([kb.summary(article), say["more"].format(url=help_url(article)),
                        say["helped"]])
    buttons = [{"id": f"kb:{article.id}:yes", "title": say["yes"]},
               {"id": f"kb:{article.id}:no", "title": say["no"]}]
    message = _say(session, conversation, text, {"buttons": buttons,
                                                 "kb_article_id": article.id})
    if message is None:
        handoff(session, conversation, "low_score", article.language)
        return
    _event(session, conversation, "bot.answered", article_id=article.id,
           confidence=hit.confidence)
    add_activity(session, conversation, "bot",
                 f"the answer bot answered the menu choice “{chosen}” with the article "
                 f"“{article.title}”" if chosen else
                 f"the answer bot answered with the article “{article.title}” "
                 f"(confidence {hit.confidence:.2f})",
                 details={"article_id": article.id, "confidence": hit.confidence})


def _feedback(session: Session, conversation: Conversation, message: Message,
              article_id: int, helpful: bool) -> None:
    article = session.get(KbArticle, article_id)
    _event(session, conversation, "bot.feedback", article_id=article_id, helpful=helpful)
    language = article.language if article else _language(session, conversation, "")
    if not helpful:
        handoff(session, conversation, "not_helpful", language,
                details={"article_id": article_id})
        return
    if article is None:
        handoff(session, conversation, "missing_article", language,
                details={"article_id": article_id})
        return
    _say(session, conversation, SAY.get(language, SAY["en"])["glad"])
    conversation.status = "resolved"
    conversation.resolved_at = utcnow()
    conversation.waiting_since = None
    _event(session, conversation, "bot.resolved", article_id=article_id)
    add_activity(session, conversation, "bot",
                 f"resolved by the answer bot: the article “{article.title}” helped",
                 details={"article_id": article_id})
    conversation_changed(session, conversation)


def handoff(session: Session, conversation: Conversation, reason: str, language: str = "en",
            details: dict[str, Any] | None = None, why: str | None = None,
            tell_customer: bool = True) -> None:
    """To people: out of the bot's hands, into the team's distribution, with a note in the
    thread saying why (and a word to the customer, unless their channel is gone)."""
    why = why or REASONS.get(reason, reason)
    conversation.handled_by = None
    if conversation.status != "open":
        conversation.status = "open"
        conversation.resolved_at = None
    if tell_customer:
        _say(session, conversation, SAY.get(language, SAY["en"])["handoff"])
    note = Message(conversation_id=conversation.id, customer_id=conversation.customer_id,
                   channel_id=None, direction="note", author_id=None,
                   text=f"Answer bot: handed to people — {why}.", status="received",
                   automated=True, created_at=utcnow(), meta={"bot": BOT, "reason": reason})
    session.add(note)
    session.flush()
    record_event(session, "message.created", message_schema.dump(note), conversation.channel_id)
    _event(session, conversation, "bot.handoff", bot=BOT, reason=reason, **(details or {}))
    add_activity(session, conversation, "bot_handoff", f"the answer bot handed the "
                 f"conversation to people: {why}", details={"reason": reason, **(details or {})})
    team = distribution.team_for(session, conversation)
    if team is None:
        conversation.waiting_since = conversation.waiting_since or utcnow()
        conversation_changed(session, conversation)
        return
    agent_id = distribution.distribute(session, conversation, team,
                                       reason=f"handed over by the answer bot: {why}")
    if agent_id is None:
        conversation_changed(session, conversation)


def _event(session: Session, conversation: Conversation, type_: str, **payload: Any) -> None:
    record_event(session, type_, {"conversation_id": conversation.id,
                                  "channel_id": conversation.channel_id, **payload},
                 conversation.channel_id)
