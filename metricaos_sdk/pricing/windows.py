"""Time-of-day prices: daily windows, read in the provider's time zone, inside which other rates apply.

A dated rate row (:class:`~.rates.Period`) may carry windows. A call is priced at the first window that holds its
moment — converted from UTC to the row's zone — and at the row's own rates otherwise::

    09:00-12:00, 14:00-18:00 Mon-Fri in Asia/Shanghai   -> DeepSeek's peak rates
    every other moment                                  -> the row's rates (off-peak)

A window holds ``start <= t < end`` (start inclusive, end exclusive, to the second); one whose end is at or before
its start runs across midnight (``22:00-02:00``). ``days`` are weekdays of the *local* date of the moment (so a
Friday ``22:00-02:00`` window does not hold Saturday 01:00: write a Saturday ``00:00-02:00`` window for that).

genai-prices states the same thing as ``TimeOfDateConstraint(start_time, end_time)`` entries in UTC with no
weekdays; the table generator turns those into windows of this shape (see scripts/build_rates.py).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import date, datetime, time, timedelta, timezone, tzinfo
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

if TYPE_CHECKING:
    from .rates import Period

__all__ = [
    "DAY",
    "WEEKDAYS",
    "Window",
    "clock_text",
    "overlap",
    "parse_clock",
    "parse_days",
    "parse_zone",
    "select",
    "zone_text",
]

DAY = 86_400
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_UTC = timezone.utc
_OFFSET = re.compile(r"^(?:UTC|GMT)?([+-])(\d{1,2})(?::?(\d{2}))?$", re.IGNORECASE)
_CLOCK = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2}))?$")


class Window:
    """One daily window: ``[start, end)`` seconds after local midnight, on ``days`` (``None``: every day),
    priced at ``period`` (a row of its own, with its own price id ``<row id>~<label>``)."""

    __slots__ = ("days", "end", "label", "period", "start")

    def __init__(self, start: int, end: int, days: frozenset[int] | None, period: Period, label: str) -> None:
        self.start, self.end, self.days, self.period, self.label = start, end, days, period, label

    def holds(self, seconds: int, weekday: int) -> bool:
        """Whether a local moment (seconds after midnight, ``date.weekday()``) is inside this window."""
        if self.days is not None and weekday not in self.days:
            return False
        if self.start < self.end:
            return self.start <= seconds < self.end
        return seconds >= self.start or seconds < self.end  # across midnight

    def describe(self) -> str:
        """``"09:00-12:00"`` or ``"09:00-12:00 mon,tue,wed,thu,fri"``."""
        hours = f"{clock_text(self.start)}-{clock_text(self.end)}"
        if self.days is None:
            return hours
        return hours + " " + ",".join(WEEKDAYS[d] for d in sorted(self.days))


def select(period: Period, at: datetime | date | None) -> Period:
    """The row that prices a call at ``at`` (``None``: now; naive datetimes are UTC; a date is its UTC midnight):
    the first of ``period``'s windows holding that moment in the row's zone, else ``period`` itself."""
    if at is None:
        moment = datetime.now(_UTC)
    elif isinstance(at, datetime):
        moment = at if at.tzinfo is not None else at.replace(tzinfo=_UTC)
    else:
        moment = datetime(at.year, at.month, at.day, tzinfo=_UTC)
    local = moment.astimezone(period.zone or _UTC)
    seconds = local.hour * 3600 + local.minute * 60 + local.second
    weekday = local.weekday()
    for window in period.windows:
        if window.holds(seconds, weekday):
            return window.period
    return period


def parse_zone(text: str) -> tzinfo:
    """``"UTC"``, a fixed offset (``"+08:00"``, ``"UTC+8"``) or an IANA name (``"Asia/Shanghai"``, via zoneinfo).

    Raises ``ValueError`` for anything else (a name the system's time zone database does not have included)."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"not a time zone: {text!r}")
    name = text.strip()
    if name.upper() in ("UTC", "Z", "GMT"):
        return _UTC
    match = _OFFSET.match(name)
    if match:
        sign, hours, minutes = match.group(1), int(match.group(2)), int(match.group(3) or 0)
        if hours > 14 or minutes > 59:
            raise ValueError(f"not a UTC offset: {text!r}")
        delta = timedelta(hours=hours, minutes=minutes)
        return timezone(-delta if sign == "-" else delta)
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(f"not a time zone: {text!r}") from None


def zone_text(zone: tzinfo | None) -> str:
    """How a zone is written back: its IANA name, ``"UTC"`` or ``"UTC+08:00"``."""
    if zone is None or zone is _UTC:
        return "UTC"
    if isinstance(zone, ZoneInfo):
        return zone.key
    offset = zone.utcoffset(None) or timedelta(0)
    sign = "-" if offset < timedelta(0) else "+"
    minutes = abs(int(offset.total_seconds())) // 60
    return f"UTC{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def parse_clock(value: object, *, end: bool = False) -> int:
    """Seconds after midnight of ``"09:00"``, ``"09:00:30"`` or a ``datetime.time`` (TOML's ``09:00:00``);
    ``"24:00"`` only as an end. Raises ``ValueError``."""
    if isinstance(value, time):
        if value.tzinfo is not None or value.microsecond:
            raise ValueError(f"not a local time of day: {value!r}")
        return value.hour * 3600 + value.minute * 60 + value.second
    match = _CLOCK.match(value.strip()) if isinstance(value, str) else None
    if not match:
        raise ValueError(f"not a time of day: {value!r}")
    hours, minutes, seconds = int(match.group(1)), int(match.group(2)), int(match.group(3) or 0)
    if end and (hours, minutes, seconds) == (24, 0, 0):
        return DAY
    if hours > 23 or minutes > 59 or seconds > 59:
        raise ValueError(f"not a time of day: {value!r}")
    return hours * 3600 + minutes * 60 + seconds


def clock_text(seconds: int) -> str:
    """``"09:00"`` (``"09:00:30"`` when there are seconds; ``"24:00"`` for the end of the day)."""
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours:02d}:{minutes:02d}" + (f":{secs:02d}" if secs else "")


def _spans(start: int, end: int) -> list[tuple[int, int]]:
    return [(start, end)] if start < end else [(start, DAY), (0, end)]


def overlap(a: tuple[int, int, frozenset[int] | None], b: tuple[int, int, frozenset[int] | None]) -> bool:
    """Whether two windows ``(start, end, days)`` share a moment of some day."""
    all_days = frozenset(range(7))
    if not (a[2] or all_days) & (b[2] or all_days):
        return False
    return any(s1 < e2 and s2 < e1 for s1, e1 in _spans(a[0], a[1]) for s2, e2 in _spans(b[0], b[1]))


def parse_days(value: Iterable[object]) -> frozenset[int]:
    """``["mon", "fri"]`` (any case; three letters or the full name) -> ``{0, 4}``. Raises ``ValueError``."""
    days = set()
    for item in value:
        name = item.strip().lower() if isinstance(item, str) else ""
        if name in WEEKDAYS:
            days.add(WEEKDAYS.index(name))
        elif name in _NAMES:
            days.add(_NAMES.index(name))
        else:
            raise ValueError(f"not a weekday: {item!r}")
    if not days:
        raise ValueError("no weekday")
    return frozenset(days)


_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
