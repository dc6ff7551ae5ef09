"""A period's usage read from the per-day rollup (migration m009) instead of the events, exactly as the events give it.

``billing_daily`` holds, per month, customer, feature, action name, unit, billable flag, kind of event and UTC
day, the counts and sums :class:`~metricaos_sdk.billing.aggregate.Group` needs — kept by a trigger on every
event insert, so reading a month costs one pass over its rollup rows in key order (no sort of the events).
What the rollup does not hold is read from the events, through indexes:

* **exclusions and reversals** — the ledger names event ids: those events are looked up by id, summed the
  same way (:func:`~metricaos_sdk.billing.aggregate.group_usage`) and taken out of their rollup group (they
  become the group's ``adjusted`` part);
* **part-days** — a period that does not start or end at midnight UTC: its first and last part-day are summed
  from the events (by time);
* **inexact sums** — cost, credits and quantities are summed as integers of a small unit; when a value in the
  period has more decimals than that unit (or is too large), the whole period is summed from the events with
  exact decimals instead (the rollup records the largest number of decimal places and magnitude it saw);
* a database opened read-only before m009 was applied: everything from the events.

Re-rating under candidate credit rules reads ``billing_daily_values``: the charged events counted per distinct
set of the values a rule reads (tokens and cost, or quantity), each rated and rounded once — as the meter rounds
each event — and multiplied by its count. It is exact for every rule shape; it saves work when values repeat
(how much depends on the data: with every call's token counts distinct it has a row per charged event, read in
key order all the same).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from .aggregate import GROUP_COLUMNS, Group, group_usage, rows_fit, to_groups

__all__ = ["Rerate", "Scope", "day_totals", "has_rollup", "usage"]

_CALL = "(kind IN ('call', 'call_in_action'))"
_OUTER = "(kind = 'action')"
_MARKER = "typeof({0}) = 'text'"  # a stored NULL key is the integer 0; text keys are the values


@dataclass(frozen=True)
class Rerate:
    """Candidate credit rules as SQL: over an event (``events``) and over a ``billing_daily_values`` row (``rollup``)."""

    events: str
    rollup: str


@dataclass(frozen=True)
class Scope:
    """Which events: one customer, a list of customers, attributed ones only; one feature, unit; billable only."""

    customer_id: str | None = None
    customers: Sequence[str] | None = None
    attributed: bool = False
    feature: str | None = None
    unit: str | None = None
    billable_only: bool = False

    def where(self, *, rollup: bool) -> tuple[list[str], list[Any]]:
        """The filters (``customer_id`` itself excepted on the events: ``group_usage`` takes it) and parameters."""
        where: list[str] = []
        params: list[Any] = []
        if rollup and self.customer_id is not None:
            where.append("customer_id = ?")
            params.append(self.customer_id)
        if self.customers is not None:
            where.append(f"customer_id IN ({', '.join('?' * len(self.customers))})" if self.customers else "0")
            params.extend(self.customers)
        if self.attributed:
            where.append(_MARKER.format("customer_id") if rollup else "customer_id IS NOT NULL")
        for column in ("feature", "unit"):
            value = getattr(self, column)
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        if self.billable_only:
            where.append("billable = 1")
        return where, params


def has_rollup(conn: sqlite3.Connection) -> bool:
    return conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'billing_daily'").fetchone() is not None


def _midnight(moment: datetime, *, up: bool) -> datetime:
    day = moment.astimezone(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    return day + timedelta(days=1) if up and day < moment else day


def _scan(conn: sqlite3.Connection, start: datetime, end: datetime, scope: Scope, *, by_day: bool,
          keys: Sequence[str], rerate: Rerate | None, adjusted: bool,
          source: tuple[str, list[Any]] | None = None) -> list[Group]:
    where, params = scope.where(rollup=False)
    return group_usage(conn, start, end, customer_id=scope.customer_id, by_day=by_day,
                       rerate=(rerate.events, []) if rerate else None, adjusted=adjusted,
                       where=" AND ".join(where), params=params, keys=keys, source=source)


def usage(conn: sqlite3.Connection, start: datetime, end: datetime, scope: Scope | None = None, *,
          by_day: bool = False, keys: Sequence[str] = GROUP_COLUMNS, rerate: Rerate | None = None,
          adjusted: bool = True) -> list[Group]:
    """The groups of ``[start, end)`` in ``scope`` — equal to :func:`~metricaos_sdk.billing.aggregate.group_usage`
    over the events (a test checks it), read from the rollup."""
    scope = scope or Scope()
    first, last = _midnight(start, up=True), _midnight(end, up=False)
    if not has_rollup(conn) or first >= last:
        return _scan(conn, start, end, scope, by_day=by_day, keys=keys, rerate=rerate, adjusted=adjusted)
    groups = _whole_days(conn, first, last, scope, by_day=by_day, keys=keys, rerate=rerate)
    if groups is None:  # a value the integer sums cannot hold exactly: the events, summed exactly
        return _scan(conn, start, end, scope, by_day=by_day, keys=keys, rerate=rerate, adjusted=adjusted)
    if adjusted:
        where, args = (" WHERE customer_id = ?", [scope.customer_id]) if scope.customer_id is not None else ("", [])
        if conn.execute(f"SELECT 1 FROM billing_adjusted_events{where} LIMIT 1", args).fetchone():
            # The named events by id (CROSS JOIN: the ledger's list drives the lookup, never a scan of the period).
            source = (f"(SELECT DISTINCT event_id FROM billing_adjusted_events{where}) AS named "
                      "CROSS JOIN events ON id = event_id")
            named = _scan(conn, first, last, scope, by_day=by_day, keys=keys, rerate=rerate, adjusted=True,
                          source=(source, args))
            groups = _take_out(groups, named)
    edges = [(a, b) for a, b in ((start, first), (last, end)) if a < b]
    for a, b in edges:
        groups += _scan(conn, a, b, scope, by_day=by_day, keys=keys, rerate=rerate, adjusted=adjusted)
    return _combine(groups) if edges else groups


def _key(g: Group) -> tuple[Any, ...]:
    return (g.customer_id, g.feature, g.action_name, g.unit, g.billable, g.adjusted, g.day)


def _take_out(groups: list[Group], named: list[Group]) -> list[Group]:
    """``groups`` (from the rollup, nothing adjusted) less the events in ``named``, which are added as the
    adjusted groups; a group left with no events goes."""
    index = {_key(g): i for i, g in enumerate(groups)}
    out = list(groups)
    for g in named:
        i = index.get(_key(replace(g, adjusted=False)))
        if i is not None:
            base = out[i]
            rerated = None if base.rerated is None else base.rerated - (g.rerated or Decimal(0))
            out[i] = replace(base, usage=base.usage - g.usage, rerated=rerated)
    return [g for g in out if g.usage.events] + named


def _combine(groups: list[Group]) -> list[Group]:
    merged: dict[tuple[Any, ...], Group] = {}
    for g in groups:
        found = merged.get(_key(g))
        if found is None:
            merged[_key(g)] = g
            continue
        rerated = None if g.rerated is None else (found.rerated or Decimal(0)) + g.rerated
        merged[_key(g)] = replace(found, usage=found.usage + g.usage, rerated=rerated,
                                  first=min(filter(None, (found.first, g.first)), default=None),
                                  last=max(filter(None, (found.last, g.last)), default=None))
    return list(merged.values())


def _months(first: datetime, last: datetime) -> tuple[str, list[str]]:
    """SQL on ``month`` for the days ``[first, last)``: an equality when one month (the rows then come in key
    order, so SQLite groups them without sorting), else a range."""
    low, high = f"{first:%Y-%m}", f"{last - timedelta(days=1):%Y-%m}"
    return ("month = ?", [low]) if low == high else ("month >= ? AND month <= ?", [low, high])


def _whole_days(conn: sqlite3.Connection, first: datetime, last: datetime, scope: Scope, *, by_day: bool,
                keys: Sequence[str], rerate: Rerate | None) -> list[Group] | None:
    month, month_args = _months(first, last)
    where, params = scope.where(rollup=True)
    filters = [month, "day >= ?", "day < ?", *where]
    args = [*month_args, f"{first:%Y-%m-%d}", f"{last:%Y-%m-%d}", *params]
    columns = [c for c in GROUP_COLUMNS if c in keys]
    select = [f"CASE WHEN {_MARKER.format(c)} THEN {c} END" if c in keys else "NULL" for c in GROUP_COLUMNS]
    day = ["day"] if by_day else []

    def when(condition: str, column: str, how: str = "SUM") -> str:
        return f"{how}(CASE WHEN {condition} THEN {column} ELSE 0 END)"

    sums = ["SUM(events)", when(_CALL, "events"), when(_OUTER, "events"), when(_CALL, "input_tokens"),
            when(_CALL, "output_tokens"), when(_CALL, "tokens"), when(_CALL, "unpriced"), "MIN(first)", "MAX(last)",
            when(_CALL, "cost_small"), when(_CALL, "cost_places", "MAX"), when(_CALL, "cost_max", "MAX"),
            "SUM(credits_small)", "MAX(credits_places)", "MAX(credits_max)",
            "SUM(quantity_small)", "MAX(quantity_places)", "MAX(quantity_max)"]
    sql = (f"SELECT {', '.join([*select, 'billable', '0', *day, *sums])} FROM billing_daily "
           f"WHERE {' AND '.join(filters)} GROUP BY {', '.join([*columns, 'billable', *day])}")
    rows = conn.execute(sql, args).fetchall()
    if not rows_fit(rows, (7 if by_day else 6) + 9):
        return None
    if rerate is None:
        return to_groups(rows, by_day=by_day, fits=True, rerated=False)
    # Every row of billing_daily_values is a charged event (billable), so there is no billable filter to apply.
    value_filters = [f for f in filters if f != "billable = 1"]
    rated = conn.execute(
        f"SELECT {', '.join([*select, *day])}, SUM(events * ({rerate.rollup})) FROM billing_daily_values "
        f"WHERE {' AND '.join(value_filters)} GROUP BY {', '.join([*columns, *day])}", args).fetchall()
    credits = {tuple(r[:-1]): r[-1] for r in rated}
    # Each row's re-rated micro-credits as its last column (where to_groups reads them): its key is the group's
    # customer, feature, action, unit (and day); a row not billable has none.
    keyed = slice(0, 4)
    return to_groups([(*r, credits.get((*r[keyed], *([r[6]] if by_day else [])), 0) if r[4] else 0) for r in rows],
                     by_day=by_day, fits=True, rerated=True)


def day_totals(conn: sqlite3.Connection, start: datetime, end: datetime, scope: Scope, meter: str, *,
               custom: bool, rerate: Rerate | None) -> dict[str, dict[str, Decimal]]:
    """Per customer and UTC day, the invoiced-stage usage (billable, not adjusted) in ``meter`` within ``scope``
    (re-rated credits when ``rerate``): what a replay walks to find when a hard limit is hit."""
    keys = ("customer_id", "unit") if custom else ("customer_id",)
    if custom:
        scope = replace(scope, unit=meter)
    out: dict[str, dict[str, Decimal]] = {}
    for g in usage(conn, start, end, replace(scope, billable_only=True), by_day=True, keys=keys, rerate=rerate):
        if g.adjusted or g.customer_id is None or g.day is None:
            continue
        value = (g.rerated or Decimal(0)) if (rerate is not None and meter == "credits") else g.usage.get(meter)
        days = out.setdefault(g.customer_id, {})
        days[g.day] = days.get(g.day, Decimal(0)) + value
    return out
