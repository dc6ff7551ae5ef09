"""Billing periods: ``"2026-11"`` (a month), ``"2026-11-05"`` (a day), ``"2026"`` (a year), or ``(start, end)``."""

from __future__ import annotations

import re
from datetime import date, datetime, time, timezone

from ..errors import ConfigurationError
from ..quota.periods import period_bounds

__all__ = ["PeriodSpec", "moment", "resolve_period"]

PeriodSpec = str | tuple[datetime, datetime] | datetime
_FORMS = {r"\d{4}": "year", r"\d{4}-\d{2}": "month", r"\d{4}-\d{2}-\d{2}": "day"}


def moment(value: datetime | date | None, what: str) -> datetime:
    """``value`` in UTC: now when None, midnight UTC for a date; a naive datetime is a ConfigurationError."""
    if value is None:
        return datetime.now(timezone.utc)
    if not isinstance(value, datetime):
        value = datetime.combine(value, time(0), timezone.utc)
    if value.tzinfo is None:
        raise ConfigurationError(f"{what} must be timezone-aware (or a date, taken as midnight UTC), got {value!r}.")
    return value.astimezone(timezone.utc)


def resolve_period(period: PeriodSpec, *, kind: str = "month") -> tuple[datetime, datetime]:
    """The UTC ``[start, end)`` of ``period``; a datetime means the calendar ``kind`` period containing it."""
    if isinstance(period, tuple) and len(period) == 2 and all(isinstance(p, datetime) for p in period):
        start, end = period
        if start.tzinfo is None or end.tzinfo is None or not start < end:
            raise ConfigurationError("A period (start, end) needs two timezone-aware datetimes with start before end.")
        return start.astimezone(timezone.utc), end.astimezone(timezone.utc)
    if isinstance(period, datetime):
        if period.tzinfo is None:
            raise ConfigurationError(f"The period's datetime must be timezone-aware, got {period!r}.")
        return period_bounds(kind, period)
    if isinstance(period, str):
        for pattern, unit in _FORMS.items():
            if re.fullmatch(pattern, period):
                parts = [int(p) for p in period.split("-")] + [1, 1]
                try:
                    moment = datetime(parts[0], parts[1], parts[2], tzinfo=timezone.utc)
                except ValueError:
                    break
                return period_bounds(unit, moment)
    raise ConfigurationError(f"Unknown billing period {period!r}: give a month as '2026-11', a day as '2026-11-05', "
                             "a year as '2026', or a (start, end) pair of timezone-aware datetimes.")
