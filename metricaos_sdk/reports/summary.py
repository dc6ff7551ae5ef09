"""The customer usage summary: what ``meter.usage(customer_id)`` returns."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal

from pydantic import BaseModel, ConfigDict

from ..events import PRODUCT_EVENT_TYPES, UsageEvent
from ..formatting import cost, count, plural, quantity, usd, usd_per_call

__all__ = ["LimitStatus", "Totals", "UsageSummary", "combine", "summarize", "totals_text"]

Number = int | Decimal


class Totals(BaseModel):
    """Billable usage of a group of calls."""

    model_config = ConfigDict(frozen=True)

    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    reasoning_tokens: int = 0
    total_tokens: int = 0
    cost_usd: Decimal = Decimal(0)
    unpriced_requests: int = 0
    """Calls whose model had no price: their tokens count, their cost is not in ``cost_usd``."""
    credits: Decimal = Decimal(0)
    """Credits charged by the credit rules (0 when none apply)."""
    overage_cost_usd: Decimal = Decimal(0)
    """What the usage beyond an overage plan's allowance costs at the plan's overage price."""


class LimitStatus(BaseModel):
    """One limit of the customer in the current period, as the quota store counts it."""

    model_config = ConfigDict(frozen=True)

    unit: str
    period: str
    limit: Number
    """The allowance, grants included."""
    used: Number
    """Settled usage of finished calls."""
    remaining: Number
    """``limit - used - reserved``, never negative."""
    resets_at: datetime
    period_start: datetime | None = None
    reserved: Number = 0
    """Held by calls in flight (their estimates, until they settle)."""
    overage: Number = 0
    """Usage beyond ``limit`` (soft and overage plans, or calls larger than their estimate)."""
    projected: Number | None = None
    """``used`` at the end of the period if the run rate so far holds."""
    feature: str | None = None
    """Set for a per-feature sub-limit."""
    mode: str = "hard"
    source: str = "plan"
    """``"plan"``, or ``"own"`` for a limit set with ``meter.set_quota``."""
    granted: Number = 0
    """Part of ``limit`` that comes from active grants."""


class UsageSummary(BaseModel):
    """A customer's usage in one period: plan, every limit, totals and the breakdowns a usage page shows.

    ``allowance``, ``used``, ``reserved``, ``remaining``, ``overage`` and ``projected`` are those of the
    first limit (the plan's main allowance — credits first — else the customer's own limits).
    """

    model_config = ConfigDict(frozen=True)

    customer_id: str
    period: str
    period_start: datetime
    period_end: datetime
    limits: list[LimitStatus]
    totals: Totals
    by_feature: dict[str, Totals]
    by_model: dict[str, Totals]
    by_day: dict[str, Totals]
    by_user: dict[str, Totals] = {}
    plan: str | None = None

    @property
    def limit(self) -> Number | None:
        """The first limit's allowance, or None when the customer has none."""
        return self.limits[0].limit if self.limits else None

    @property
    def allowance(self) -> Number | None:
        """Same as :attr:`limit`."""
        return self.limit

    @property
    def used(self) -> Number:
        return self.limits[0].used if self.limits else self.totals.total_tokens

    @property
    def reserved(self) -> Number:
        return self.limits[0].reserved if self.limits else 0

    @property
    def remaining(self) -> Number | None:
        return self.limits[0].remaining if self.limits else None

    @property
    def overage(self) -> Number:
        return self.limits[0].overage if self.limits else 0

    @property
    def projected(self) -> Number | None:
        """The first limit's end-of-period use at the period's run rate so far (None without limits)."""
        if self.limits:
            return self.limits[0].projected
        return None

    @property
    def cost_usd(self) -> Decimal:
        return self.totals.cost_usd

    @property
    def credits(self) -> Decimal:
        return self.totals.credits

    def __str__(self) -> str:
        """The summary as text (numbers by the rule of :mod:`metricaos_sdk.formatting`): a header, one line
        per limit, one per feature and per model, and the total."""
        plan = f" on {self.plan}" if self.plan else ""
        lines = [f"{self.customer_id}{plan} — {self.period} {self.period_start:%Y-%m-%d} to {self.period_end:%Y-%m-%d}"]
        lines += [f"  {_limit_text(lim)}" for lim in self.limits]
        for name, g in self.by_feature.items():
            lines.append(f"  by feature {name}: {totals_text(g, split=False)}")
        for name, g in self.by_model.items():
            lines.append(f"  by model {name}: {totals_text(g, split=False, per_call=True)}")
        lines.append(f"  total: {totals_text(self.totals)}")
        return "\n".join(lines)


