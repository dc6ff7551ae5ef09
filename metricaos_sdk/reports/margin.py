"""``metricaos margin``: revenue against AI cost per customer, gross margin, negative-margin customers first.

Revenue comes from the customers' invoices under their price plans (:class:`~metricaos_sdk.billing.Billing`, for
customers with a subscription), or from a CSV of the product's own revenue (:func:`read_revenue`: columns
``customer_id`` and ``revenue``, optionally ``period`` as ``2026-11`` to keep one period's rows). AI cost is the
billable cost the meter recorded in the period, summed exactly. Customers with cost and no revenue are listed
too: they are the margin's first problem.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from ..errors import ConfigurationError
from .exact import tidy
from .source import EventSource
from .usage_report import Filters, UsageReport, usage_report

__all__ = ["CustomerMargin", "invoice_revenue", "margins", "read_revenue"]


@dataclass(frozen=True)
class CustomerMargin:
    """One customer's revenue, AI cost and gross margin in a period (``margin_pct`` None without revenue)."""

    customer_id: str
    revenue: Decimal
    cost_usd: Decimal
    margin: Decimal
    margin_pct: Decimal | None
    """``margin / revenue`` × 100, to 0.1 %."""
    unpriced_requests: int = 0
    """Calls of the customer with no price: their cost is missing from ``cost_usd``, the margin is an upper bound."""

    def as_json(self) -> dict[str, Any]:
        return {"customer_id": self.customer_id, "revenue": str(self.revenue), "cost_usd": str(self.cost_usd),
                "margin": str(self.margin), "margin_pct": None if self.margin_pct is None else str(self.margin_pct),
                "unpriced_requests": self.unpriced_requests}


def read_revenue(path: str | os.PathLike[str], *, period: str | None = None) -> dict[str, Decimal]:
    """Revenue per customer from a CSV file with ``customer_id`` and ``revenue`` columns (rows of a customer add
    up; with a ``period`` column, only rows of ``period`` count). Raises :class:`ConfigurationError` naming the
    file and line of the first bad row."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise ConfigurationError(f"Cannot read the revenue file {path} ({exc.strerror or exc}): check the path.") from None
    reader = csv.DictReader(text.splitlines())
    columns = set(reader.fieldnames or [])
    if not {"customer_id", "revenue"} <= columns:
        raise ConfigurationError(f"{path} has no customer_id and revenue columns (found: {', '.join(sorted(columns)) or 'none'}): "
                                 f"its first line must name them.")
    out: dict[str, Decimal] = {}
    for line, row in enumerate(reader, start=2):
        if period is not None and "period" in columns and (row.get("period") or "").strip() != period:
            continue
        customer = (row.get("customer_id") or "").strip()
        try:
            amount = Decimal((row.get("revenue") or "").strip().lstrip("$").replace(",", ""))
        except InvalidOperation:
            amount = Decimal("NaN")
        if not customer or not amount.is_finite():
            raise ConfigurationError(f"{path} line {line}: needs a customer_id and a decimal revenue "
                                     f"(got {row.get('customer_id')!r}, {row.get('revenue')!r}); fix or remove the row.")
        out[customer] = out.get(customer, Decimal(0)) + amount
    return out


def invoice_revenue(database: str | os.PathLike[str], period: str) -> dict[str, Decimal]:
    """Each subscribed customer's invoice total for ``period`` under their price plan (USD plans only: a total
    in another currency is left out rather than added to dollars)."""
    from ..billing import Billing

    out: dict[str, Decimal] = {}
    with Billing(database) as billing:
        for customer in billing.subscriptions.customers():
            inv = billing.invoice(customer, period, raw=False)
            if inv.currency.upper() == "USD":
                out[customer] = inv.total
    return out


def margins(source: EventSource, revenue: Mapping[str, Decimal], *, since: datetime | None = None,
            until: datetime | None = None, by_customer: UsageReport | None = None) -> list[CustomerMargin]:
    """Margin per customer: ``revenue`` (by customer) against the billable AI cost recorded in ``[since, until)``
    (``by_customer``: that period's report by customer, when the caller has it already). Negative margins first,
    then the smallest; customers with revenue and no usage are included."""
    if by_customer is None:
        by_customer = usage_report(source, "customer", Filters(since=since, until=until, billable=True))
    rows = {r.key: r for r in by_customer.rows if r.billable.events}  # billable usage only, whatever the report
    out = []
    for customer in sorted(set(revenue) | {k for k in rows if k != "(none)"}):
        row = rows.get(customer)
        cost = row.billable.cost_usd if row else Decimal(0)
        income = revenue.get(customer, Decimal(0))
        margin = income - cost
        pct = (margin / income * 100).quantize(Decimal("0.1")) if income else None
        out.append(CustomerMargin(customer, tidy(income), cost, tidy(margin), pct,
                                  row.billable.unpriced_requests if row else 0))
    out.sort(key=lambda m: (m.margin >= 0, m.margin, m.customer_id))
    return out
