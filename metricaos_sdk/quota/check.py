"""The pre-call decision: does this customer still have allowance?"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from ..errors import QuotaExceeded
from .limits import Quota, UsageTotals, period_bounds
from .store import QuotaStore

__all__ = ["QuotaStatus", "check_quotas", "quota_status"]


@dataclass(frozen=True, slots=True)
class QuotaStatus:
    """One limit of a customer, as it stands now."""

    quota: Quota
    period_start: datetime
    resets_at: datetime
    used: int | Decimal

    @property
    def remaining(self) -> int | Decimal:
        return max(self.quota.limit - self.used, 0)

    @property
    def exhausted(self) -> bool:
        return self.used >= self.quota.limit


def quota_status(store: QuotaStore, customer_id: str, now: datetime) -> list[QuotaStatus]:
    """Every limit of ``customer_id`` with its use in the current period."""
    statuses = []
    totals_by_start: dict[datetime, UsageTotals] = {}
    for quota in store.quotas(customer_id):
        start, end = period_bounds(quota.period, now)
        totals = totals_by_start.get(start)
        if totals is None:
            totals = totals_by_start[start] = store.used_since(customer_id, start)
        statuses.append(QuotaStatus(quota, start, end, totals.amount(quota.unit)))
    return statuses


def check_quotas(store: QuotaStore, customer_id: str, now: datetime) -> None:
    """Raise :class:`QuotaExceeded` for the first exhausted limit of ``customer_id``; return otherwise."""
    for status in quota_status(store, customer_id, now):
        if status.exhausted:
            raise QuotaExceeded(
                customer_id=customer_id,
                unit=status.quota.unit,
                limit=status.quota.limit,
                used=status.used,
                period=status.quota.period,
                resets_at=status.resets_at,
            )
