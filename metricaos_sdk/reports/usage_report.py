"""``metricaos report``: usage grouped by customer, user, feature, model, provider, day, hour or action.

One SQL aggregate over the events table (grouped by the key, the billable flag and whether the event is an LLM
call), folded into a :class:`ReportRow` per key with billable and non-billable usage apart. The sums follow the
rule of :func:`~metricaos_sdk.reports.summarize` (what ``meter.usage()`` shows), so the two agree: LLM calls count
requests, tokens and cost; actions, custom usage and outcomes add their credits only (an action's cost is the
cost of its calls, already counted with them).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass, field, fields, replace
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from ..errors import ConfigurationError
from ..events import PRODUCT_EVENT_TYPES
from .exact import tidy
from .source import EventSource

__all__ = ["DIMENSIONS", "Filters", "ReportRow", "Sums", "UsageReport", "usage_report", "usage_reports"]

NONE = "(none)"

DIMENSIONS: dict[str, str | None] = {
    "customer": "customer_id", "user": "user_id", "feature": "feature", "model": "model", "provider": "provider",
    "environment": "environment", "action": "action_name", "day": None, "hour": None,
}
"""What a report can be grouped by, and the column each reads (``day`` and ``hour`` are the UTC day and hour)."""

_PRODUCT = "(" + ", ".join(f"'{t}'" for t in sorted(PRODUCT_EVENT_TYPES)) + ")"
_COLUMNS = {"customer": "customer_id", "user": "user_id", "feature": "feature", "model": "model",
            "provider": "provider", "environment": "environment", "status": "status"}
_NARROWING = ("customer", "user", "feature", "model", "provider", "environment")
"""The filters that narrow on a key column (the rollups hold these; ``status`` only the events do)."""
_CALL = f"(event_type NOT IN {_PRODUCT})"
"""SQL: the event is an LLM call (not an action, custom usage or an outcome)."""


def _billable(source: EventSource) -> str:
    """SQL: the billable flag as a boolean (an integer column in SQLite)."""
    return "billable" if source.dialect == "postgres" else "billable = 1"


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
        self.equalities(source, (*_NARROWING, "status"), conditions, params)
        return ("WHERE " + " AND ".join(conditions) if conditions else ""), params

    def equalities(self, source: EventSource, names: Iterable[str], conditions: list[str], params: list[Any]) -> None:
        """Append ``column = ?`` for each of the fields ``names`` that is set, and for ``billable``."""
        for name in names:
            value = getattr(self, name)
            if value is not None:
                conditions.append(f"{_COLUMNS[name]} = ?")
                params.append(value)
        if self.billable is not None:
            conditions.append("billable = ?")
            params.append(self.billable if source.dialect == "postgres" else int(self.billable))


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
    """SQL: the grouping key of dimension ``by`` over the events table."""
    if by not in DIMENSIONS:
        raise ConfigurationError(f"--by {by!r} is not a dimension: use one of {', '.join(DIMENSIONS)}.")
    if by == "day":
        return source.day()
    if by == "hour":
        return source.hour()
    return DIMENSIONS[by]  # type: ignore[return-value]


_ROW_SUMS = ("sum(input_tokens), sum(output_tokens), sum(cached_input_tokens), sum(cache_write_tokens), "
             "sum(reasoning_tokens), sum(total_tokens)")


def _events_query(source: EventSource, by: str, filters: Filters) -> tuple[str, list[Any]]:
    where, params = filters.where(source)
    billable = _billable(source)
    return (f"SELECT {key_expression(source, by)}, {billable}, {_CALL}, count(*), {_ROW_SUMS}, "
            f"sum(CASE WHEN cost_usd IS NULL THEN 1 ELSE 0 END), "
            f"sum(CASE WHEN usage_status = 'estimated' THEN 1 ELSE 0 END), "
            f"sum(CASE WHEN status <> 'ok' THEN 1 ELSE 0 END), {', '.join(source.cost_sum().aggregates)}, "
            f"{', '.join(source.credit_sum().aggregates)} FROM {source.table} {where} GROUP BY 1, 2, 3"), params


def _rollup_query(source: EventSource, by: str, filters: Filters, first_day: date | None,
                  end_day: date | None) -> tuple[str, list[Any]]:
    """The same aggregate over the store's per-day rollup (SQLite's ``report_daily``, migration m011; PostgreSQL's
    ``<table>_daily``, m004_report_rollup), whole UTC days only."""
    rollup = source.rollup
    assert rollup is not None
    table = rollup.users_table if _needs_users(by, filters) else rollup.table
    key = "day" if by == "day" else f"nullif({DIMENSIONS[by]}, {rollup.null})"
    conditions: list[str] = ["1 = 1"]
    params: list[Any] = []
    for condition, value in (("day >= ?", first_day), ("day < ?", end_day)):
        if value is not None:
            conditions.append(condition)
            params.append(rollup.day(value))
    filters.equalities(source, _NARROWING, conditions, params)
    return (f"SELECT {key}, billable, is_call, sum(events), {_ROW_SUMS}, sum(unpriced), sum(estimated), sum(failed), "
            f"{', '.join(rollup.money)} FROM {table} WHERE {' AND '.join(conditions)} GROUP BY 1, 2, 3"), params


_USER_ROLLUP = {"customer", "user", "day"}
"""What the per-user rollup holds (with the billable flag): a report by user, or filtered on one, reads it."""
_MAIN_ROLLUP = {"customer", "feature", "model", "provider", "environment", "action", "day"}


def _needs_users(by: str, filters: Filters) -> bool:
    return by == "user" or filters.user is not None


def _rollup_can(by: str, filters: Filters) -> bool:
    """Whether one of the rollups holds the key ``by`` and every column ``filters`` narrows on."""
    used = {by} | {name for name in _NARROWING if getattr(filters, name) is not None}
    return used <= (_USER_ROLLUP if _needs_users(by, filters) else _MAIN_ROLLUP)


def _midnight(moment: datetime) -> datetime:
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


def _plan(source: EventSource, by: str, filters: Filters) -> list[tuple[str, list[Any]]]:
    """The queries whose rows together cover ``filters``: the rollup for whole UTC days where the source has one
    and the filters allow it (no status, not by hour), the events table for the rest (the part-days at the ends)."""
    key_expression(source, by)
    filters.where(source)  # validated once, whatever the plan
    if source.rollup is None or filters.status is not None or not _rollup_can(by, filters):
        return [_events_query(source, by, filters)]
    since = filters.since.astimezone(timezone.utc) if filters.since else None
    until = filters.until.astimezone(timezone.utc) if filters.until else None
    first = since if since is None or since == _midnight(since) else _midnight(since) + timedelta(days=1)
    end = until if until is None or until == _midnight(until) else _midnight(until)
    if first is not None and end is not None and end <= first:
        return [_events_query(source, by, filters)]  # less than one whole day: the events are few
    queries = [_rollup_query(source, by, filters, first.date() if first else None, end.date() if end else None)]
    if since is not None and first != since:
        queries.append(_events_query(source, by, replace(filters, until=first)))
    if until is not None and end != until:
        queries.append(_events_query(source, by, replace(filters, since=end)))
    return queries


def _sums(is_call: bool, counts: tuple[Any, ...] | list[Any], cost: Decimal, credits: Decimal) -> Sums:
    """A row's :class:`Sums`: ``counts`` are count, the six token sums, unpriced, estimated, failed."""
    count, inp, outp, cached, write, reasoning, total, unpriced, estimated, failed = counts
    if not is_call:  # an action's (or custom usage's) tokens and cost are its calls': only its credits are its own
        return Sums(credits=credits, events=int(count))
    return Sums(requests=int(count), input_tokens=int(inp), output_tokens=int(outp), cached_input_tokens=int(cached),
                cache_write_tokens=int(write), reasoning_tokens=int(reasoning), total_tokens=int(total),
                cost_usd=cost, credits=credits, unpriced_requests=int(unpriced), estimated_requests=int(estimated),
                failed_requests=int(failed), events=int(count))


