"""The business's view: cost, revenue and credits by day; the top customers, features, models and actions;
margins; unpriced models and the estimated-usage share. What the dashboard's business page shows (it adds the
delivery status and the alerts, which it reads itself)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from .margin import CustomerMargin, margins
from .source import EventSource
from .usage_report import Filters, ReportRow, usage_reports

__all__ = ["BusinessOverview", "DayFigures", "business_overview"]


@dataclass(frozen=True)
class DayFigures:
    """One UTC day: billable AI cost, credits and calls; revenue when the revenue given is by day."""

    day: str
    cost_usd: Decimal
    credits: Decimal
    requests: int
    revenue: Decimal | None = None

    def as_json(self) -> dict[str, Any]:
        return {"day": self.day, "cost_usd": str(self.cost_usd), "credits": str(self.credits),
                "requests": self.requests, "revenue": None if self.revenue is None else str(self.revenue)}


@dataclass(frozen=True)
class BusinessOverview:
    """Everything the business page shows from the events, for ``[since, until)``."""

    since: datetime | None
    until: datetime | None
    total: ReportRow
    by_day: list[DayFigures]
    top_customers: list[ReportRow]
    top_features: list[ReportRow]
    top_models: list[ReportRow]
    top_actions: list[ReportRow]
    margins: list[CustomerMargin]
    unpriced_models: list[ReportRow]
    revenue: Decimal | None
    """Total revenue of the period (None when none was given)."""
    unpriced_share: float
    estimated_share: float
    extra: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None,
            "total": self.total.as_json(), "revenue": None if self.revenue is None else str(self.revenue),
            "by_day": [d.as_json() for d in self.by_day],
            "top_customers": [r.as_json() for r in self.top_customers],
            "top_features": [r.as_json() for r in self.top_features],
            "top_models": [r.as_json() for r in self.top_models],
            "top_actions": [r.as_json() for r in self.top_actions],
            "margins": [m.as_json() for m in self.margins],
            "unpriced_models": [r.as_json() for r in self.unpriced_models],
            "unpriced_share": round(self.unpriced_share, 6), "estimated_share": round(self.estimated_share, 6),
        }


def business_overview(source: EventSource, *, since: datetime | None = None, until: datetime | None = None,
                      revenue: Mapping[str, Decimal] | None = None,
                      revenue_by_day: Mapping[str, Decimal] | None = None, top: int = 10) -> BusinessOverview:
    """The overview of ``[since, until)``: ``revenue`` by customer gives the margins; ``revenue_by_day`` (by UTC
    day, ``2026-11-05``) the daily revenue line."""
    filters = Filters(since=since, until=until)
    by = usage_reports(source, ["day", "customer", "feature", "model", "action"], filters)
    days = by["day"]
    by_day = [DayFigures(r.key, r.billable.cost_usd, r.billable.credits, r.billable.requests,
                         None if revenue_by_day is None else revenue_by_day.get(r.key, Decimal(0)))
              for r in days.rows]
    models = [r for r in by["model"].rows if r.total.requests]  # actions' own events have no model and no calls
    unpriced = [r for r in models if r.total.unpriced_requests]
    actions = [r for r in by["action"].rows if r.key != "(none)"]
    total = days.total
    return BusinessOverview(
        since=since, until=until, total=total, by_day=by_day, top_customers=by["customer"].rows[:top],
        top_features=by["feature"].rows[:top], top_models=models[:top], top_actions=actions[:top],
        margins=margins(source, revenue or {}, since=since, until=until, by_customer=by["customer"]),
        unpriced_models=unpriced, revenue=None if revenue is None else sum(revenue.values(), Decimal(0)),
        unpriced_share=total.total.unpriced_share, estimated_share=total.total.estimated_share,
    )
