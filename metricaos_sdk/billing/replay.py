"""Pricing experiments: a period's recorded history priced again under candidate plans and credit rules.

No call is made again: the period's groups are read once from the per-day rollup (:mod:`.rollup`: per customer,
feature, action and unit, re-rated there under candidate credit rules) and every candidate prices the same groups
(:func:`~metricaos_sdk.billing.invoice.compute_invoice`), each customer's sums made once for all of them
(:mod:`.totals`). A candidate's hard limit (``Charge(limit=...)``) is found in the day totals of the customers it
cut (one more rollup query per limited meter), and the event that would have been refused is looked up in that one
day of that one customer's events.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from ..formatting import quantity as fmt_quantity
from .aggregate import CALL, OUTER_ACTION, Group, Quantities, total
from .invoice import Invoice, compute_invoice
from .ledger import Adjustment
from .money import round_money
from .plans import BUILTIN_METERS, Charge, PricePlan
from .rollup import Rerate, Scope, day_totals
from .totals import CustomerTotals

__all__ = ["Replay", "ReplayResult", "price_history"]


@dataclass(frozen=True)
class ReplayResult:
    """One customer under one candidate: what they would have paid, what it cost, the margin, and the hard
    limit they would have hit (the meter, and the time of the first event it would have refused)."""

    customer_id: str
    plan: str
    paid: Decimal
    cost_usd: Decimal
    margin: Decimal | None
    limit_hit_at: datetime | None
    limit_meter: str | None
    refused: Decimal
    """Usage past the limit (it would not have been served)."""
    invoice: Invoice


@dataclass(frozen=True)
class Replay:
    """Every candidate's results: ``results[plan_name][customer_id]``."""

    period_start: datetime
    period_end: datetime
    results: dict[str, dict[str, ReplayResult]]

    def totals(self, plan: str) -> tuple[Decimal, Decimal, Decimal | None]:
        """``(revenue, AI cost, margin)`` of every customer under ``plan``."""
        rows = self.results[plan].values()
        paid = sum((r.paid for r in rows), Decimal(0))
        cost = sum((r.cost_usd for r in rows), Decimal(0))
        margins = [r.margin for r in rows]
        return paid, cost, (None if any(m is None for m in margins) else paid - cost)

    def __str__(self) -> str:
        out = [f"Replay {self.period_start:%Y-%m-%d} to {self.period_end:%Y-%m-%d}"]
        for plan, rows in self.results.items():
            paid, cost, margin = self.totals(plan)
            hits = sum(1 for r in rows.values() if r.limit_hit_at)
            out.append(f"  {plan}: revenue {paid}, AI cost {round_money(cost, 'USD')}, "
                       f"margin {round_money(margin, 'USD') if margin is not None else 'n/a'}, "
                       f"{hits} of {len(rows)} customers hit a hard limit")
            for r in rows.values():
                hit = (f", hits its {r.limit_meter} limit at {r.limit_hit_at:%Y-%m-%d %H:%M:%S} "
                       f"({fmt_quantity(r.refused)} refused)") if r.limit_hit_at else ""
                out.append(f"    {r.customer_id}: pays {r.paid}, costs {round_money(r.cost_usd, 'USD')}{hit}")
        return "\n".join(out)


def _meter_sql(meter: str, rerate: str | None) -> tuple[str, list[Any]]:
    """SQL: an event's usage in ``meter`` (as text or a number), and its parameters."""
    fixed = {"tokens": f"CASE WHEN {CALL} THEN total_tokens ELSE 0 END",
             "input_tokens": f"CASE WHEN {CALL} THEN input_tokens ELSE 0 END",
             "output_tokens": f"CASE WHEN {CALL} THEN output_tokens ELSE 0 END",
             "requests": f"{CALL}", "actions": f"{OUTER_ACTION}", "cost_usd": f"CASE WHEN {CALL} THEN cost_usd END",
             "credits": f"({rerate})" if rerate else "credits"}
    if meter in fixed:
        return fixed[meter], []
    return "CASE WHEN unit = ? THEN quantity END", [meter]


def _first_refused(conn: sqlite3.Connection, customer_id: str, charge: Charge, day: str, before: Decimal,
                   rerate: str | None) -> datetime | None:
    """The time of the first event of ``day`` that takes the customer past ``charge``'s limit."""
    expr, params = _meter_sql(charge.meter, rerate)
    feature = " AND feature = ?" if charge.feature is not None else ""
    args = [*params, customer_id, day + "T00:00:00", day + "T99"] + ([charge.feature] if charge.feature else [])
    rows = conn.execute(
        f"SELECT timestamp, {expr} FROM events WHERE customer_id = ? AND "
        f"timestamp >= ? AND timestamp < ? AND billable = 1{feature} AND id NOT IN "
        "(SELECT event_id FROM billing_adjusted_events) ORDER BY timestamp, id", args).fetchall()
    used = before
    for timestamp, value in rows:
        if value is None:
            continue
        # Re-rated credits come back as integer micro-credits; stored values as exact decimal text.
        amount = Decimal(value) / 10**6 if (rerate and charge.meter == "credits") else Decimal(str(value))
        used += amount
        if used > Decimal(charge.limit):  # type: ignore[arg-type]
            return datetime.fromisoformat(timestamp)
    return None