def grouped_sums(source: EventSource, by: str, filters: Filters) -> dict[tuple[Any, bool], Sums]:
    """:class:`Sums` per (key of dimension ``by``, billable) for the events ``filters`` selects."""
    cost, credits = source.cost_sum(), source.credit_sum()
    n_cost = len(cost.aggregates)
    out: dict[tuple[Any, bool], Sums] = {}
    slow_cost = slow_credits = False
    for sql, params in _plan(source, by, filters):
        for row in source.query(sql, params):
            key, is_billable, is_call = row[0], bool(row[1]), bool(row[2])
            cost_value, cost_left = cost.value(tuple(row[13:13 + n_cost]))
            credit_value, credits_left = credits.value(tuple(row[13 + n_cost:]))
            slow_cost |= bool(cost_left) and bool(is_call)
            slow_credits |= bool(credits_left)
            sums = _sums(is_call, row[3:13], cost_value, credit_value)
            slot = (key, is_billable)
            out[slot] = out[slot] + sums if slot in out else sums
    if slow_cost or slow_credits:
        _add_slow_rows(source, key_expression(source, by), filters, out, cost=slow_cost, credits=slow_credits)
    return out


def _postgres_sums(source: EventSource, dims: list[str], filters: Filters) -> dict[str, dict[tuple[Any, bool], Sums]]:
    """:func:`grouped_sums` for several dimensions in one scan: PostgreSQL's ``GROUPING SETS``."""
    where, params = filters.where(source)
    keys = [key_expression(source, by) for by in dims]
    sets = ", ".join(f"(k{i}, b, c)" for i in range(len(keys)))
    inner = ", ".join(f"{k} AS k{i}" for i, k in enumerate(keys))
    sql = (f"SELECT {', '.join(f'k{i}' for i in range(len(keys)))}, b, c, GROUPING({', '.join(f'k{i}' for i in range(len(keys)))}), "
           f"count(*), sum(input_tokens), sum(output_tokens), sum(cached_input_tokens), sum(cache_write_tokens), "
           f"sum(reasoning_tokens), sum(total_tokens), sum(CASE WHEN cost_usd IS NULL THEN 1 ELSE 0 END), "
           f"sum(CASE WHEN usage_status = 'estimated' THEN 1 ELSE 0 END), sum(CASE WHEN status <> 'ok' THEN 1 ELSE 0 END), "
           f"sum(cost_usd), sum(credits) FROM (SELECT {inner}, billable AS b, (event_type NOT IN {_PRODUCT}) AS c, "
           f"input_tokens, output_tokens, cached_input_tokens, cache_write_tokens, reasoning_tokens, total_tokens, "
           f"cost_usd, usage_status, status, credits FROM {source.table} {where}) AS e GROUP BY GROUPING SETS ({sets})")
    out: dict[str, dict[tuple[Any, bool], Sums]] = {by: {} for by in dims}
    n = len(keys)
    for row in source.query(sql, params):
        grouping = row[n + 2]
        index = next(i for i in range(n) if not grouping & (1 << (n - 1 - i)))  # the one key this row is grouped by
        key, is_billable, is_call = row[index], bool(row[n]), bool(row[n + 1])
        cost, credit = row[n + 13:]
        sums = _sums(is_call, row[n + 3:n + 13], Decimal(cost or 0), Decimal(credit or 0))
        groups = out[dims[index]]
        slot = (key, is_billable)
        groups[slot] = groups[slot] + sums if slot in groups else sums
    return out


