"""CSAT, the pure part: which replies answer the question, the button ids, the settings'
checks."""
from __future__ import annotations

import pytest

from app.domain import csat
from app.domain.audit import FieldError


@pytest.mark.parametrize("text, expected", [
    ("5", (5, "")), ("  2 ", (2, "")), ("5 — всё отлично", (5, "всё отлично")),
    ("4/5", (4, "")), ("3: slow", (3, "slow")), ("1.", (1, "")),
    ("5 из 5 спасибо", (5, "спасибо")), ("4 z 5", (4, "")), ("⭐ 5", (5, "")),
    ("★ 4", (4, "")), ("⭐⭐⭐", (3, "")),
])
def test_replies_that_answer(text, expected):
    assert csat.parse_reply(text) == expected


@pytest.mark.parametrize("text", ["12", "3.5", "0", "6", "hello", "", None, "Спасибо!",
                                  "2024 год", "5 5"])
def test_replies_that_do_not(text):
    assert csat.parse_reply(text) is None


def test_buttons_and_their_ids():
    buttons = csat.buttons(42)
    assert [b["id"] for b in buttons] == [f"csat:42:{n}" for n in range(1, 6)]
    assert all(len(b["title"]) <= 20 for b in buttons)
    assert csat.parse_button("csat:42:5") == (42, 5)
    for bad in ("csat:42:6", "kb:1:yes", "csat:x:1", None, "csat:42:5:1"):
        assert csat.parse_button(bad) is None


def test_questions_default_per_language():
    assert csat.question({}, "ru") == csat.QUESTIONS["ru"]
    assert csat.question({"pl": "  Jak było?  "}, "pl") == "Jak było?"
    assert csat.question({"pl": ""}, "pl") == csat.QUESTIONS["pl"]
    assert csat.question({}, "de") == csat.QUESTIONS["en"]


def test_settings_checks_name_the_field():
    assert csat.check_settings({"enabled": True, "throttle_days": 7,
                                "questions": {"ru": " Как всё прошло? "}}) == {
        "enabled": True, "throttle_days": 7, "questions": {"ru": "Как всё прошло?"}}
    for patch, field in (({"throttle_days": -1}, "throttle_days"),
                         ({"throttle_days": True}, "throttle_days"),
                         ({"enabled": "yes"}, "enabled"), ({"questions": []}, "questions"),
                         ({"questions": {"de": "x"}}, "questions.de"),
                         ({"questions": {"ru": "x" * 1001}}, "questions.ru"),
                         ({"colour": 1}, "colour")):
        with pytest.raises(FieldError) as caught:
            csat.check_settings(patch)
        assert caught.value.field == field
