"""What a product shows its own customer: ``metricaos usage CUSTOMER`` and the dashboard's customer page.

Allowance, used, remaining and overage come from the quota store's limits (:class:`LimitStatus`, passed in by the
caller: :func:`limits_for` reads them from a SQLite file); the breakdowns — by feature, by user, by day — and
the recent actions from SQL aggregates over the period's billable events. The billing period is the main
limit's (so the reset date is the limit's), else the calendar month (UTC).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from ..formatting import quantity, usd
from .exact import tidy
from .source import EventSource
from .summary import LimitStatus
from .usage_report import NONE, Filters, ReportRow, Sums, fold, grouped_sums, total_of

__all__ = ["CustomerUsage", "RecentAction", "customer_usage", "limits_for"]


@dataclass(frozen=True)
class RecentAction:
    """One of the customer's latest actions (outermost ones): when, what, how many calls, credits and AI cost."""

    at: datetime
    name: str
    calls: int
    credits: Decimal | None
    cost_usd: Decimal | None

    def as_json(self) -> dict[str, Any]:
        return {"at": self.at.isoformat(), "name": self.name, "calls": self.calls,
                "credits": None if self.credits is None else str(self.credits),
                "cost_usd": None if self.cost_usd is None else str(self.cost_usd)}


@dataclass(frozen=True)
class CustomerUsage:
    """A customer's billable usage in the current billing period, with their limits and what happens at them."""

    customer_id: str
    plan: str | None
    period: str
    period_start: datetime
    period_end: datetime
    """When the period ends and the allowance resets."""
    now: datetime
    limits: list[LimitStatus]
    unit: str
    """The unit of ``allowance``, ``used``, ``remaining`` and ``projected``: the main limit's, else ``tokens``."""
    allowance: Decimal | None
    used: Decimal
    remaining: Decimal | None
    overage: Decimal
    projected: Decimal | None
    """``used`` at the period's end if the run rate so far holds."""
    at_limit: str
    """What happens at the main limit: ``hard`` (calls refused), ``soft`` (allowed, reported), ``overage``
    (allowed, billed at the overage price) or ``none`` (no limit)."""
    at_limit_text: str
    totals: Sums
    by_feature: list[ReportRow]
    by_user: list[ReportRow]
    by_day: list[ReportRow]
    """Every day of the period up to today, days without usage included."""
    recent_actions: list[RecentAction] = field(default_factory=list)

    @property
    def used_share(self) -> float | None:
        """``used / allowance`` (None without a limit)."""
        if not self.allowance:
            return None
        return float(self.used / self.allowance)

    def as_json(self, *, include_cost: bool = True) -> dict[str, Any]:
        """JSON-ready (money, credits and amounts as exact decimal strings): what ``metricaos usage --json``
        prints. ``include_cost=False`` leaves out what the calls cost *you* (``cost_usd`` everywhere, unless the
        allowance, used and remaining, which are in the limit's unit): what the dashboard serves a customer's token
        (``/api/customer``) and ``metricaos usage --customer-view`` prints."""
        def text(value: Decimal | None) -> str | None:
            return None if value is None else str(value)

        out = {
            "customer_id": self.customer_id, "plan": self.plan, "period": self.period,
            "period_start": self.period_start.isoformat(), "period_end": self.period_end.isoformat(),
            "now": self.now.isoformat(), "unit": self.unit, "allowance": text(self.allowance), "used": str(self.used),
            "remaining": text(self.remaining), "overage": str(self.overage), "projected": text(self.projected),
            "at_limit": self.at_limit, "at_limit_text": self.at_limit_text,
            "limits": [lim.model_dump(mode="json") for lim in self.limits],
            "totals": self.totals.as_json(),
            "by_feature": [_row(r) for r in self.by_feature], "by_user": [_row(r) for r in self.by_user],
            "by_day": [_row(r) for r in self.by_day],
            "recent_actions": [a.as_json() for a in self.recent_actions],
        }
        return out if include_cost else _without_cost(out)

    def __str__(self) -> str:
        return self.text()

    def text(self, *, include_cost: bool = True) -> str:
        """The view as text (``metricaos usage``); ``include_cost=False`` leaves out what the calls cost you."""
        def amount(value: Decimal | None) -> str:
            if value is None:
                return "no limit"
            return usd(value) if self.unit == "cost_usd" else f"{quantity(value)} {self.unit}"

        plan = f" on {self.plan}" if self.plan else ""
        lines = [f"{self.customer_id}{plan} — {self.period_start:%Y-%m-%d} to {self.period_end:%Y-%m-%d} "
                 f"(resets {self.period_end:%Y-%m-%d %H:%M} UTC)"]
        if self.allowance is not None:
            lines.append(f"  used {amount(self.used)} of {amount(self.allowance)}, {amount(self.remaining)} left"
                         + (f", {amount(self.overage)} over" if self.overage else ""))
        else:
            lines.append(f"  used {amount(self.used)} (no limit)")
        if self.projected is not None:
            lines.append(f"  projected by the period's end: {amount(self.projected)}")
        lines.append(f"  at the limit: {self.at_limit_text}")
        t = self.totals
        cost = f"{usd(t.cost_usd)} AI cost, " if include_cost else ""
        lines.append(f"  {t.requests:,} calls, {t.total_tokens:,} tokens, {cost}{quantity(t.credits)} credits")
        for title, rows in (("by feature", self.by_feature), ("by user", self.by_user)):
            for r in rows:
                lines.append(f"  {title} {r.key}: {r.billable.requests:,} calls, {r.billable.total_tokens:,} tokens, "
                             f"{quantity(r.billable.credits)} credits")
        for a in self.recent_actions:
            lines.append(f"  action {a.name} at {a.at:%Y-%m-%d %H:%M}: {a.calls} calls"
                         + (f", {quantity(a.credits)} credits" if a.credits is not None else ""))
        return "\n".join(lines)


