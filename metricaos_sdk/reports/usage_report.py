"""``metricaos report``: usage grouped by customer, user, feature, model, provider, day, hour or action.

One SQL aggregate over the events table (grouped by the key, the billable flag and whether the event is an LLM
call), folded into a :class:`ReportRow` per key with billable and non-billable usage apart. The sums follow the
rule of :func:`~metricaos_sdk.reports.summarize` (what ``meter.usage()`` shows), so the two agree: LLM calls count
requests, tokens and cost; actions, custom usage and outcomes add their credits only (an action's cost is the
cost of its calls, already counted with them).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, fields, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from ..errors import ConfigurationError
from ..events import PRODUCT_EVENT_TYPES
from .exact import tidy
from .source import EventSource

__all__ = ["DIMENSIONS", "Filters", "ReportRow", "Sums", "UsageReport", "usage_report"]

NONE = "(none)"

DIMENSIONS: dict[str, str | None] = {
    "customer": "customer_id", "user": "user_id", "feature": "feature", "model": "model", "provider": "provider",
    "environment": "environment", "action": "action_name", "day": None, "hour": None,
}
"""What a report can be grouped by, and the column each reads (``day`` and ``hour`` are the UTC day and hour)."""

_PRODUCT = "(" + ", ".join(f"'{t}'" for t in sorted(PRODUCT_EVENT_TYPES)) + ")"


@dataclass(frozen=True)
class Filters:
    """Which events a report reads: each field set narrows it (``since`` inclusive, ``until`` exclusive)."""

    since: datetime | None = None
    until: datetime | None = None
    customer: str | None = None
    user: str | None = None
    feature: str | None = None
    model: str | None = None
    provider: str | None = None
    environment: str | None = None
    status: str | None = None
    """``ok``, ``error`` or ``cancelled``."""
    billable: bool | None = None

    def where(self, source: EventSource) -> tuple[str, list[Any]]:
        """SQL conditions (``WHERE …`` or ``""``) and their parameters."""
        if self.status is not None and self.status not in ("ok", "error", "cancelled"):
            raise ConfigurationError(f"status {self.status!r} is not a call status: use ok, error or cancelled.")
        if self.since is not None and self.until is not None and self.until <= self.since:
            raise ConfigurationError(f"until ({self.until.isoformat()}) is not after since ({self.since.isoformat()}): "
                                     f"swap them, or widen the range.")
        conditions, params = [], []
        if self.since is not None:
            conditions.append("timestamp >= ?")
            params.append(source.moment(self.since))
        if self.until is not None:
            conditions.append("timestamp < ?")
            params.append(source.moment(self.until))
        for name, column in (("customer", "customer_id"), ("user", "user_id"), ("feature", "feature"),
                             ("model", "model"), ("provider", "provider"), ("environment", "environment"),
                             ("status", "status")):
            value = getattr(self, name)
            if value is not None:
                conditions.append(f"{column} = ?")
                params.append(value)
        if self.billable is not None:
            conditions.append("billable = ?")
            params.append(self.billable if source.dialect == "postgres" else int(self.billable))
        return ("WHERE " + " AND ".join(conditions) if conditions else ""), params


@dataclass(frozen=True)
class Sums:
    """Usage of a group of events. Requests, tokens and cost count LLM calls; credits count every event."""

    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    total_tokens: int = 0
    cost_usd: Decimal = Decimal(0)
    """Exact; calls without a price add nothing (they are counted in ``unpriced_requests``)."""
    credits: Decimal = Decimal(0)
    unpriced_requests: int = 0
    estimated_requests: int = 0
    """Calls whose tokens were estimated (the provider reported no usage: an abandoned or failed stream)."""
    failed_requests: int = 0
    """Calls that ended in an error or were cancelled."""
    events: int = 0
    """Every event of the group: calls, actions, custom usage, outcomes."""

    def __add__(self, other: Sums) -> Sums:
        return Sums(**{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)})

    @property
    def unpriced_share(self) -> float:
        """Share of calls with no price (0 when there are none)."""
        return self.unpriced_requests / self.requests if self.requests else 0.0

    @property
    def estimated_share(self) -> float:
        """Share of calls with estimated usage (0 when there are none)."""
        return self.estimated_requests / self.requests if self.requests else 0.0

    def as_json(self) -> dict[str, Any]:
        """JSON-ready: money and credits as exact decimal strings."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            out[f.name] = str(value) if isinstance(value, Decimal) else value
        return out


