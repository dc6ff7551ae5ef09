"""Which limits apply to a customer, compiled once from their settings into plain specs.

A customer's settings are a JSON document (``{"plan": "starter", "anchor": "...", "limits": {...}}``:
their plan, billing anchor and the limits set with ``meter.set_quota``) and their grants. The compiled
:class:`Policy` is cached by the engine until a setting changes anywhere.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal

from .amounts import to_limit
from .periods import period_bounds
from .plans import Grant, Plan
from .reservations import Bucket

__all__ = ["LimitSpec", "Policy", "RateSpec", "compile_policy"]

NEVER = 4_102_444_800.0  # 2100-01-01: the expiry of what does not expire
RETAIN = 86_400.0  # keep a period's counter a day past its end (clock skew between hosts, late settles)


@dataclass(frozen=True, slots=True)
class LimitSpec:
    """One allowance: ``limit`` (store units) of ``unit`` per ``period``, for one feature or all."""

    source: str  # "plan" or "own" (meter.set_quota)
    unit: str
    limit: int
    period: str
    mode: str
    feature: str | None = None
    alerts: tuple[float, ...] = ()
    overage_price: Decimal | None = None
    anchored: bool = False
    with_grants: bool = False


@dataclass(frozen=True, slots=True)
class RateSpec:
    unit: str
    limit: int
    per: str


@dataclass(frozen=True, slots=True)
class Policy:
    customer_id: str
    plan: Plan | None
    anchor: datetime | None
    limits: tuple[LimitSpec, ...]
    rates: tuple[RateSpec, ...]
    grants: tuple[Grant, ...]
    cache: dict[int, tuple[float, datetime, datetime, tuple[Bucket, ...], int]] = field(
        default_factory=dict, compare=False, repr=False)
    """Per limit: (valid until, period start, end, buckets, overflow index) — the hot path's dict hit."""

    def window(self, index: int, epoch: float) -> tuple[datetime, datetime, tuple[Bucket, ...], int]:
        """``limits[index]``'s period bounds and buckets at ``now``, recomputed only when the period ends
        (or a grant in it expires)."""
        hit = self.cache.get(index)
        if hit is not None and epoch < hit[0]:
            return hit[1], hit[2], hit[3], hit[4]
        spec = self.limits[index]
        now = datetime.fromtimestamp(epoch, timezone.utc)
        start, end = period_bounds(spec.period, now, self.anchor if spec.anchored else None)
        buckets, overflow = self.buckets(spec, start, end, epoch)
        until = min([end.timestamp()] + [b.expires_at for b in buckets if b.key.startswith("grant:")])
        self.cache[index] = (until, start, end, buckets, overflow)
        return start, end, buckets, overflow

    def bounds_anchor(self, spec: LimitSpec) -> datetime | None:
        return self.anchor if spec.anchored else None

    def buckets(self, spec: LimitSpec, start: datetime, end: datetime, now: float) -> tuple[tuple[Bucket, ...], int]:
        """The buckets a demand on ``spec`` draws from, in drawdown order, and the overflow bucket's index."""
        main = Bucket(f"{spec.source}:{spec.unit}:{spec.feature or '*'}:{spec.period}:{int(start.timestamp())}",
                      spec.limit, end.timestamp() + RETAIN)
        if not spec.with_grants:
            return (main,), 0
        entries = [(end.timestamp(), main)]
        for g in self.grants:
            if g.unit == spec.unit and (g.expires_at is None or g.expires_at.timestamp() > now):
                expiry = g.expires_at.timestamp() if g.expires_at else NEVER
                entries.append((expiry, Bucket(f"grant:{g.id}", to_limit(g.unit, g.amount), expiry)))
        entries.sort(key=lambda e: e[0])  # expiring first; stable, so the period wins a tie
        buckets = tuple(b for _, b in entries)
        return buckets, buckets.index(main)


def compile_policy(customer_id: str, doc: str | None, plans: Mapping[str, Plan], grants: list[Grant]) -> Policy | None:
    """The customer's policy, or None when nothing limits them (the no-quota fast path)."""
    data = json.loads(doc) if doc else {}
    plan = plans.get(data.get("plan") or "")
    anchor = datetime.fromisoformat(data["anchor"]).astimezone(timezone.utc) if data.get("anchor") else None
    limits: list[LimitSpec] = []
    rates: list[RateSpec] = []
    grant_units = {g.unit for g in grants}
    if plan is not None:
        price = Decimal(plan.overage_price_usd) if plan.overage_price_usd is not None else None
        for unit in plan.units:
            limits.append(LimitSpec("plan", unit, to_limit(unit, plan.allowance(unit)), plan.period,  # type: ignore[arg-type]
                                    plan.on_limit, None, tuple(plan.alerts), price, plan.anchored,
                                    with_grants=unit in grant_units))
        for feature, spec in plan.features.items():
            for unit, amount in spec.items():  # type: ignore[union-attr]
                limits.append(LimitSpec("plan", unit, to_limit(unit, Decimal(amount)), plan.period, plan.on_limit, feature,
                                        tuple(plan.alerts), price, plan.anchored))
        for rate in plan.rate_limits:
            for unit in ("requests", "tokens"):
                if getattr(rate, unit) is not None:
                    rates.append(RateSpec(unit, int(getattr(rate, unit)), rate.per))
    for unit, own in sorted((data.get("limits") or {}).items()):
        granted = unit in grant_units and not any(s.with_grants and s.unit == unit for s in limits)
        limits.append(LimitSpec("own", unit, to_limit(unit, Decimal(own["limit"])), own["period"], "hard",
                                with_grants=granted))
    if not limits and not rates:
        return None
    return Policy(customer_id, plan, anchor, tuple(limits), tuple(rates), tuple(grants))
