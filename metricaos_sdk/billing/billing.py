"""``Billing``: plans with prices, subscriptions, the adjustments ledger, invoices and replays over one store.

It reads the SQLite file the meter writes (events and quota state) and keeps its own tables there (m008). It
never imports the meter or the wrappers: give it the database path (and ``meter.flush()`` first, so every
event is committed)::

    billing = Billing("metricaos.db")
    billing.plans.define(PricePlan("growth", base_price="99", charges=[Charge("credits", included=10_000,
                                                                             block_price="10", block_size=10_000)]))
    billing.subscriptions.set("cus_1", "growth", at=date(2026, 11, 1))
    print(billing.invoice("cus_1", "2026-11"))
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any

from ..errors import ConfigurationError
from ..quota.credits import CreditRule, CreditRules
from ..storage.database import Database
from .aggregate import Quantities, total
from .invoice import EventFilter, Invoice, InvoiceLine, compute_invoice
from .ledger import Adjustment, Ledger
from .periods import PeriodSpec, resolve_period
from .plans import PricePlan
from .rating import rating_sql
from .replay import Replay, price_history
from .rollup import Rerate, Scope, usage
from .subscriptions import PlanCatalog, Subscriptions, seat_days

__all__ = ["Billing"]


class Billing:
    """Billing over one metricaos database: ``plans``, ``subscriptions``, ``ledger``, ``invoice()``, ``replay()``."""

    def __init__(self, database: Database | str | os.PathLike[str]) -> None:
        if isinstance(database, Database):
            self.database = database
        elif isinstance(database, (str, os.PathLike)):
            self.database = Database(database)
        else:
            raise ConfigurationError(f"Billing takes a database path (the file Meter(path) writes) or a Database, "
                                     f"got {type(database).__name__}.")
        self.plans = PlanCatalog(self.database)
        self.subscriptions = Subscriptions(self.database, self.plans)
        self.ledger = Ledger(self.database)

    # -- convenience ------------------------------------------------------------------------------------
    def subscribe(self, customer_id: str, plan: str | PricePlan | None, *, seats: int = 1,
                  at: datetime | date | None = None) -> None:
        """Put the customer on ``plan`` (a name, or a PricePlan, defined on the way) with ``seats`` from ``at``."""
        if isinstance(plan, PricePlan):
            self.plans.define(plan)
            plan = plan.name
        self.subscriptions.set(customer_id, plan, seats=seats, at=at)

    def buy_pack(self, customer_id: str, pack: str, *, by: str, key: str,
                 applies_at: datetime | date | None = None) -> Adjustment:
        """Record the purchase of the customer's plan's credit pack ``pack`` (price and credits from the plan)."""
        when = applies_at if isinstance(applies_at, datetime) else None
        plan = self._plan_at(customer_id, when or datetime.now().astimezone())
        found = plan.pack(pack)
        return self.ledger.buy_pack(customer_id, pack, credits=found.credits, price=found.price,
                                    currency=plan.currency, by=by, key=key, applies_at=applies_at)

    def _plan_at(self, customer_id: str, moment: datetime) -> PricePlan:
        current = self.subscriptions.at(customer_id, moment)
        if current is None or current.plan is None:
            raise ConfigurationError(f"Customer {customer_id!r} has no price plan at {moment:%Y-%m-%d %H:%M} UTC: "
                                     f"subscribe them first (billing.subscribe({customer_id!r}, 'plan', at=...)) or "
                                     "pass plan= to invoice().")
        return self.plans[current.plan]

    # -- invoices ---------------------------------------------------------------------------------------
    def invoice(self, customer_id: str, period: PeriodSpec, *, plan: PricePlan | str | None = None,
                raw: bool = True) -> Invoice:
        """The customer's invoice for ``period`` (``"2026-11"`` …) under ``plan`` (default: their subscription's
        plan at the period's end). ``raw=False`` skips the store-wide raw stage (one scan of the period)."""
        if not isinstance(customer_id, str) or not customer_id:
            raise ConfigurationError("invoice() needs a customer_id (a non-empty string).")
        kind = plan.period if isinstance(plan, PricePlan) else "month"
        start, end = resolve_period(period, kind=kind)
        price_plan = self._resolve(plan, customer_id, end)
        conn = self.database.connection()
        with self.database.lock:
            groups = usage(conn, start, end, Scope(customer_id=customer_id))
            raw_usage = self._raw(start, end) if raw else None
        return compute_invoice(customer_id, start, end, price_plan, groups,
                               seat_days=self._seat_days(customer_id, start, end), days=_days(start, end),
                               adjustments=self.ledger.entries(customer_id, since=start, until=end), raw=raw_usage)

    def _resolve(self, plan: PricePlan | str | None, customer_id: str, end: datetime) -> PricePlan:
        if isinstance(plan, PricePlan):
            return plan
        if isinstance(plan, str):
            return self.plans[plan]
        if plan is not None:
            raise ConfigurationError(f"plan= is a PricePlan or a plan name, got {type(plan).__name__}.")
        return self._plan_at(customer_id, end)

    def _seat_days(self, customer_id: str, start: datetime, end: datetime) -> int:
        timeline = self.subscriptions.timeline(customer_id)
        if not timeline:
            return _days(start, end)  # no subscription: one seat all period
        return seat_days(timeline, start, end)

    def _raw(self, start: datetime, end: datetime) -> Quantities:
        return total(g.usage for g in usage(self.database.connection(), start, end, adjusted=False))

    def events_of(self, line: InvoiceLine | EventFilter, *, limit: int | None = None) -> list[str]:
        """The ids of the events behind an invoice line (its :class:`EventFilter`), in time order."""
        query = line.events if isinstance(line, InvoiceLine) else line
        if query is None:
            return []
        where, params = query.sql()
        sql = f"SELECT id FROM events WHERE {where} ORDER BY timestamp, id" + (f" LIMIT {int(limit)}" if limit else "")
        with self.database.lock:
            return [r[0] for r in self.database.connection().execute(sql, params).fetchall()]

    # -- experiments ------------------------------------------------------------------------------------
    def replay(self, period: PeriodSpec, plans: Sequence[PricePlan] | PricePlan, *,
               credit_rules: CreditRules | Mapping[str, CreditRule] | None = None,
               customers: Sequence[str] | None = None) -> Replay:
        """Price the period's recorded history again under each candidate plan (and, given ``credit_rules``,
        with every event's credits re-rated under them): per customer, what they would have paid, what it
        cost, the margin, and who would have hit a hard limit, when. No call is made again."""
        candidates = [plans] if isinstance(plans, PricePlan) else list(plans)
        if not candidates or any(not isinstance(p, PricePlan) for p in candidates):
            raise ConfigurationError("replay() needs one or more PricePlan candidates, e.g. "
                                     "replay('2026-11', [PricePlan('a', ...), PricePlan('b', ...)]).")
        if len({p.name for p in candidates}) != len(candidates):
            raise ConfigurationError("replay() candidates need distinct names: results are keyed by plan name.")
        start, end = resolve_period(period, kind=candidates[0].period)
        rerate = (Rerate(rating_sql(credit_rules), rating_sql(credit_rules, rollup=True))
                  if credit_rules is not None else None)
        scope = Scope(customers=list(customers)) if customers is not None else Scope(attributed=True)
        conn = self.database.connection()
        with self.database.lock:
            groups = usage(conn, start, end, scope, rerate=rerate)
            names = sorted({g.customer_id for g in groups if g.customer_id is not None})
            seats = {c: self._seat_days(c, start, end) for c in names}
            adjustments: dict[str, list[Adjustment]] = {}
            for adj in self.ledger.entries(since=start, until=end):
                adjustments.setdefault(adj.customer_id, []).append(adj)
            return price_history(conn, start, end, groups, candidates, seat_days=seats, days=_days(start, end),
                                 adjustments=adjustments, rerate=rerate, scope=scope)

    def close(self) -> None:
        self.database.close()

    def __enter__(self) -> Billing:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _days(start: datetime, end: datetime) -> int:
    """Days in ``[start, end)``, a started day counting whole."""
    seconds = (end - start).total_seconds()
    return max(1, int(-(-seconds // 86400)))