def price_history(conn: sqlite3.Connection, start: datetime, end: datetime, groups: Sequence[Group],
                  plans: Sequence[PricePlan], *, seat_days: Mapping[str, int], days: int,
                  adjustments: Mapping[str, Sequence[Adjustment]], rerate: Rerate | None,
                  scope: Scope | None = None) -> Replay:
    """Price ``groups`` (per customer, from :func:`~metricaos_sdk.billing.rollup.usage`) under each plan.

    Each customer's groups are summed once (:class:`~metricaos_sdk.billing.totals.CustomerTotals`) and priced
    under every plan; the day totals a hard limit is looked up in are read once per limited meter, for the
    customers whose invoices cut usage at the limit only.
    """
    if rerate is not None:  # the candidate rules' credits in place of the recorded ones
        groups = [_with_credits(g, g.rerated or Decimal(0)) for g in groups]
    by_customer: dict[str, list[Group]] = {}
    for g in groups:
        if g.customer_id is not None:
            by_customer.setdefault(g.customer_id, []).append(g)
    summed = {customer_id: CustomerTotals(mine) for customer_id, mine in sorted(by_customer.items())}
    invoices: dict[str, dict[str, Invoice]] = {}
    limited: dict[tuple[str, str | None], set[str]] = {}  # (meter, feature): customers a hard limit cut
    for plan in plans:
        invoices[plan.name] = mine = {}
        for customer_id, totals in summed.items():
            invoice = mine[customer_id] = compute_invoice(
                customer_id, start, end, plan, totals.groups, seat_days=seat_days.get(customer_id, days), days=days,
                adjustments=adjustments.get(customer_id, ()), totals=totals)
            for result in invoice.charges:
                if result.refused and result.charge.limit is not None:
                    limited.setdefault((result.charge.meter, result.charge.feature), set()).add(customer_id)
    # Every such customer's day totals in the meter, in one query per (meter, feature).
    day_usage = {(meter, feature): day_totals(conn, start, end, replace(scope or Scope(), customers=sorted(names),
                                                                        feature=feature), meter,
                                              custom=meter not in BUILTIN_METERS, rerate=rerate)
                 for (meter, feature), names in limited.items()}
    results: dict[str, dict[str, ReplayResult]] = {}
    for plan in plans:
        rows: dict[str, ReplayResult] = {}
        for customer_id, invoice in invoices[plan.name].items():
            hit_at, hit_meter, refused = None, None, Decimal(0)
            for result in invoice.charges:
                if result.refused and result.charge.limit is not None:
                    days_of = day_usage[(result.charge.meter, result.charge.feature)].get(customer_id, {})
                    moment = _limit_moment(conn, customer_id, result.charge, days_of,
                                           rerate.events if rerate else None)
                    if moment is not None and (hit_at is None or moment < hit_at):
                        hit_at, hit_meter, refused = moment, result.charge.meter, result.refused
            rows[customer_id] = ReplayResult(customer_id, plan.name, invoice.total, invoice.cost_usd, invoice.margin,
                                             hit_at, hit_meter, refused, invoice)
        results[plan.name] = rows
    return Replay(start, end, results)


def _with_credits(group: Group, credits: Decimal) -> Group:
    """``replace(group, usage=replace(group.usage, credits=credits))``, copied field by field without
    ``replace``'s cost per call (``__init__`` again): a replay re-rates tens of thousands of groups. Both classes
    are plain frozen dataclasses (no ``__post_init__``, no slots), so the copies are what ``replace`` would give."""
    usage = object.__new__(Quantities)
    usage.__dict__.update(group.usage.__dict__, credits=credits)
    out = object.__new__(Group)
    out.__dict__.update(group.__dict__, usage=usage)
    return out


def _limit_moment(conn: sqlite3.Connection, customer_id: str, charge: Charge, days: Mapping[str, Decimal],
                  rerate: str | None) -> datetime | None:
    used = Decimal(0)
    for day in sorted(days):
        today = days[day]
        if used + today > Decimal(charge.limit):  # type: ignore[arg-type]
            return _first_refused(conn, customer_id, charge, day, used, rerate)
        used += today
    return None


def customer_totals(groups: Sequence[Group]) -> dict[str, Quantities]:
    """Metered usage per customer."""
    out: dict[str, list[Quantities]] = {}
    for g in groups:
        if g.customer_id is not None:
            out.setdefault(g.customer_id, []).append(g.usage)
    return {c: total(q) for c, q in out.items()}
