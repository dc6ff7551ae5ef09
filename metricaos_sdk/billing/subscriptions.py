"""Price plans in the store, and each customer's subscription timeline: plan and seats from a moment on.

Both live in the database beside the events (migration m008), so the CLI and every process invoice alike.

**Which plan an invoice uses**: the one in force at the end of the period (the last change before it).
**Seats** are prorated by the day: each UTC day of the period counts the most seats the customer held at
any moment of it, and the seat price and the per-seat allowance are charged for
``seat-days / days in the period`` of a seat — so 10 seats for the first half of a 30-day month and 20 for
the second half is 450 seat-days: 15 seats' worth (a day on which seats were added counts the new number).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

from ..errors import ConfigurationError
from ..storage.database import Database
from .periods import moment
from .plans import PricePlan

__all__ = ["PlanCatalog", "Subscription", "Subscriptions", "seat_days"]


class PlanCatalog:
    """The price plans of one database (``Billing.plans``). A plan is replaced by defining it again."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def define(self, plan: PricePlan) -> PricePlan:
        """Store ``plan`` (replacing one of the same name): invoices use its current definition."""
        if not isinstance(plan, PricePlan):
            raise ConfigurationError(f"Billing.plans.define takes a PricePlan, got {type(plan).__name__}: build one "
                                     "with PricePlan('name', base_price=..., charges=[...]).")
        with self.database.transaction() as conn:
            conn.execute("INSERT OR REPLACE INTO billing_plans (name, definition, defined_at) VALUES (?, ?, ?)",
                         (plan.name, plan.to_json(), datetime.now(timezone.utc).isoformat()))
        return plan

    def get(self, name: str) -> PricePlan | None:
        with self.database.lock:
            row = self.database.connection().execute(
                "SELECT definition FROM billing_plans WHERE name = ?", (name,)).fetchone()
        return PricePlan.from_json(row[0]) if row else None

    def __getitem__(self, name: str) -> PricePlan:
        plan = self.get(name)
        if plan is None:
            names = ", ".join(repr(p.name) for p in self) or "none yet"
            raise ConfigurationError(f"No price plan named {name!r} (defined: {names}): define it with "
                                     f"billing.plans.define(PricePlan({name!r}, ...)).")
        return plan

    def __iter__(self):  # type: ignore[no-untyped-def]
        with self.database.lock:
            rows = self.database.connection().execute("SELECT definition FROM billing_plans ORDER BY name").fetchall()
        return iter([PricePlan.from_json(r[0]) for r in rows])

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None


@dataclass(frozen=True)
class Subscription:
    """From ``effective_at`` on, ``customer_id`` is on ``plan`` (None: no plan) with ``seats`` seats."""

    customer_id: str
    effective_at: datetime
    plan: str | None
    seats: int = 1


class Subscriptions:
    """Each customer's plan and seats over time (``Billing.subscriptions``)."""

    def __init__(self, database: Database, catalog: PlanCatalog) -> None:
        self.database = database
        self.catalog = catalog

    def set(self, customer_id: str, plan: str | None, *, seats: int = 1,
            at: datetime | date | None = None) -> Subscription:
        """Put the customer on ``plan`` with ``seats`` from ``at`` (now) on. Setting the same moment again
        replaces that change; a seat change is ``set(customer, same_plan, seats=n, at=when)``."""
        if not isinstance(customer_id, str) or not customer_id:
            raise ConfigurationError("A subscription needs a customer_id (a non-empty string).")
        if isinstance(seats, bool) or not isinstance(seats, int) or seats < 0:
            raise ConfigurationError(f"seats must be a whole number of seats, 0 or more, got {seats!r}.")
        if plan is not None and plan not in self.catalog:
            raise ConfigurationError(f"No price plan named {plan!r}: define it first with "
                                     f"billing.plans.define(PricePlan({plan!r}, ...)).")
        when = moment(at, "at")
        with self.database.transaction() as conn:
            conn.execute("INSERT OR REPLACE INTO billing_subscriptions (customer_id, effective_at, plan, seats, "
                         "recorded_at) VALUES (?, ?, ?, ?, ?)",
                         (customer_id, when.isoformat(), plan, seats, datetime.now(timezone.utc).isoformat()))
        return Subscription(customer_id, when, plan, seats)

    def timeline(self, customer_id: str) -> list[Subscription]:
        """Every change of the customer's subscription, oldest first."""
        with self.database.lock:
            rows = self.database.connection().execute(
                "SELECT effective_at, plan, seats FROM billing_subscriptions WHERE customer_id = ? ORDER BY effective_at",
                (customer_id,)).fetchall()
        return [Subscription(customer_id, datetime.fromisoformat(t), p, s) for t, p, s in rows]

    def customers(self) -> list[str]:
        with self.database.lock:
            rows = self.database.connection().execute(
                "SELECT DISTINCT customer_id FROM billing_subscriptions ORDER BY customer_id").fetchall()
        return [r[0] for r in rows]

    def at(self, customer_id: str, moment: datetime) -> Subscription | None:
        """The subscription in force just before ``moment`` (an invoice asks at its period's end)."""
        current = None
        for change in self.timeline(customer_id):
            if change.effective_at < moment:
                current = change
        return current

    def dump(self) -> str:
        """Every customer's timeline as JSON (for the CLI's ``--json``)."""
        return json.dumps({c: [[s.effective_at.isoformat(), s.plan, s.seats] for s in self.timeline(c)]
                           for c in self.customers()})


def seat_days(timeline: list[Subscription], start: datetime, end: datetime) -> int:
    """Σ over the UTC days of ``[start, end)`` of the most seats held at any moment of the day (see module)."""
    total = 0
    day = start
    while day < end:
        next_day = min(day + timedelta(days=1), end)
        before = [s for s in timeline if s.effective_at <= day]
        during = [s.seats for s in timeline if day < s.effective_at < next_day]
        held = ([before[-1].seats] if before and before[-1].plan is not None else []) + during
        total += max(held, default=0)
        day = next_day
    return total
