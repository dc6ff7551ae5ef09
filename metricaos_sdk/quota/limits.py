"""Per-customer hard limits (``meter.set_quota``) and usage totals. Pure values; no I/O."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

from ..errors import ConfigurationError
from .amounts import check_amount
from .periods import PERIODS, Period, period_bounds

__all__ = ["Period", "Quota", "QuotaUnit", "UsageTotals", "period_bounds"]

QuotaUnit = Literal["credits", "tokens", "cost_usd", "requests"]


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
    """A hard limit on one unit per calendar period (UTC), set for one customer with ``meter.set_quota``."""

    customer_id: str
    unit: QuotaUnit
    limit: int | Decimal
    period: Period = "month"

    def __post_init__(self) -> None:
        if self.period not in PERIODS:
            raise ConfigurationError(f"Unknown quota period {self.period!r}: use 'day', 'month' or 'year'.")
        check_amount(self.unit, self.limit, f"The {self.unit} limit for {self.customer_id!r}")
