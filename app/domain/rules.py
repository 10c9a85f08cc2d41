"""Automation rules, the pure part: what a rule looks like, text normalization, language
detection and condition checks. No database here: app/usecases/automation.py gathers the
facts (a `Facts`) and runs the actions.

A rule: WHEN `event` (one of EVENTS), IF every condition holds, THEN each action in order.
    conditions: [{"type": "language", "values": ["pl"]},
                 {"type": "text_contains", "words": ["zamówienie", "заказ"]},
                 {"type": "business_hours", "value": "closed"}, ...]   ("negate": true inverts)
    actions:    [{"type": "assign_team", "team_id": 2}, {"type": "distribute"},
                 {"type": "auto_reply", "canned_reply_id": 3}, {"type": "add_label", "label": "pl"}]
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any, Callable

EVENTS = ("conversation_created", "customer_message", "conversation_reopened", "agent_reply",
          "conversation_idle", "status_changed", "sla_warning")
CONDITIONS = ("channel", "channel_kind", "team", "language", "text_contains", "customer_tag",
              "business_hours", "priority", "status", "utm_source", "open_deal",
              "recent_order")
ACTIONS = ("assign_team", "distribute", "assign_agent", "add_label", "set_priority",
           "auto_reply", "add_note", "resolve", "snooze", "webhook")
PRIORITIES = ("low", "normal", "high", "urgent")
LANGUAGES = ("ru", "pl", "en")
# a rule's action starts events that may fire rules again: past this many hops they do not
MAX_DEPTH = 3


# --- text ---------------------------------------------------------------------------------

_FOLD = str.maketrans({"ё": "е", "ł": "l", "đ": "d", "ø": "o", "ß": "ss", "æ": "ae", "œ": "oe"})
_WORD = re.compile(r"\w+", re.UNICODE)


def normalize(text: str) -> str:
    """Case-folded, ё → е, diacritics removed (zamówienie → zamowienie, Łódź → lodz); Cyrillic
    letters otherwise kept (й stays й: it is a letter of its own, not и with a mark)."""
    text = (text or "").casefold().translate(_FOLD)
    out = []
    for char in unicodedata.normalize("NFD", text):
        if unicodedata.combining(char):
            # й is и + breve in NFD: keep Cyrillic letters whole
            if out and "\u0400" <= out[-1] <= "\u04ff":
                out[-1] = unicodedata.normalize("NFC", out[-1] + char)
            continue
        out.append(char)
    return "".join(out).translate(_FOLD)


def contains_words(text: str, words: list[str]) -> bool:
    """Any of `words` (or phrases) at a word start in the text, after normalization: "заказ"
    finds "Заказы", "zamowienie" finds "ZAMÓWIENIE"."""
    haystack = normalize(text)
    for word in words:
        needle = normalize(word).strip()
        if needle and re.search(r"(?<!\w)" + re.escape(needle), haystack):
            return True
    return False


_POLISH_LETTERS = set("ąćęłńóśźż")
_POLISH_WORDS = {"nie", "jest", "się", "dzień", "dobry", "dziękuję", "proszę", "zamówienie",
                 "czy", "mam", "jak", "gdzie", "kiedy", "chciałbym", "chciałabym", "witam",
                 "tak", "też", "już", "moje", "mój", "przesyłka", "cześć", "pan", "pani"}
_ENGLISH_WORDS = {"the", "and", "is", "my", "you", "hello", "hi", "order", "please", "where",
                  "what", "when", "thanks", "thank", "can", "have", "not", "it", "to", "of"}


def detect_language(text: str) -> str | None:
    """ru, pl or en from the letters and common words; None when there is nothing to go on."""
    letters = [c for c in (text or "").lower() if c.isalpha()]
    if not letters:
        return None
    cyrillic = sum(1 for c in letters if "\u0400" <= c <= "\u04ff")
    if cyrillic * 2 >= len(letters):
        return "ru"
    words = set(_WORD.findall(text.lower()))
    polish = len(words & _POLISH_WORDS) + 2 * sum(1 for c in letters if c in _POLISH_LETTERS)
    english = len(words & _ENGLISH_WORDS)
    if polish > english:
        return "pl"
    if english or all(c.isascii() for c in letters):
        return "en"
    return None


# --- facts and conditions ----------------------------------------------------------------

@dataclass
class Facts:
    """What the conditions look at, gathered for one event and one conversation."""

    channel_id: int | None = None
    channel_kind: str | None = None
    team_id: int | None = None
    text: str = ""
    customer_tags: list[str] = field(default_factory=list)
    priority: str = "normal"
    status: str = "open"
    utm_source: str | None = None
    has_open_deal: bool = False
    days_since_order: float | None = None   # None: never ordered
    # team id (or None: the conversation's team) -> open now?
    hours_open: Callable[[int | None], bool] = lambda _team: True


def _in(value: Any, values: list[Any]) -> bool:
    return value in values or str(value) in {str(v) for v in values}


def condition_holds(condition: dict[str, Any], facts: Facts) -> bool:
    kind = condition.get("type")
    values = condition.get("values") or []
    if kind == "channel":
        result = _in(facts.channel_id, values)
    elif kind == "channel_kind":
        result = facts.channel_kind in values
    elif kind == "team":
        result = _in(facts.team_id, values)
    elif kind == "language":
        result = detect_language(facts.text) in values
    elif kind == "text_contains":
        result = contains_words(facts.text, condition.get("words") or [])
    elif kind == "customer_tag":
        tags = {normalize(t) for t in facts.customer_tags}
        result = any(normalize(v) in tags for v in values)
    elif kind == "business_hours":
        is_open = facts.hours_open(condition.get("team_id"))
        result = is_open if condition.get("value", "open") == "open" else not is_open
    elif kind == "priority":
        result = facts.priority in values
    elif kind == "status":
        result = facts.status in values
    elif kind == "open_deal":
        result = facts.has_open_deal
    elif kind == "recent_order":
        result = facts.days_since_order is not None and \
            facts.days_since_order <= float(condition.get("days") or 30)
    elif kind == "utm_source":
        result = facts.utm_source is not None and normalize(facts.utm_source) in {
            normalize(str(v)) for v in values}
    else:
        raise ValueError(f"unknown condition {kind!r}")
    return not result if condition.get("negate") else result


def conditions_hold(conditions: list[dict[str, Any]], facts: Facts) -> bool:
    return all(condition_holds(c, facts) for c in conditions)


# --- validation (the API's 422s) ---------------------------------------------------------

def validate_rule(event: str, options: dict, conditions: list, actions: list) -> dict[str, str]:
    """Field -> reason for whatever is wrong with a rule (empty: fine)."""
    errors: dict[str, str] = {}
    if event not in EVENTS:
        errors["event"] = f"one of {', '.join(EVENTS)}"
    if event == "conversation_idle":
        minutes = (options or {}).get("minutes")
        if not isinstance(minutes, int) or minutes < 1:
            errors["options"] = "conversation_idle needs minutes (a whole number ≥ 1)"
    if not isinstance(conditions, list) or not all(isinstance(c, dict) for c in conditions):
        errors["conditions"] = "a list of objects"
    else:
        for n, c in enumerate(conditions):
            if c.get("type") not in CONDITIONS:
                errors[f"conditions.{n}.type"] = f"one of {', '.join(CONDITIONS)}"
            elif c["type"] == "text_contains" and not c.get("words"):
                errors[f"conditions.{n}.words"] = "at least one word"
            elif c["type"] == "language" and not set(c.get("values") or []) <= set(LANGUAGES) \
                    or c["type"] == "language" and not c.get("values"):
                errors[f"conditions.{n}.values"] = f"some of {', '.join(LANGUAGES)}"
            elif c["type"] == "business_hours" and c.get("value", "open") not in ("open",
                                                                                  "closed"):
                errors[f"conditions.{n}.value"] = "open or closed"
            elif c["type"] == "recent_order" and not (isinstance(c.get("days"), int)
                                                       and c["days"] > 0):
                errors[f"conditions.{n}.days"] = "a whole number of days ≥ 1"
            elif c["type"] not in ("text_contains", "business_hours", "open_deal",
                                   "recent_order") \
                    and not isinstance(c.get("values"), list):
                errors[f"conditions.{n}.values"] = "a list"
    if not isinstance(actions, list) or not actions \
            or not all(isinstance(a, dict) for a in actions):
        errors["actions"] = "a non-empty list of objects"
    else:
        for n, a in enumerate(actions):
            kind = a.get("type")
            if kind not in ACTIONS:
                errors[f"actions.{n}.type"] = f"one of {', '.join(ACTIONS)}"
            elif kind == "assign_team" and not isinstance(a.get("team_id"), int):
                errors[f"actions.{n}.team_id"] = "required"
            elif kind == "assign_agent" and not isinstance(a.get("agent_id"), int):
                errors[f"actions.{n}.agent_id"] = "required"
            elif kind == "add_label" and not str(a.get("label") or "").strip():
                errors[f"actions.{n}.label"] = "required"
            elif kind == "set_priority" and a.get("priority") not in PRIORITIES:
                errors[f"actions.{n}.priority"] = f"one of {', '.join(PRIORITIES)}"
            elif kind == "auto_reply" and not (isinstance(a.get("canned_reply_id"), int)
                                               or str(a.get("text") or "").strip()):
                errors[f"actions.{n}.canned_reply_id"] = "a canned reply or a text"
            elif kind == "add_note" and not str(a.get("text") or "").strip():
                errors[f"actions.{n}.text"] = "required"
            elif kind == "webhook" and not isinstance(a.get("endpoint_id"), int):
                errors[f"actions.{n}.endpoint_id"] = "required"
            elif kind == "snooze" and not (isinstance(a.get("minutes"), int)
                                           and a["minutes"] > 0):
                errors[f"actions.{n}.minutes"] = "a whole number ≥ 1"
    return errors


# --- canned reply variables --------------------------------------------------------------

def fill_variables(text: str, customer_name: str, agent_name: str | None) -> str:
    """{{customer.first_name}}, {{customer.name}}, {{agent.name}}, {{agent.first_name}}, as
    the composer fills them (an automatic reply has no agent: the agent variables go empty)."""
    first = (customer_name or "").split()[0] if (customer_name or "").split() else ""
    agent = agent_name or ""
    values = {"customer.first_name": first, "customer.name": customer_name or "",
              "agent.name": agent, "agent.first_name": agent.split()[0] if agent.split() else ""}
    filled = re.sub(r"\{\{\s*([a-z_.]+)\s*\}\}", lambda m: values.get(m.group(1), m.group(0)),
                    text)
    return re.sub(r"[ \t]+([,!.?])", r"\1", filled).strip()
