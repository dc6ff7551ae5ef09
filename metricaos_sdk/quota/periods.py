"""Allowance periods and rate windows, in UTC.

Calendar periods start at midnight, on the 1st, or on January 1st. Anchored periods start at the customer's
billing anchor and repeat every day, month or year from it; a monthly anchor on the 29th–31st falls on the
last day of shorter months (Jan 31 → Feb 28, or Feb 29 in a leap year → Mar 31), always counted from the
anchor itself, so the day never drifts. ``resets_at`` is the exclusive end of the period.
"""

from __future__ import annotations

import calendar
from datetime import datetime, timedelta, timezone
from typing import Literal

from ..errors import ConfigurationError

__all__ = ["PERIODS", "RATE_WINDOWS", "Period", "RateWindow", "period_bounds", "rate_window"]

Period = Literal["day", "month", "year"]
RateWindow = Literal["second", "minute", "hour"]
PERIODS: tuple[str, ...] = ("day", "month", "year")
RATE_WINDOWS: dict[str, int] = {"second": 1, "minute": 60, "hour": 3600}


def check_period(period: str) -> None:
    if period not in PERIODS:
        raise ConfigurationError(f"Unknown quota period {period!r}: use 'day', 'month' or 'year'.")


def _add_months(anchor: datetime, months: int) -> datetime:
    y, m = divmod(anchor.month - 1 + months, 12)
    year, month = anchor.year + y, m + 1
    return anchor.replace(year=year, month=month, day=min(anchor.day, calendar.monthrange(year, month)[1]))


def period_bounds(period: str, now: datetime, anchor: datetime | None = None) -> tuple[datetime, datetime]:
    """The UTC ``[start, end)`` of the period containing ``now``: calendar-aligned, or from ``anchor``."""
    now = now.astimezone(timezone.utc)
    if anchor is None:
        if period == "day":
            start = now.replace(hour=0, minute=0, second=0, microsecond=0)
            return start, start + timedelta(days=1)
        if period == "year":
            start = now.replace(month=1, day=1, hour=0, minute=0, second=0, microsecond=0)
            return start, start.replace(year=start.year + 1)
        start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        return start, _add_months(start, 1)
    anchor = anchor.astimezone(timezone.utc)
    if period == "day":
        days = (now - anchor) // timedelta(days=1)
        start = anchor + timedelta(days=days)
        return start, start + timedelta(days=1)
    step = 12 if period == "year" else 1
    # A first guess from the calendar, corrected by one step either way (month lengths differ).
    n = ((now.year - anchor.year) * 12 + now.month - anchor.month) // step
    while _add_months(anchor, n * step) > now:
        n -= 1
    while _add_months(anchor, (n + 1) * step) <= now:
        n += 1
    return _add_months(anchor, n * step), _add_months(anchor, (n + 1) * step)


def rate_window(per: str, now_epoch: float) -> tuple[int, int]:
    """The ``[start, end)`` epoch seconds of the fixed rate window containing ``now_epoch``."""
    size = RATE_WINDOWS[per]
    start = int(now_epoch // size) * size
    return start, start + size
