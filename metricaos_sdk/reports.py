"""The customer usage summary: what ``meter.usage(customer_id)`` returns."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal

from pydantic import BaseModel, ConfigDict

from .events import UsageEvent
from .quota.check import QuotaStatus

__all__ = ["LimitStatus", "Totals", "UsageSummary", "summarize"]


def usd(amount: Decimal) -> str:
    """An exact amount for display: no exponent, no trailing zeros (``$0.0016987``)."""
    text = format(amount.normalize(), "f") if amount else "0"
    return f"${text}"


class Totals(BaseModel):
    """Billable usage of a group of calls."""

    model_config = ConfigDict(frozen=True)

    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    reasoning_tokens: int = 0
    total_tokens: int = 0
    cost_usd: Decimal = Decimal(0)
    unpriced_requests: int = 0
    """Calls whose model had no price: their tokens count, their cost is not in ``cost_usd``."""


class LimitStatus(BaseModel):
    """One limit of the customer in the current period."""

    model_config = ConfigDict(frozen=True)

    unit: str
    period: str
    limit: int | Decimal
    used: int | Decimal
    remaining: int | Decimal
    resets_at: datetime


class UsageSummary(BaseModel):
    """A customer's usage in one period, with every limit and the breakdowns a usage page shows."""

    model_config = ConfigDict(frozen=True)

    customer_id: str
    period: str
    period_start: datetime
    period_end: datetime
    limits: list[LimitStatus]
    totals: Totals
    by_feature: dict[str, Totals]
    by_model: dict[str, Totals]
    by_day: dict[str, Totals]

    @property
    def limit(self) -> int | Decimal | None:
        """The first limit's allowance (token limits first), or None when the customer has none."""
        return self.limits[0].limit if self.limits else None

    @property
    def used(self) -> int | Decimal:
        return self.limits[0].used if self.limits else self.totals.total_tokens

    @property
    def remaining(self) -> int | Decimal | None:
        return self.limits[0].remaining if self.limits else None

    @property
    def cost_usd(self) -> Decimal:
        return self.totals.cost_usd

    def __str__(self) -> str:
        lines = [f"{self.customer_id} — {self.period} {self.period_start:%Y-%m-%d} to {self.period_end:%Y-%m-%d}"]
        for lim in self.limits:
            lines.append(f"  limit {lim.unit}: used {lim.used} of {lim.limit}, {lim.remaining} left, resets {lim.resets_at:%Y-%m-%d %H:%M} UTC")
        t = self.totals
        lines.append(f"  {t.requests} calls, {t.total_tokens} tokens ({t.input_tokens} in, {t.output_tokens} out), {usd(t.cost_usd)}")
        for title, groups in (("feature", self.by_feature), ("model", self.by_model)):
            for name, g in groups.items():
                lines.append(f"  by {title} {name}: {g.requests} calls, {g.total_tokens} tokens, {usd(g.cost_usd)}")
        return "\n".join(lines)


def _add(totals: Totals, e: UsageEvent) -> Totals:
    return Totals(
        requests=totals.requests + 1,
        input_tokens=totals.input_tokens + e.input_tokens,
        output_tokens=totals.output_tokens + e.output_tokens,
        cached_input_tokens=totals.cached_input_tokens + e.cached_input_tokens,
        reasoning_tokens=totals.reasoning_tokens + e.reasoning_tokens,
        total_tokens=totals.total_tokens + e.total_tokens,
        cost_usd=totals.cost_usd + (e.cost_usd or 0),
        unpriced_requests=totals.unpriced_requests + (e.cost_usd is None),
    )


def summarize(
    customer_id: str,
    period: str,
    bounds: tuple[datetime, datetime],
    events: Iterable[UsageEvent],
    statuses: list[QuotaStatus],
) -> UsageSummary:
    """Fold a period's events (billable ones only) and limit statuses into a summary."""
    totals = Totals()
    by_feature: dict[str, Totals] = {}
    by_model: dict[str, Totals] = {}
    by_day: dict[str, Totals] = {}
    for e in events:
        if not e.billable:
            continue
        totals = _add(totals, e)
        for groups, key in (
            (by_feature, e.feature or "(none)"),
            (by_model, e.model or "(unknown)"),
            (by_day, e.timestamp.date().isoformat()),
        ):
            groups[key] = _add(groups.get(key, Totals()), e)
    order = {"tokens": 0, "cost_usd": 1, "requests": 2}
    limits = [
        LimitStatus(unit=s.quota.unit, period=s.quota.period, limit=s.quota.limit, used=s.used,
                    remaining=s.remaining, resets_at=s.resets_at)
        for s in sorted(statuses, key=lambda s: order.get(s.quota.unit, 9))
    ]
    return UsageSummary(
        customer_id=customer_id, period=period, period_start=bounds[0], period_end=bounds[1], limits=limits,
        totals=totals, by_feature=by_feature, by_model=by_model, by_day=by_day,
    )
