"""QuotaAlert: what an alert callback receives when a customer crosses a threshold of an allowance."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

__all__ = ["QuotaAlert"]


@dataclass(frozen=True, slots=True)
class QuotaAlert:
    """A customer crossed ``threshold`` (0.8 = 80 %) of an allowance. Sent once per threshold and period,
    across every process sharing the quota store. In a soft plan, threshold 1.0 also fires the moment a
    call is let past the limit."""

    customer_id: str
    plan: str | None
    unit: str
    feature: str | None
    threshold: float
    limit: int | Decimal
    used: int | Decimal
    period_start: datetime
    resets_at: datetime
    mode: str

    @property
    def message(self) -> str:
        unit = "USD" if self.unit == "cost_usd" else self.unit
        scope = f" for {self.feature}" if self.feature else ""
        return (f"Customer {self.customer_id} has used {self.used} of {self.limit} {unit}{scope} "
                f"({self.threshold:.0%} alert); the allowance resets at {self.resets_at.isoformat()}.")
