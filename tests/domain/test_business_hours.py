"""Business hours and the SLA clock (app.domain.business_hours), text rules
(app.domain.rules): pure functions, across time zones and clock changes."""
from __future__ import annotations

from datetime import datetime, timezone
from zoneinfo import ZoneInfo

from app.domain import business_hours as bh
from app.domain import rules

WARSAW = ZoneInfo("Europe/Warsaw")
WEEKDAYS = {day: [["09:00", "17:00"]] for day in ("mon", "tue", "wed", "thu", "fri")}
HOURS = {"timezone": "Europe/Warsaw", "days": WEEKDAYS, "holidays": ["2026-04-06"]}


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)


def local(*args, zone=WARSAW) -> datetime:
    return datetime(*args, tzinfo=zone)


def test_open_and_closed_follow_the_teams_time_zone():
    # 08:30 UTC in winter is 09:30 in Warsaw (UTC+1): open; 16:30 UTC is 17:30: closed
    assert bh.is_open(HOURS, utc(2026, 1, 14, 8, 30))
    assert not bh.is_open(HOURS, utc(2026, 1, 14, 16, 30))
    # in summer (UTC+2) 07:30 UTC is already 09:30 local
    assert bh.is_open(HOURS, utc(2026, 7, 15, 7, 30))
    assert not bh.is_open(HOURS, utc(2026, 7, 15, 15, 30))
    assert not bh.is_open(HOURS, utc(2026, 1, 17, 10, 0))       # a Saturday
    assert not bh.is_open(HOURS, local(2026, 4, 6, 11, 0))      # Easter Monday, a holiday
    assert bh.is_open(None, utc(2026, 1, 17, 3, 0))             # no schedule: always open


def test_due_time_across_the_spring_clock_change():
    # Friday 27 March 2026 16:00 in Warsaw (15:00 UTC, UTC+1) + 2 business hours: one hour on
    # Friday, the weekend (clocks go forward on Sunday the 29th), one hour on Monday: 10:00
    # local, which is 08:00 UTC (UTC+2)
    start = local(2026, 3, 27, 16, 0)
    due = bh.add_business_minutes(HOURS, start, 120)
    assert due == local(2026, 3, 30, 10, 0)
    assert due.astimezone(timezone.utc) == utc(2026, 3, 30, 8, 0)
    assert bh.business_minutes_between(HOURS, start, due) == 120


def test_due_time_across_the_autumn_clock_change_and_a_holiday():
    # a day open around the clock gets 25 hours when clocks go back (25 October 2026)
    always = {"timezone": "Europe/Warsaw", "days": {"sun": [["00:00", "24:00"]]}}
    assert bh.business_minutes_between(always, local(2026, 10, 25, 0, 0),
                                       local(2026, 10, 26, 0, 0)) == 25 * 60
    # so 24 open hours from midnight end at 23:00 local (22:00 UTC), not at the next midnight
    assert bh.add_business_minutes(always, local(2026, 10, 25, 0, 0), 24 * 60) == \
        local(2026, 10, 25, 23, 0) == utc(2026, 10, 25, 22, 0)
    # Thursday 2 April 16:30 + 8 h: 30 min Thu, 8 h Fri is more than the rest: Fri 16:30
    assert bh.add_business_minutes(HOURS, local(2026, 4, 2, 16, 30), 480) == \
        local(2026, 4, 3, 16, 30)
    # Friday 3 April 16:00 + 2 h skips the weekend and Easter Monday (a holiday): Tue 10:00
    assert bh.add_business_minutes(HOURS, local(2026, 4, 3, 16, 0), 120) == \
        local(2026, 4, 7, 10, 0)


def test_other_time_zones_and_a_schedule_that_never_opens():
    new_york = {"timezone": "America/New_York", "days": {"mon": [["09:00", "17:00"]]}}
    # US clocks change on 8 March 2026, Europe's three weeks later: Monday 9 March 09:00 in
    # New York is 13:00 UTC (UTC-4), the Monday before it was 14:00 UTC (UTC-5)
    assert bh.add_business_minutes(new_york, utc(2026, 3, 7, 0, 0), 1) == utc(2026, 3, 9, 13, 1)
    assert bh.add_business_minutes(new_york, utc(2026, 2, 28, 0, 0), 1) == utc(2026, 3, 2, 14, 1)
    assert bh.add_business_minutes({"timezone": "UTC", "days": {}}, utc(2026, 1, 1), 5) is None


def test_schedule_validation_names_the_field():
    assert bh.validate(HOURS) == {}
    assert bh.validate(None) == {}
    errors = bh.validate({"timezone": "Mars/Olympus", "days": {"mon": [["18:00", "09:00"]],
                                                               "funday": []},
                          "holidays": ["tomorrow"]})
    assert set(errors) == {"business_hours.timezone", "business_hours.days",
                           "business_hours.holidays"}


def test_text_normalization_cyrillic_and_polish():
    assert rules.normalize("ЁЛКА Зелёная") == "елка зеленая"
    assert rules.normalize("ZAMÓWIENIE Łódź żółć") == "zamowienie lodz zolc"
    assert rules.normalize("Йогурт") == "йогурт"          # й is not и
    assert rules.contains_words("Где мой ЗАКАЗ?", ["заказ"])
    assert rules.contains_words("Привет, ёлки", ["елки"])
    assert rules.contains_words("Chcę zwrócić zamowienie", ["ZAMÓWIENIE"])
    assert not rules.contains_words("перезаказ", ["заказ"])   # at a word start only
    assert not rules.contains_words("", ["заказ"])


def test_language_detection():
    assert rules.detect_language("Здравствуйте, где мой заказ?") == "ru"
    assert rules.detect_language("Dzień dobry, gdzie jest moje zamówienie?") == "pl"
    assert rules.detect_language("czy mam zwrot") == "pl"
    assert rules.detect_language("Hello, where is my order?") == "en"
    assert rules.detect_language("123 !!!") is None


def test_canned_variables_are_filled():
    assert rules.fill_variables("Hello {{customer.first_name}}!", "Anna Kowalska", None) == \
        "Hello Anna!"
    assert rules.fill_variables("Hi {{customer.first_name}}, {{agent.name}}", "", None) == "Hi,"