def _without_cost(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_cost(v) for k, v in value.items() if k != "cost_usd"}
    if isinstance(value, list):
        return [_without_cost(v) for v in value]
    return value


def _row(r: ReportRow) -> dict[str, Any]:
    return {"key": r.key, **r.billable.as_json()}


def _month(now: datetime) -> tuple[datetime, datetime]:
    start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    end = start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)
    return start, end


def _unit_amount(unit: str, sums: Sums) -> Decimal:
    return {"tokens": Decimal(sums.total_tokens), "requests": Decimal(sums.requests), "cost_usd": sums.cost_usd,
            "credits": sums.credits}.get(unit, Decimal(sums.total_tokens))


_AT_LIMIT = {
    "hard": "at {allowance} further calls are refused until the allowance resets on {reset}.",
    "soft": "past {allowance}, calls go on and the usage over it is reported; nothing is refused.",
    "overage": "past {allowance}, calls go on and the usage over it is billed at the plan's overage price.",
    "none": "no limit is set: usage is not capped.",
}


def customer_usage(source: EventSource, customer_id: str, *, now: datetime | None = None,
                   limits: Sequence[LimitStatus] = (), plan: str | None = None, recent: int = 10) -> CustomerUsage:
    """``customer_id``'s usage in the current billing period (the main limit's, else the calendar month)."""
    now = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
    limits = list(limits)
    main = next((lim for lim in limits if lim.feature is None), limits[0] if limits else None)
    if main is not None and main.period_start is not None:
        start, end, period = main.period_start, main.resets_at, main.period
    else:
        (start, end), period = _month(now), "month"
    filters = Filters(since=start, until=min(end, now + timedelta(microseconds=1)), customer=customer_id,
                      billable=True)
    totals = total_of(fold(grouped_sums(source, "customer", filters)).values()).billable
    by_feature = _ordered(fold(grouped_sums(source, "feature", filters)))
    by_user = _ordered(fold(grouped_sums(source, "user", filters)))
    days = fold(grouped_sums(source, "day", filters))
    by_day = []
    day = start.date()
    while day <= min(end - timedelta(microseconds=1), now).date():
        by_day.append(days.get(day.isoformat(), ReportRow(day.isoformat())))
        day += timedelta(days=1)
    if main is not None:
        unit = main.unit
        allowance, used = Decimal(main.limit), Decimal(main.used)
        remaining, overage = Decimal(main.remaining), Decimal(main.overage)
        projected = None if main.projected is None else Decimal(main.projected)
        at_limit = main.mode if main.mode in _AT_LIMIT else "hard"
    else:
        unit, allowance, remaining, overage, at_limit = "tokens", None, None, Decimal(0), "none"
        used = _unit_amount(unit, totals)
        elapsed = max((now - start).total_seconds(), 1.0)
        projected = Decimal(int(used * Decimal((end - start).total_seconds()) / Decimal(elapsed)))
    shown = "no limit" if allowance is None else (usd(allowance) if unit == "cost_usd" else f"{quantity(allowance)} {unit}")
    text = _AT_LIMIT[at_limit].format(allowance=shown, reset=f"{end:%Y-%m-%d %H:%M} UTC")
    text = text[0].upper() + text[1:]
    return CustomerUsage(
        customer_id=customer_id, plan=plan, period=period, period_start=start, period_end=end, now=now,
        limits=limits, unit=unit, allowance=allowance, used=tidy(used), remaining=remaining, overage=overage,
        projected=projected, at_limit=at_limit, at_limit_text=text, totals=totals, by_feature=by_feature,
        by_user=by_user, by_day=by_day, recent_actions=_recent_actions(source, filters, recent),
    )


def _ordered(rows: dict[str, ReportRow]) -> list[ReportRow]:
    return sorted(rows.values(), key=lambda r: (-r.billable.credits, -r.billable.total_tokens, r.key))


def _recent_actions(source: EventSource, filters: Filters, limit: int) -> list[RecentAction]:
    where, params = filters.where(source)
    rows = source.query(
        f"SELECT timestamp, action_name, action_calls, credits, cost_usd FROM {source.table} {where} "
        f"AND event_type = 'action' AND parent_action_id IS NULL ORDER BY timestamp DESC LIMIT {int(limit)}", params)
    out = []
    for at, name, calls, credits, cost in rows:
        moment = at if isinstance(at, datetime) else datetime.fromisoformat(at)
        out.append(RecentAction(at=moment.astimezone(timezone.utc), name=name or NONE, calls=int(calls or 0),
                                credits=None if credits is None else Decimal(credits),
                                cost_usd=None if cost is None else Decimal(cost)))
    return out


def limits_for(database: str | os.PathLike[str], customer_id: str,
               now: datetime | None = None) -> tuple[str | None, list[LimitStatus]]:
    """The customer's plan and limits from the SQLite quota tables of ``database`` (what ``meter.usage()`` shows);
    ``(None, [])`` when they have none."""
    from ..quota.statuses import stored_limits

    return stored_limits(database, customer_id, (now or datetime.now(timezone.utc)).astimezone(timezone.utc))
