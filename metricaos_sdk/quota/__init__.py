"""Quotas: plans, credits and limits per customer, reserved before each call and settled after.

Layout: ``amounts`` (units), ``periods`` (calendar and anchored periods, rate windows), ``plans`` (Plan,
RateLimit, Grant), ``credits`` (credit rules), ``policy`` (a customer's limits compiled), ``reservations``
(the admission arithmetic), ``backends/`` (in-memory, SQLite, Redis stores), ``engine`` (reserve and
settle around a call), ``catalog`` (``meter.plans`` / ``meter.customers``), ``alerts``.
"""

from .alerts import QuotaAlert
from .backends import InMemoryQuotaStore, QuotaStore, SQLiteQuotaStore
from .catalog import Customers, Plans
from .credits import CreditRule, CreditRules
from .engine import QuotaEngine
from .limits import Quota, UsageTotals
from .periods import period_bounds
from .plans import Grant, Plan, RateLimit

__all__ = [
    "CreditRule",
    "CreditRules",
    "Customers",
    "Grant",
    "InMemoryQuotaStore",
    "Plan",
    "Plans",
    "Quota",
    "QuotaAlert",
    "QuotaEngine",
    "QuotaStore",
    "RateLimit",
    "SQLiteQuotaStore",
    "UsageTotals",
    "period_bounds",
]
