"""The exception that refuses a call: QuotaExceeded (or RateLimited for rate limits and throttling plans) with
the numbers of the limit that did not fit — and, when the reservation rather than the usage did not fit, how
much of the call's estimate is its output, so the message can say how to make it fit."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from ..errors import QuotaExceeded, RateLimited
from .amounts import from_units
from .estimate import CallEstimate
from .policy import LimitSpec, Policy, RateSpec
from .reservations import Balance

if TYPE_CHECKING:
    from ..wrappers.call import MeteredCall
    from .engine import QuotaEngine

__all__ = ["refusal"]


def refusal(engine: QuotaEngine, policy: Policy, spec: LimitSpec | RateSpec, requested: int, resets_at: datetime,
            bal: Balance, call: MeteredCall | None) -> QuotaExceeded:
    """The exception refusing ``call``: the numbers of the limit that did not fit, and what the call would hold."""
    unit = spec.unit
    numbers: dict[str, Any] = dict(
        customer_id=policy.customer_id, unit=unit, limit=from_units(unit, bal.limit),
        used=from_units(unit, bal.used), reserved=from_units(unit, bal.reserved),
        requested=from_units(unit, requested), resets_at=resets_at,
        plan=policy.plan.name if policy.plan is not None and getattr(spec, "source", "plan") == "plan" else None,
        requested_output_tokens=_output_held(engine, call, unit),
    )
    now = datetime.now(timezone.utc)
    if isinstance(spec, RateSpec):
        return RateLimited(retry_after=(resets_at - now).total_seconds(), period=spec.per, **numbers)
    numbers.update(period=spec.period, feature=spec.feature)
    if spec.mode == "throttle":
        # Held by calls in flight: they settle in seconds. Used up: wait for the period to end.
        wait = 1.0 if bal.used + requested <= bal.limit else (resets_at - now).total_seconds()
        return RateLimited(retry_after=wait, **numbers)
    return QuotaExceeded(**numbers)


def _output_held(engine: QuotaEngine, call: MeteredCall | None, unit: str) -> int:
    """The output tokens inside a refused call's estimate of ``unit`` (what a smaller ``max_tokens`` frees):
    none for requests and per-call credits, whose estimates do not depend on the output, nor for actions and
    custom usage (``call`` None), whose credits are their price."""
    if unit == "requests" or call is None:
        return 0
    if unit == "credits":
        found = engine.credits.get(call.attribution.feature)
        if found is None or found[0].per_call is not None:
            return 0
    return CallEstimate(engine, call).tokens()[1]
