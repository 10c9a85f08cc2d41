"""Business hours of a team and the SLA clock that runs only inside them. Pure functions on
a schedule:

    {"timezone": "Europe/Warsaw",
     "days": {"mon": [["09:00", "17:00"]], "tue": [["09:00", "13:00"], ["14:00", "18:00"]], ...},
     "holidays": ["2026-12-24", "2026-12-25"]}

No schedule (None or {}) means always open. Local times are read in the schedule's time zone
(zoneinfo), so a window 09:00–17:00 is eight hours on the day clocks change as on any other,
while its UTC instants move by the offset.
"""
from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HORIZON_DAYS = 800   # how far ahead a due time is looked for


def _parse_time(value: str) -> tuple[int, int]:
    hours, _, minutes = str(value).partition(":")
    h, m = int(hours), int(minutes or 0)
    if not (0 <= h <= 24 and 0 <= m < 60) or (h == 24 and m):
        raise ValueError(f"not a time of day: {value!r}")
    return h, m


def validate(hours: Any) -> dict[str, str]:
    """Field -> reason (empty: a usable schedule)."""
    if hours in (None, {}):
        return {}
    if not isinstance(hours, dict):
        return {"business_hours": "an object with timezone, days, holidays"}
    errors: dict[str, str] = {}
    try:
        ZoneInfo(str(hours.get("timezone") or "UTC"))
    except (ZoneInfoNotFoundError, ValueError):
        errors["business_hours.timezone"] = "an IANA time zone such as Europe/Warsaw"
    days = hours.get("days") or {}
    if not isinstance(days, dict) or set(days) - set(DAYS):
        errors["business_hours.days"] = f"keys among {', '.join(DAYS)}"
    else:
        for day, windows in days.items():
            try:
                for start, end in windows:
                    if _parse_time(start) >= _parse_time(end):
                        raise ValueError("start after end")
            except (TypeError, ValueError):
                errors[f"business_hours.days.{day}"] = 'a list of ["HH:MM", "HH:MM"], start before end'
    for holiday in hours.get("holidays") or []:
        try:
            date.fromisoformat(str(holiday))
        except ValueError:
            errors["business_hours.holidays"] = "dates as YYYY-MM-DD"
    return errors


def _zone(hours: dict) -> ZoneInfo:
    return ZoneInfo(str(hours.get("timezone") or "UTC"))


def _local(day: date, hm: tuple[int, int], zone: ZoneInfo) -> datetime:
    if hm == (24, 0):
        return datetime.combine(day + timedelta(days=1), time(0, 0), tzinfo=zone)
    return datetime.combine(day, time(*hm), tzinfo=zone)


def windows(hours: dict, day: date) -> list[tuple[datetime, datetime]]:
    """The open windows of one local day, as UTC instants."""
    if str(day) in {str(h) for h in hours.get("holidays") or []}:
        return []
    zone = _zone(hours)
    result = []
    for start, end in (hours.get("days") or {}).get(DAYS[day.weekday()], []):
        begin = _local(day, _parse_time(start), zone).astimezone(timezone.utc)
        finish = _local(day, _parse_time(end), zone).astimezone(timezone.utc)
        if finish > begin:
            result.append((begin, finish))
    return result


def always_open(hours: dict | None) -> bool:
    return not hours or not isinstance(hours, dict) or "days" not in hours


def is_open(hours: dict | None, at: datetime) -> bool:
    if always_open(hours):
        return True
    local_day = at.astimezone(_zone(hours)).date()
    # a window may run past midnight only to 24:00, so yesterday's cannot reach today
    return any(begin <= at < finish for begin, finish in windows(hours, local_day))


def add_business_minutes(hours: dict | None, start: datetime, minutes: float) -> datetime | None:
    """The instant `minutes` of open time after `start` (None: the schedule never opens)."""
    if always_open(hours):
        return start + timedelta(minutes=minutes)
    remaining = timedelta(minutes=minutes)
    day = start.astimezone(_zone(hours)).date()
    for offset in range(_HORIZON_DAYS):
        for begin, finish in windows(hours, day + timedelta(days=offset)):
            begin = max(begin, start)
            if finish <= begin:
                continue
            if remaining <= finish - begin:
                return begin + remaining
            remaining -= finish - begin
    return None


def business_minutes_between(hours: dict | None, start: datetime, end: datetime) -> float:
    """Open minutes in [start, end)."""
    if end <= start:
        return 0.0
    if always_open(hours):
        return (end - start).total_seconds() / 60
    total = timedelta()
    zone = _zone(hours)
    day, last = start.astimezone(zone).date(), end.astimezone(zone).date()
    while day <= last:
        for begin, finish in windows(hours, day):
            begin, finish = max(begin, start), min(finish, end)
            if finish > begin:
                total += finish - begin
        day += timedelta(days=1)
    return total.total_seconds() / 60