def usage_reports(source: EventSource, dims: list[str], filters: Filters | None = None) -> dict[str, UsageReport]:
    """:func:`usage_report` for several dimensions at once: in PostgreSQL one scan of the events (``GROUPING
    SETS``); in SQLite the reports run side by side (:func:`~.source.run_all`)."""
    filters = filters or Filters()
    if source.dialect == "postgres" and source.rollup is None and len(dims) > 1:
        grouped = _postgres_sums(source, dims, filters)
        return {by: _report(by, filters, grouped[by]) for by in dims}
    from .source import run_all

    return run_all({by: functools.partial(usage_report, source, by, filters) for by in dims})


def _add_slow_rows(source: EventSource, key_sql: str, filters: Filters, out: dict[tuple[Any, bool], Sums], *,
                   cost: bool, credits: bool) -> None:
    """Sum, as ``Decimal``, the few amounts the SQL integer sums left out (see :mod:`.exact`)."""
    where, params = filters.where(source)
    billable = _billable(source)
    for column, wanted, exact in (("cost_usd", cost, source.cost_sum()), ("credits", credits, source.credit_sum())):
        if not wanted or exact.slow is None:
            continue
        joined = f"{where} AND {exact.slow}" if where else f"WHERE {exact.slow}"
        for key, is_billable, is_call, value in source.query(
                f"SELECT {key_sql}, {billable}, {_CALL}, {column} FROM {source.table} {joined}", params):
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
    return _report(by, filters, grouped_sums(source, by, filters))


def _report(by: str, filters: Filters, grouped: dict[tuple[Any, bool], Sums]) -> UsageReport:
    rows = fold(grouped, empty="(unknown)" if by == "model" else NONE)
    ordered = list(rows.values())
    if by in ("day", "hour"):
        ordered.sort(key=lambda r: r.key)
    else:
        ordered.sort(key=lambda r: (-r.total.cost_usd, -r.total.requests, -r.total.credits, r.key))
    return UsageReport(by=by, filters=filters, rows=ordered, total=total_of(ordered))