@dataclass(frozen=True)
class ReportRow:
    """One key of a report (a customer, a model, a day …): its billable and non-billable usage."""

    key: str
    billable: Sums = field(default_factory=Sums)
    non_billable: Sums = field(default_factory=Sums)

    @property
    def total(self) -> Sums:
        return self.billable + self.non_billable

    def as_json(self) -> dict[str, Any]:
        return {"key": self.key, "billable": self.billable.as_json(), "non_billable": self.non_billable.as_json(),
                "total": self.total.as_json()}


@dataclass(frozen=True)
class UsageReport:
    """Usage grouped by one dimension: rows (largest cost first; by time for ``day`` and ``hour``) and the total."""

    by: str
    filters: Filters
    rows: list[ReportRow]
    total: ReportRow

    def as_json(self) -> dict[str, Any]:
        f = self.filters
        return {"by": self.by, "since": f.since.isoformat() if f.since else None,
                "until": f.until.isoformat() if f.until else None,
                "filters": {k: v for k, v in ((x.name, getattr(f, x.name)) for x in fields(f))
                            if v is not None and k not in ("since", "until")},
                "rows": [r.as_json() for r in self.rows], "total": self.total.as_json(),
                "unpriced_share": round(self.total.total.unpriced_share, 6),
                "estimated_share": round(self.total.total.estimated_share, 6)}


def key_expression(source: EventSource, by: str) -> str:
    """SQL: the grouping key of dimension ``by``."""
    if by not in DIMENSIONS:
        raise ConfigurationError(f"--by {by!r} is not a dimension: use one of {', '.join(DIMENSIONS)}.")
    if by == "day":
        return source.day()
    if by == "hour":
        return source.hour()
    return DIMENSIONS[by]  # type: ignore[return-value]


def grouped_sums(source: EventSource, key_sql: str, filters: Filters) -> dict[tuple[Any, bool], Sums]:
    """:class:`Sums` per (key, billable) for the events ``filters`` selects, with ``key_sql`` as the key."""
    where, params = filters.where(source)
    cost = source.cost_sum()
    credits = source.credit_sum()
    call = f"(event_type NOT IN {_PRODUCT})"
    billable = "billable" if source.dialect == "postgres" else "billable = 1"
    sql = (f"SELECT {key_sql} AS k, {billable} AS b, {call} AS c, count(*), sum(input_tokens), sum(output_tokens), "
           f"sum(cached_input_tokens), sum(cache_write_tokens), sum(reasoning_tokens), sum(total_tokens), "
           f"sum(CASE WHEN cost_usd IS NULL THEN 1 ELSE 0 END), "
           f"sum(CASE WHEN usage_status = 'estimated' THEN 1 ELSE 0 END), "
           f"sum(CASE WHEN status <> 'ok' THEN 1 ELSE 0 END), {', '.join(cost.aggregates)}, "
           f"{', '.join(credits.aggregates)} FROM {source.table} {where} GROUP BY 1, 2, 3")
    rows = source.query(sql, params)
    n_cost = len(cost.aggregates)
    out: dict[tuple[Any, bool], Sums] = {}
    slow_cost = slow_credits = False
    for row in rows:
        key, is_billable, is_call = row[0], bool(row[1]), bool(row[2])
        count, inp, outp, cached, write, reasoning, total, unpriced, estimated, failed = row[3:13]
        cost_value, cost_left = cost.value(tuple(row[13:13 + n_cost]))
        credit_value, credits_left = credits.value(tuple(row[13 + n_cost:]))
        slow_cost |= bool(cost_left)
        slow_credits |= bool(credits_left)
        if is_call:
            sums = Sums(requests=int(count), input_tokens=int(inp), output_tokens=int(outp),
                        cached_input_tokens=int(cached), cache_write_tokens=int(write),
                        reasoning_tokens=int(reasoning), total_tokens=int(total), cost_usd=cost_value,
                        credits=credit_value, unpriced_requests=int(unpriced), estimated_requests=int(estimated),
                        failed_requests=int(failed), events=int(count))
        else:  # an action's (or custom usage's) tokens and cost are its calls': only its credits are its own
            sums = Sums(credits=credit_value, events=int(count))
        slot = (key, is_billable)
        out[slot] = out[slot] + sums if slot in out else sums
    if slow_cost or slow_credits:
        _add_slow_rows(source, key_sql, filters, out, cost=slow_cost, credits=slow_credits)
    return out