def totals_text(t: Totals, *, split: bool = True, per_call: bool = False) -> str:
    """``18 calls, 759 tokens (327 in, 432 out), cost $0.01 + 2 unpriced calls, 50 credits``.

    ``split=False`` leaves out the in/out split; ``per_call`` adds the average cost of a priced call.
    Cached and reasoning tokens are shown (as parts of input and output) when there are any.
    """
    text = f"{plural(t.requests, 'call')}, {count(t.total_tokens)} tokens"
    if split:
        cached = f" incl. {count(t.cached_input_tokens)} cached" if t.cached_input_tokens else ""
        reasoning = f" incl. {count(t.reasoning_tokens)} reasoning" if t.reasoning_tokens else ""
        text += f" ({count(t.input_tokens)} in{cached}, {count(t.output_tokens)} out{reasoning})"
    text += ", " + cost(t.cost_usd, t.unpriced_requests, t.requests)
    priced = t.requests - t.unpriced_requests
    if per_call and priced > 0:
        text += f" ({usd_per_call(t.cost_usd / priced)} a call)"
    if t.overage_cost_usd:
        text += f", overage {usd(t.overage_cost_usd)}"
    if t.credits:
        text += f", {quantity(t.credits)} credits"
    return text


def _limit_text(lim: LimitStatus) -> str:
    """``limit tokens: used 759 of 20,000, 19,241 left, resets 2027-01-01 00:00 UTC, projected 1,519 by then``."""
    def amount(value: Number) -> str:
        return usd(value) if lim.unit == "cost_usd" else quantity(value)

    scope = ", ".join(part for part in (lim.feature, lim.mode if lim.mode != "hard" else None) if part)
    granted = f" (incl. {amount(lim.granted)} granted)" if lim.granted else ""
    held = f", {amount(lim.reserved)} held" if lim.reserved else ""
    over = f", {amount(lim.overage)} over" if lim.overage else ""
    projected = ""
    if lim.projected is not None:
        projected = f", projected {amount(lim.projected)} by then" + (" (over the limit)" if lim.projected > lim.limit else "")
    return (f"limit {lim.unit}{f' ({scope})' if scope else ''}: used {amount(lim.used)} of {amount(lim.limit)}{granted}"
            f"{held}{over}, {amount(lim.remaining)} left, resets {lim.resets_at:%Y-%m-%d %H:%M} UTC{projected}")


def combine(groups: Iterable[Totals]) -> Totals:
    """The exact sum of several totals (e.g. every customer's: a grand total)."""
    out = Totals()
    for t in groups:
        out = Totals(**{name: getattr(out, name) + getattr(t, name) for name in Totals.model_fields})
    return out


def _add(totals: Totals, e: UsageEvent) -> Totals:
    if e.event_type in PRODUCT_EVENT_TYPES:  # an action's cost is its calls' (counted with them): credits only
        return totals.model_copy(update={"credits": totals.credits + (e.credits or 0),
                                         "overage_cost_usd": totals.overage_cost_usd + (e.overage_cost_usd or 0)})
    return Totals(
        requests=totals.requests + 1,
        input_tokens=totals.input_tokens + e.input_tokens,
        output_tokens=totals.output_tokens + e.output_tokens,
        cached_input_tokens=totals.cached_input_tokens + e.cached_input_tokens,
        reasoning_tokens=totals.reasoning_tokens + e.reasoning_tokens,
        total_tokens=totals.total_tokens + e.total_tokens,
        cost_usd=totals.cost_usd + (e.cost_usd or 0),
        unpriced_requests=totals.unpriced_requests + (e.cost_usd is None),
        credits=totals.credits + (e.credits or 0),
        overage_cost_usd=totals.overage_cost_usd + (e.overage_cost_usd or 0),
    )


def summarize(
    customer_id: str,
    period: str,
    bounds: tuple[datetime, datetime],
    events: Iterable[UsageEvent],
    limits: list[LimitStatus],
    *,
    plan: str | None = None,
) -> UsageSummary:
    """Fold a period's events (billable ones only) and the limit statuses into a summary."""
    totals = Totals()
    by_feature: dict[str, Totals] = {}
    by_model: dict[str, Totals] = {}
    by_day: dict[str, Totals] = {}
    by_user: dict[str, Totals] = {}
    for e in events:
        if not e.billable:
            continue
        totals = _add(totals, e)
        for groups, key in (
            (by_feature, e.feature or "(none)"),
            (by_model, e.model or ("(unknown)" if e.event_type not in PRODUCT_EVENT_TYPES else "(no model)")),
            (by_day, e.timestamp.date().isoformat()),
            (by_user, e.user_id or "(none)"),
        ):
            groups[key] = _add(groups.get(key, Totals()), e)
    return UsageSummary(
        customer_id=customer_id, period=period, period_start=bounds[0], period_end=bounds[1], limits=limits,
        totals=totals, by_feature=by_feature, by_model=by_model, by_day=by_day, by_user=by_user, plan=plan,
    )
