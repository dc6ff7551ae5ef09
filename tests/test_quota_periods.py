"""Periods: calendar and anchored, exact in UTC across month ends and leap years."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from metricaos_sdk.quota.periods import period_bounds, rate_window


def utc(*args):
    return datetime(*args, tzinfo=timezone.utc)


@pytest.mark.parametrize("now,start,end", [
    (utc(2024, 2, 29, 23, 59), utc(2024, 2, 1), utc(2024, 3, 1)),
    (utc(2024, 12, 31, 23, 59, 59), utc(2024, 12, 1), utc(2025, 1, 1)),
    (utc(2025, 1, 1), utc(2025, 1, 1), utc(2025, 2, 1)),
])
def test_calendar_month(now, start, end):
    assert period_bounds("month", now) == (start, end)


def test_calendar_day_and_year():
    assert period_bounds("day", utc(2024, 2, 28, 12)) == (utc(2024, 2, 28), utc(2024, 2, 29))
    assert period_bounds("year", utc(2024, 7, 1)) == (utc(2024, 1, 1), utc(2025, 1, 1))


@pytest.mark.parametrize("now,start,end", [
    # Anchored on Jan 31 at 15:00: the 31st, else the month's last day, always counted from the anchor.
    (utc(2024, 2, 10), utc(2024, 1, 31, 15), utc(2024, 2, 29, 15)),
    (utc(2024, 2, 29, 15), utc(2024, 2, 29, 15), utc(2024, 3, 31, 15)),
    (utc(2024, 3, 31, 14, 59), utc(2024, 2, 29, 15), utc(2024, 3, 31, 15)),
    (utc(2025, 2, 28, 15), utc(2025, 2, 28, 15), utc(2025, 3, 31, 15)),
    (utc(2024, 1, 1), utc(2023, 12, 31, 15), utc(2024, 1, 31, 15)),  # before the anchor: periods extend back
])
def test_anchored_month(now, start, end):
    assert period_bounds("month", now, utc(2024, 1, 31, 15)) == (start, end)


def test_anchored_year_on_a_leap_day():
    anchor = utc(2024, 2, 29)
    assert period_bounds("year", utc(2025, 3, 1), anchor) == (utc(2025, 2, 28), utc(2026, 2, 28))
    assert period_bounds("year", utc(2028, 2, 29), anchor) == (utc(2028, 2, 29), utc(2029, 2, 28))


def test_anchored_day_keeps_the_time_of_day():
    assert period_bounds("day", utc(2025, 3, 1, 2), utc(2024, 1, 1, 3)) == (utc(2025, 2, 28, 3), utc(2025, 3, 1, 3))


def test_non_utc_input_is_converted():
    from datetime import timedelta

    tokyo = timezone(timedelta(hours=9))
    assert period_bounds("month", datetime(2024, 3, 1, 5, tzinfo=tokyo)) == (utc(2024, 2, 1), utc(2024, 3, 1))


def test_rate_windows():
    assert rate_window("minute", 125.5) == (120, 180)
    assert rate_window("second", 7.9) == (7, 8)
    assert rate_window("hour", 3599) == (0, 3600)