def _add_slow_rows(source: EventSource, key_sql: str, filters: Filters, out: dict[tuple[Any, bool], Sums], *,
                   cost: bool, credits: bool) -> None:
    """Sum, as ``Decimal``, the few amounts the SQL integer sums left out (see :mod:`.exact`)."""
    where, params = filters.where(source)
    billable = "billable" if source.dialect == "postgres" else "billable = 1"
    call = f"(event_type NOT IN {_PRODUCT})"
    for column, wanted, exact in (("cost_usd", cost, source.cost_sum()), ("credits", credits, source.credit_sum())):
        if not wanted or exact.slow is None:
            continue
        joined = f"{where} AND {exact.slow}" if where else f"WHERE {exact.slow}"
        for key, is_billable, is_call, value in source.query(
                f"SELECT {key_sql}, {billable}, {call}, {column} FROM {source.table} {joined}", params):
            if column == "cost_usd" and not is_call:
                continue
            slot = (key, bool(is_billable))
            add = Sums(cost_usd=Decimal(value)) if column == "cost_usd" else Sums(credits=Decimal(value))
            out[slot] = out[slot] + add if slot in out else add


def _tidy(s: Sums) -> Sums:
    return replace(s, cost_usd=tidy(s.cost_usd), credits=tidy(s.credits))


def fold(grouped: dict[tuple[Any, bool], Sums], *, empty: str = NONE) -> dict[str, ReportRow]:
    """Rows per key from :func:`grouped_sums` (a NULL key becomes ``empty``)."""
    rows: dict[str, ReportRow] = {}
    for (key, is_billable), sums in grouped.items():
        name = empty if key is None else str(key)
        row = rows.get(name, ReportRow(name))
        if is_billable:
            row = replace(row, billable=row.billable + sums)
        else:
            row = replace(row, non_billable=row.non_billable + sums)
        rows[name] = row
    return {k: replace(r, billable=_tidy(r.billable), non_billable=_tidy(r.non_billable)) for k, r in rows.items()}


def total_of(rows: Iterable[ReportRow], key: str = "(all)") -> ReportRow:
    billable, non_billable = Sums(), Sums()
    for r in rows:
        billable, non_billable = billable + r.billable, non_billable + r.non_billable
    return ReportRow(key, _tidy(billable), _tidy(non_billable))


def usage_report(source: EventSource, by: str = "customer", filters: Filters | None = None) -> UsageReport:
    """Usage grouped ``by`` one of :data:`DIMENSIONS`, for the events ``filters`` selects."""
    filters = filters or Filters()
    key_sql = key_expression(source, by)
    rows = fold(grouped_sums(source, key_sql, filters), empty="(unknown)" if by == "model" else NONE)
    ordered = list(rows.values())
    if by in ("day", "hour"):
        ordered.sort(key=lambda r: r.key)
    else:
        ordered.sort(key=lambda r: (-r.total.cost_usd, -r.total.requests, -r.total.credits, r.key))
    return UsageReport(by=by, filters=filters, rows=ordered, total=total_of(ordered))
