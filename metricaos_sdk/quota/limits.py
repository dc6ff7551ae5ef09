"""Quotas and their periods. Pure values and arithmetic; no I/O."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Literal

from ..errors import ConfigurationError

__all__ = ["Period", "Quota", "QuotaUnit", "UsageTotals", "period_bounds"]

Period = Literal["day", "month"]
QuotaUnit = Literal["tokens", "cost_usd", "requests"]
PERIODS: tuple[str, ...] = ("day", "month")
UNITS: tuple[str, ...] = ("tokens", "cost_usd", "requests")


@dataclass(frozen=True, slots=True)
class UsageTotals:
    """What a customer consumed in some window: billable calls only."""

    tokens: int = 0
    requests: int = 0
    cost_usd: Decimal = Decimal(0)

    def amount(self, unit: str) -> int | Decimal:
        return getattr(self, unit)  # type: ignore[no-any-return]


@dataclass(frozen=True, slots=True)
class Quota:
    """A hard limit on one unit per calendar period (UTC)."""

    customer_id: str
    unit: QuotaUnit
    limit: int | Decimal
    period: Period = "month"

    def __post_init__(self) -> None:
        if self.unit not in UNITS:
            raise ConfigurationError(f"Unknown quota unit {self.unit!r}: use one of {', '.join(UNITS)}.")
        if self.period not in PERIODS:
            raise ConfigurationError(f"Unknown quota period {self.period!r}: use 'day' or 'month'.")
        if isinstance(self.limit, float) or isinstance(self.limit, bool) or self.limit < 0:
            raise ConfigurationError(
                f"The {self.unit} limit for {self.customer_id!r} must be a non-negative int or Decimal, "
                f"got {self.limit!r}."
            )


def period_bounds(period: str, now: datetime) -> tuple[datetime, datetime]:
    """The UTC ``[start, end)`` of the calendar period containing ``now``."""
    now = now.astimezone(timezone.utc)
    if period == "day":
        start = now.replace(hour=0, minute=0, second=0, microsecond=0)
        return start, start + timedelta(days=1)
    start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    end = start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)
    return start, end
