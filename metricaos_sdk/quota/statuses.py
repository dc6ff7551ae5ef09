"""A customer's limits as the store counts them now, and the use a limit set mid-period starts from.

Off the call path: these read and write through the engine's patient store (``engine.admin``).
"""

from __future__ import annotations

import os
import time
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from ..events import is_llm_call
from ..reports import LimitStatus
from .amounts import SCALE, from_units, to_usage
from .engine import draws_quota
from .periods import period_bounds
from .policy import Policy
from .reservations import Demand

if TYPE_CHECKING:
    from .engine import QuotaEngine

__all__ = ["limit_statuses", "period_keys", "seed", "stored_limits"]


def period_keys(engine: QuotaEngine, customer_id: str) -> set[str]:
    """The current period bucket of each of the customer's limits."""
    policy = engine.policy(customer_id)
    if policy is None:
        return set()
    epoch = time.time()
    return {w[2][w[3]].key for w in (policy.window(i, epoch) for i in range(len(policy.limits)))}

def seed(engine: QuotaEngine, customer_id: str, known: set[str]) -> None:
    """Count the period's earlier billable events into limits that did not exist before (keys not in
    ``known``): a limit set on the 20th sees the month's use so far. Counters only move by settlement,
    so without this they would start at zero. Once per bucket across processes. Never raises."""
    policy = engine.policy(customer_id)
    if policy is None or engine.history is None:
        return
    try:
        epoch = time.time()
        for index, spec in enumerate(policy.limits):
            start, end, buckets, overflow = policy.window(index, epoch)
            main = buckets[overflow]
            if main.key in known or not engine.admin.mark_once(customer_id, f"seed:{main.key}", main.expires_at):
                continue
            events = [e for e in engine.history(customer_id, start, end)
                      if draws_quota(e) and (spec.feature is None or e.feature == spec.feature)]
            calls = [e for e in events if is_llm_call(e)]  # an action's cost is its calls': credits only
            amount = {"requests": len(calls), "tokens": sum(e.total_tokens for e in calls),
                      "cost_usd": to_usage("cost_usd", sum((e.cost_usd or 0 for e in calls), Decimal(0))),
                      "credits": to_usage("credits", sum((e.credits or 0 for e in events), Decimal(0)))}[spec.unit]
            if amount:
                engine.admin.settle(customer_id, f"seed:{main.key}", [Demand(amount, (main,), False)])
    except Exception:
        engine._fault("could not count the period's earlier usage into a new limit")

def limit_statuses(engine: QuotaEngine, customer_id: str, now: datetime) -> tuple[Policy | None, list[LimitStatus]]:
    """Every allowance of the customer as the store counts it now: main limits first, credits first."""
    policy = engine.policy(customer_id)
    if policy is None:
        return None, []
    epoch = now.timestamp()
    rows = []
    for spec in policy.limits:
        start, end = period_bounds(spec.period, now, policy.bounds_anchor(spec))
        buckets, overflow = policy.buckets(spec, start, end, epoch)
        rows.append((spec, start, end, buckets, overflow))
    balances = engine.admin.balances(customer_id, [b for r in rows for b in r[3]])
    out = []
    for spec, start, end, buckets, overflow in rows:
        used = sum(balances[b.key][0] for b in buckets)
        reserved = sum(balances[b.key][1] for b in buckets)
        limit = sum(b.limit for b in buckets)
        elapsed = max((now - start).total_seconds(), 1.0)
        u = spec.unit
        projected = int(used * (end - start).total_seconds() / elapsed) // SCALE[u] * SCALE[u]  # whole units
        out.append(LimitStatus(
            unit=u, period=spec.period, limit=from_units(u, limit), used=from_units(u, used),
            remaining=from_units(u, max(limit - used - reserved, 0)), resets_at=end, period_start=start,
            reserved=from_units(u, reserved), overage=from_units(u, max(used - limit, 0)),
            projected=from_units(u, projected), feature=spec.feature, mode=spec.mode, source=spec.source,
            granted=from_units(u, limit - buckets[overflow].limit),
        ))
    order = {"credits": 0, "tokens": 1, "cost_usd": 2, "requests": 3}
    out.sort(key=lambda s: (s.feature is not None, s.source != "plan", order.get(s.unit, 9)))
    return policy, out


def stored_limits(database: str | os.PathLike[str], customer_id: str, now: datetime) -> tuple[str | None, list[LimitStatus]]:
    """The customer's plan name and limits as the SQLite quota tables of ``database`` count them now: what
    ``meter.usage()`` shows, for readers that have the file but no meter (``metricaos usage``, the dashboard).
    Empty when the customer has no plan and no limit."""
    from ..config import MeterConfig
    from ..pricing.table import RateTable
    from .backends.sqlite import SQLiteQuotaStore
    from .credits import CreditRules
    from .engine import QuotaEngine

    def fault(what: str) -> None:
        raise RuntimeError(what)

    store = SQLiteQuotaStore(database)
    try:
        engine = QuotaEngine(store, config=MeterConfig(database=os.fspath(database)), rates=RateTable.bundled(),
                             credits=CreditRules(), fault=fault)
        policy, limits = limit_statuses(engine, customer_id, now)
        return (policy.plan.name if policy is not None and policy.plan is not None else None), limits
    finally:
        store.close()
