"""Invoices: a customer's period through the four stages, priced by a :class:`PricePlan`, as lines.

* **raw** — every event recorded in the period (the whole store: what came in);
* **metered** — the events attributed to the customer;
* **billable** — of those, the ones the billable rules let count (``UsageEvent.billable``, the rule that
  decided in ``billable_rule``);
* **invoiced** — of those, the ones no exclusion or reversal left out, capped at each charge's hard limit;
  then the included allowance (plus grants and packs) is taken off and the rest priced.

Every line says which events are behind it (:class:`EventFilter`: a query any store can run) or which
ledger entries (``adjustments``). The total is the exact sum of the lines, each rounded half up to the
currency's minor unit. Revenue (the total) is allocated to features and actions in proportion to their
share of the usage it charges (largest remainder, so the parts add up to the cent); AI cost is the metered
LLM calls' ``cost_usd`` (a failed or test call still cost what it cost); margin = revenue − AI cost, when the
plan is priced in USD.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import ROUND_CEILING, Decimal
from typing import Any

from ..formatting import quantity as fmt_quantity
from .aggregate import CALL, OUTER_ACTION, Group, Quantities
from .ledger import Adjustment
from .money import allocate, ceil_div, round_money
from .plans import Charge, PricePlan
from .totals import NO_ACTION, NO_FEATURE, CustomerTotals, Part

__all__ = ["Breakdown", "ChargeResult", "EventFilter", "Invoice", "InvoiceLine", "Stages", "compute_invoice"]



@dataclass(frozen=True)
class EventFilter:
    """The events behind a line, as a query: ``match`` maps a column to its value (None: the column is NULL).

    ``invoiced=True`` leaves out events named by an exclusion or reversal. ``sql()`` gives the ``WHERE`` text
    and parameters for the ``events`` table; ``Billing.events_of(line)`` runs it.
    """

    customer_id: str
    start: datetime
    end: datetime
    match: Mapping[str, str | None] = field(default_factory=dict)
    billable: bool | None = True
    invoiced: bool = True
    meter: str | None = None

    def sql(self) -> tuple[str, list[Any]]:
        where = ["customer_id = ?", "timestamp >= ?", "timestamp < ?"]
        params: list[Any] = [self.customer_id, self.start.isoformat(), self.end.isoformat()]
        for column, value in sorted(self.match.items()):
            if value is None:
                where.append(f"{column} IS NULL")
            else:
                where.append(f"{column} = ?")
                params.append(value)
        if self.billable is not None:
            where.append(f"billable = {int(self.billable)}")
        if self.invoiced:
            where.append("id NOT IN (SELECT event_id FROM billing_adjusted_events)")
        meter_where = _METER_WHERE.get(self.meter or "", None)
        if meter_where:
            where.append(meter_where)
        elif self.meter and self.meter not in _METER_WHERE:
            where.append("unit = ?")
            params.append(self.meter)
        return " AND ".join(where), params


_METER_WHERE = {"tokens": CALL, "input_tokens": CALL, "output_tokens": CALL, "requests": CALL, "cost_usd": CALL,
                "actions": OUTER_ACTION, "credits": "credits IS NOT NULL", "": ""}


@dataclass(frozen=True)
class InvoiceLine:
    """One line: ``amount`` (exact, in the invoice's currency) for ``quantity`` of ``unit``.

    ``kind``: ``base``, ``seats``, ``usage`` (what was used, by feature and action — amount 0: the allowance
    and the overage lines price it), ``overage``, ``pack``, ``credit_note``, ``refund``.
    """

    kind: str
    description: str
    amount: Decimal
    quantity: Decimal | None = None
    unit: str | None = None
    unit_price: Decimal | None = None
    feature: str | None = None
    action: str | None = None
    events: EventFilter | None = None
    adjustments: tuple[int, ...] = ()


@dataclass(frozen=True)
class ChargeResult:
    """How one charge was priced: usage, what a hard limit cut, the allowance and what was charged."""

    charge: Charge
    used: Decimal
    """Invoiced-stage usage in the charge's meter (before the limit)."""
    refused: Decimal
    """Usage beyond the charge's hard limit (never invoiced)."""
    included: Decimal
    granted: Decimal
    """Of ``included``: from goodwill grants and credit packs."""
    overage: Decimal
    amount: Decimal
    by_feature: dict[str, Decimal]
    by_action: dict[str, Decimal]


@dataclass(frozen=True)
class Stages:
    """Usage at each stage; each is at most the one before it, in every meter."""

    raw: Quantities | None
    metered: Quantities
    billable: Quantities
    invoiced: Quantities


@dataclass(frozen=True)
class Breakdown:
    """A feature's (or action's) numbers: usage, revenue allocated to it, AI cost and margin."""

    billable: Quantities
    invoiced: Quantities
    revenue: Decimal
    cost_usd: Decimal
    margin: Decimal | None


@dataclass(frozen=True)
class Invoice:
    """A customer's invoice for ``[period_start, period_end)`` under ``plan``."""

    customer_id: str
    period_start: datetime
    period_end: datetime
    plan: str
    currency: str
    lines: tuple[InvoiceLine, ...]
    charges: tuple[ChargeResult, ...]
    stages: Stages
    by_feature: dict[str, Breakdown]
    by_action: dict[str, Breakdown]
    seats: Decimal
    """Seats charged: seat-days / days in the period."""
    adjustments: tuple[Adjustment, ...] = ()

    @property
    def total(self) -> Decimal:
        """The amount due: the exact sum of the lines."""
        return sum((line.amount for line in self.lines), Decimal(0))

    @property
    def revenue(self) -> Decimal:
        return self.total

    @property
    def cost_usd(self) -> Decimal:
        """AI cost of the customer's metered LLM calls in the period (USD)."""
        return self.stages.metered.cost_usd

    @property
    def margin(self) -> Decimal | None:
        """Revenue − AI cost (None when the plan is not priced in USD)."""
        return self.total - self.cost_usd if self.currency == "USD" else None

    def charge(self, meter: str) -> ChargeResult:
        """The first charge of ``meter``."""
        for result in self.charges:
            if result.charge.meter == meter:
                return result
        raise KeyError(meter)

    def explain(self, meter: str | None = None) -> str:
        """Why the customer was charged what they were, in a meter, by feature (and by action):
        ``"18,000 credits: summarize_document 8,000, support_reply 6,500, workflow 3,500 …"``."""
        result = self.charge(meter) if meter else (self.charges[0] if self.charges else None)
        if result is None:
            return f"{self.customer_id}: no metered charges on {self.plan}."
        unit = result.charge.meter
        parts = ", ".join(f"{name} {fmt_quantity(value)}" for name, value in
                          sorted(result.by_feature.items(), key=lambda kv: (-kv[1], kv[0])))
        text = f"{fmt_quantity(result.used)} {unit}: {parts}" if parts else f"0 {unit}"
        actions = {k: v for k, v in result.by_action.items() if k != NO_ACTION}
        if actions:
            text += "; by action: " + ", ".join(f"{name} {fmt_quantity(value)}" for name, value in
                                                sorted(result.by_action.items(), key=lambda kv: (-kv[1], kv[0])))
        text += f". Included {fmt_quantity(result.included)}"
        if result.refused:
            text += f", {fmt_quantity(result.refused)} past the hard limit (not invoiced)"
        return text + f", {fmt_quantity(result.overage)} charged as overage: {self.currency} {result.amount}."

    def __str__(self) -> str:
        head = (f"Invoice {self.customer_id} — {self.plan}, {self.period_start:%Y-%m-%d} to {self.period_end:%Y-%m-%d} "
                f"({self.currency})")
        lines = [head]
        for line in self.lines:
            qty = f"  {fmt_quantity(line.quantity)} {line.unit}" if line.quantity is not None and line.unit else ""
            lines.append(f"  {line.kind:<11} {line.description}{qty}: {line.amount}")
        lines.append(f"  total: {self.total}")
        if self.margin is not None:
            lines.append(f"  AI cost: {round_money(self.cost_usd, 'USD')}, margin: {round_money(self.margin, 'USD')}")
        return "\n".join(lines)


def _key(value: str | None, empty: str) -> str:
    return value if value is not None else empty


def compute_invoice(customer_id: str, start: datetime, end: datetime, plan: PricePlan, groups: Sequence[Group], *,
                    seat_days: int = 0, days: int = 1, adjustments: Iterable[Adjustment] = (),
                    raw: Quantities | None = None, totals: CustomerTotals | None = None) -> Invoice:
    """Price the customer's groups (from :func:`~metricaos_sdk.billing.aggregate.group_usage`) under ``plan``.

    Pure: no I/O, so a replay prices the same groups under many plans — summed once: ``totals`` is
    ``CustomerTotals(groups)`` (:mod:`.totals`), given by a caller that prices the same groups again.
    """
    sums = totals if totals is not None else CustomerTotals(groups)
    adjustments = tuple(adjustments)
    currency = plan.currency
    seats = Decimal(seat_days) / Decimal(days) if days else Decimal(0)
    lines: list[InvoiceLine] = []
    weights_feature: dict[str, Decimal] = {}
    weights_action: dict[str, Decimal] = {}
    if plan.base_price:
        lines.append(InvoiceLine("base", f"{plan.name} subscription", round_money(Decimal(plan.base_price), currency)))
    if plan.seat_price and seat_days:
        lines.append(InvoiceLine("seats", f"{plan.name} seats ({seat_days} seat-days / {days} days)",
                                 round_money(Decimal(plan.seat_price) * seats, currency), quantity=_q(seats),
                                 unit="seats", unit_price=Decimal(plan.seat_price)))
    grants: dict[str, list[Adjustment]] = {}
    for adj in adjustments:
        if adj.kind == "grant" and adj.unit:
            grants.setdefault(adj.unit, []).append(adj)
        if adj.kind == "pack":
            grants.setdefault("credits", []).append(adj)
            lines.append(InvoiceLine("pack", f"credit pack {adj.details.get('pack', '')}: {adj.reason}".strip(),
                                     round_money(adj.amount or Decimal(0), currency),
                                     quantity=Decimal(adj.details.get("credits", "0")), unit="credits",
                                     adjustments=(adj.seq,)))
    results: list[ChargeResult] = []
    caps: dict[str, Decimal] = {}
    granted_meters: set[str] = set()
    for charge in plan.charges:
        charged = sums.charge_usage(charge.meter, charge.feature)
        by_feature, by_action = dict(charged.by_feature), dict(charged.by_action)
        used = charged.used
        capped = min(used, Decimal(charge.limit)) if charge.limit is not None else used
        if charge.limit is not None:
            caps[charge.meter] = min(caps.get(charge.meter, capped), capped)
        included = Decimal(charge.included)
        if charge.included_per_seat and days:
            included += (Decimal(charge.included_per_seat) * seat_days / days).to_integral_value(ROUND_CEILING)
        granted = Decimal(0)
        applied: tuple[int, ...] = ()
        if charge.meter not in granted_meters:  # grants and packs go to the first charge of their meter
            granted_meters.add(charge.meter)
            found = grants.get(charge.meter, [])
            granted = sum((Decimal(a.details["credits"]) if a.kind == "pack" else (a.amount or Decimal(0))
                           for a in found), Decimal(0))
            applied = tuple(a.seq for a in found)
        included += granted
        overage = max(Decimal(0), capped - included)
        if charge.unit_price is not None:
            price = round_money(overage * Decimal(charge.unit_price), currency)
            unit_price: Decimal | None = Decimal(charge.unit_price)
        elif charge.block_price is not None:
            price = round_money(ceil_div(overage, Decimal(charge.block_size)) * Decimal(charge.block_price), currency)  # type: ignore[arg-type]
            unit_price = None
        else:
            price, unit_price = round_money(Decimal(0), currency), None
        match = {"feature": charge.feature} if charge.feature is not None else {}
        for (feature, action), amount in charged.lines:
            name = _key(feature, NO_FEATURE) + (f" / {action}" if action else "")
            lines.append(InvoiceLine("usage", f"{charge.label}: {name}", Decimal(0), quantity=amount, unit=charge.meter,
                                     feature=feature, action=action, events=EventFilter(
                                         customer_id, start, end, {"feature": feature, "action_name": action},
                                         meter=charge.meter)))
        if overage or price:
            what = (f"{charge.label} beyond {fmt_quantity(included)} included" +
                    (f" (of which {fmt_quantity(granted)} granted)" if granted else ""))
            if charge.block_price is not None:
                what += f", {charge.block_price} per {fmt_quantity(Decimal(charge.block_size))} started"  # type: ignore[arg-type]
            lines.append(InvoiceLine("overage", what, price, quantity=overage, unit=charge.meter, unit_price=unit_price,
                                     feature=charge.feature, events=EventFilter(customer_id, start, end, match,
                                                                                meter=charge.meter),
                                     adjustments=applied))
        share = (capped / used) if used else Decimal(0)
        for name, value in by_feature.items():
            weights_feature[name] = weights_feature.get(name, Decimal(0)) + value * share
        for name, value in by_action.items():
            weights_action[name] = weights_action.get(name, Decimal(0)) + value * share
        results.append(ChargeResult(charge, used, used - capped, included, granted, overage, price, by_feature, by_action))
    for adj in adjustments:
        if adj.kind in ("credit_note", "refund"):
            word = "credit note" if adj.kind == "credit_note" else "refund"
            lines.append(InvoiceLine(adj.kind, f"{word}: {adj.reason}", -round_money(adj.amount or Decimal(0), currency),
                                     adjustments=(adj.seq,)))
    invoiced = _capped(sums.invoiced, caps) if caps else sums.invoiced
    invoice_total = sum((line.amount for line in lines), Decimal(0))
    if not weights_feature:  # no metered charge: allocate by AI cost
        weights_feature, weights_action = sums.cost_weights
    stages = Stages(raw=raw, metered=sums.metered, billable=sums.billable, invoiced=invoiced)
    features = _breakdowns(sums.features, allocate(invoice_total, weights_feature, currency), currency)
    actions = _breakdowns(sums.actions, allocate(invoice_total, weights_action, currency), currency)
    return Invoice(customer_id, start, end, plan.name, currency, tuple(lines), tuple(results), stages, features,
                   actions, _q(seats), adjustments)


def _q(value: Decimal) -> Decimal:
    return value.quantize(Decimal("0.0001")).normalize() + 0 if value else Decimal(0)


def _capped(q: Quantities, caps: Mapping[str, Decimal]) -> Quantities:
    """``q`` with each capped meter at most its cap (the usage a hard limit let through)."""
    changes: dict[str, Any] = {}
    units = dict(q.units)
    for meter, cap in caps.items():
        if meter in ("events", "requests", "actions", "input_tokens", "output_tokens", "tokens", "unpriced"):
            changes[meter] = min(getattr(q, meter), int(cap))
        elif meter in ("credits", "cost_usd"):
            changes[meter] = min(getattr(q, meter), cap)
        elif meter in units:
            units[meter] = min(units[meter], cap)
    return replace(q, units=units, **changes)


def _breakdowns(parts: Mapping[str, Part], revenue: Mapping[str, Decimal], currency: str) -> dict[str, Breakdown]:
    out = {}
    for name in sorted(set(parts) | set(revenue)):
        part = parts.get(name) or Part(Quantities(), Quantities(), Decimal(0))  # a name only revenue has
        income = revenue.get(name, Decimal(0))
        out[name] = Breakdown(billable=part.billable, invoiced=part.invoiced, revenue=income, cost_usd=part.cost_usd,
                              margin=income - part.cost_usd if currency == "USD" else None)
    return out
