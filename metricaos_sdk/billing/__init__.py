"""Billing: what the customer sees — plans with prices, seats, adjustments, the four stages and pricing experiments.

Built on the event model and the stores only (never the meter or the wrappers)::

    plans.py          PricePlan, Charge, CreditPack: base price, seats, included allowance, overage, packs
    subscriptions.py  the plan catalogue and each customer's plan and seats over time (seat proration)
    ledger.py         the append-only adjustments ledger (credit notes, refunds, grants, packs, exclusions, reversals)
    aggregate.py      Quantities, Group, and the GROUP BY over a period's events, summed exactly in SQLite
    rollup.py         the same groups read from the per-day rollup (m009), what it lacks from the events
    totals.py         a customer's period summed once, whatever the plan (stages, breakdowns, charge usage)
    invoice.py        the four stages (raw → metered → billable → invoiced) as invoice lines, margins
    rating.py         candidate credit rules as SQL (a replay's re-rating)
    replay.py         pricing experiments over recorded history
    billing.py        Billing: the facade over one database

See ``docs/billing.md``.
"""

from .aggregate import Group, Quantities
from .billing import Billing
from .invoice import Breakdown, ChargeResult, EventFilter, Invoice, InvoiceLine, Stages, compute_invoice
from .ledger import ADJUSTMENT_KINDS, Adjustment, Ledger
from .periods import resolve_period
from .plans import BUILTIN_METERS, Charge, CreditPack, PricePlan
from .replay import Replay, ReplayResult
from .subscriptions import PlanCatalog, Subscription, Subscriptions, seat_days

__all__ = [
    "ADJUSTMENT_KINDS",
    "BUILTIN_METERS",
    "Adjustment",
    "Billing",
    "Breakdown",
    "Charge",
    "ChargeResult",
    "CreditPack",
    "EventFilter",
    "Group",
    "Invoice",
    "InvoiceLine",
    "Ledger",
    "PlanCatalog",
    "PricePlan",
    "Quantities",
    "Replay",
    "ReplayResult",
    "Stages",
    "Subscription",
    "Subscriptions",
    "compute_invoice",
    "resolve_period",
    "seat_days",
]
