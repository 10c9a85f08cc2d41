"""Feedback after a conversation (CSAT), the pure part: the settings and their checks, the
customer-facing texts in the customer's language, how an answer is read from a reply, and
the button ids ("csat:<conversation>:<1-5>", the namespace of DESIGN 3b)."""
from __future__ import annotations

import re
from typing import Any

from app.domain.audit import FieldError

LANGUAGES = ("ru", "pl", "en")
SCORES = (1, 2, 3, 4, 5)
THROTTLE_DAYS = 30
MAX_THROTTLE_DAYS = 3650
MAX_QUESTION = 1000
MAX_COMMENT = 2000

# The customer-facing texts; the admin may replace the question per language.
QUESTIONS = {
    "ru": "Спасибо, что обратились к нам! Оцените, пожалуйста, как мы вам помогли: "
          "от 1 (плохо) до 5 (отлично). Нажмите кнопку или ответьте цифрой.",
    "pl": "Dziękujemy za kontakt! Oceń, proszę, jak Ci pomogliśmy: od 1 (źle) do 5 "
          "(świetnie). Naciśnij przycisk lub odpowiedz cyfrą.",
    "en": "Thank you for contacting us! How did we do? Please rate our help from 1 (poor) "
          "to 5 (excellent): press a button or reply with a digit.",
}
EMAIL_SUBJECT = {"ru": "Как мы вам помогли?", "pl": "Jak Ci pomogliśmy?",
                 "en": "How did we do?"}
EMAIL_CLICK = {"ru": "Нажмите на оценку:", "pl": "Kliknij ocenę:", "en": "Click a rating:"}
COMMENT_THANKS = {"ru": "Спасибо за оценку! Если хотите, напишите пару слов о том, что можно "
                        "улучшить.",
                  "pl": "Dziękujemy za ocenę! Jeśli chcesz, napisz kilka słów, co możemy "
                        "poprawić.",
                  "en": "Thank you for your rating! If you like, tell us in a few words what "
                        "we could do better."}

_LEADING_DIGIT = re.compile(r"^\s*(?:[⭐★]\ufe0f?\s*)?([1-5])(?![0-9])(?:\s*(?:/\s*5|из\s*5|z\s*5|of\s*5))?"
                            r"\s*[-—–:.,!)]*\s*(.*)$", re.S | re.I)
_BUTTON = re.compile(r"^csat:(\d+):([1-5])$")


def question(settings_questions: dict[str, Any] | None, language: str) -> str:
    language = language if language in LANGUAGES else "en"
    custom = (settings_questions or {}).get(language)
    return custom.strip() if isinstance(custom, str) and custom.strip() else QUESTIONS[language]


def button_id(conversation_id: int, score: int) -> str:
    return f"csat:{conversation_id}:{score}"


def buttons(conversation_id: int) -> list[dict[str, str]]:
    return [{"id": button_id(conversation_id, n), "title": f"⭐ {n}"} for n in SCORES]


def parse_button(value: str | None) -> tuple[int, int] | None:
    """(conversation id, score) of a CSAT button id, else None."""
    match = _BUTTON.match(value or "")
    return (int(match.group(1)), int(match.group(2))) if match else None


def parse_reply(text: str | None) -> tuple[int, str] | None:
    """A reply that answers the question: a leading digit 1-5 ("5", "5 — всё отлично",
    "4/5", "3: slow", a button's title echoed "⭐ 5", or stars "⭐⭐⭐⭐"), and what follows
    it as the comment. Anything else (a number like "12" or "3.5", a sentence) is None."""
    stars = re.fullmatch(r"\s*((?:[⭐★]\ufe0f?\s*){1,5})\s*", text or "")
    if stars:   # "⭐⭐⭐⭐": four
        return len(re.findall("[⭐★]", stars.group(1))), ""
    match = _LEADING_DIGIT.match(text or "")
    if not match:
        return None
    rest = match.group(2).strip()
    if rest[:1].isdigit():
        return None
    return int(match.group(1)), rest[:MAX_COMMENT]


def check_settings(patch: dict[str, Any]) -> dict[str, Any]:
    """The fields of a settings change, checked: {enabled, questions, throttle_days}."""
    unknown = sorted(set(patch) - {"enabled", "questions", "throttle_days"})
    if unknown:
        raise FieldError(unknown[0], "unknown setting")
    clean: dict[str, Any] = {}
    if "enabled" in patch:
        if not isinstance(patch["enabled"], bool):
            raise FieldError("enabled", "true or false")
        clean["enabled"] = patch["enabled"]
    if "throttle_days" in patch:
        days = patch["throttle_days"]
        if isinstance(days, bool) or not isinstance(days, int) \
                or not 0 <= days <= MAX_THROTTLE_DAYS:
            raise FieldError("throttle_days", f"a whole number of days from 0 to "
                                              f"{MAX_THROTTLE_DAYS}")
        clean["throttle_days"] = days
    if "questions" in patch:
        questions = patch["questions"]
        if not isinstance(questions, dict):
            raise FieldError("questions", "an object of language -> text")
        out = {}
        for language, text in questions.items():
            if language not in LANGUAGES:
                raise FieldError(f"questions.{language}", "one of " + ", ".join(LANGUAGES))
            if text is None:
                text = ""
            if not isinstance(text, str) or len(text) > MAX_QUESTION:
                raise FieldError(f"questions.{language}",
                                 f"a text of at most {MAX_QUESTION} characters")
            out[language] = text.strip()
        clean["questions"] = out
    return clean
