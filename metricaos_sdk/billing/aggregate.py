"""The one aggregate query billing is built on: a period's events summed in SQLite, exactly.

Events are never loaded into Python: SQLite groups them (by customer, feature, action, unit, and whether
they are billable and adjusted) and sums integers. Money and credits are stored as exact decimal text; they
are summed as integers of a small unit — pico-dollars for ``cost_usd``, micro-units for ``credits`` and
``quantity`` — which is exact when every value has no more decimals than that unit (checked on the text in
the same pass: the largest number of decimal places and the largest magnitude are aggregated with the sums).
When a value does not fit, the query runs again with an exact decimal sum in Python, slower but right.

An LLM call is an event whose type is not ``action``, ``usage`` or ``outcome``: tokens, requests and AI cost
count LLM calls only (an action's own ``cost_usd`` is the sum of its calls'); ``actions`` counts the
outermost actions (nested ones are recorded, not charged).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from decimal import Decimal
from operator import attrgetter
from typing import Any

from .plans import BUILTIN_METERS

__all__ = ["CALL", "GROUP_COLUMNS", "Group", "Quantities", "group_usage", "stored_decimal_sum"]

CALL = "(event_type NOT IN ('action', 'usage', 'outcome'))"
"""SQL: the event is an LLM call."""
OUTER_ACTION = "(event_type = 'action' AND parent_action_id IS NULL)"

GROUP_COLUMNS: tuple[str, ...] = ("customer_id", "feature", "action_name", "unit")
_SCALE = {"cost_usd": 10**12, "credits": 10**6, "quantity": 10**6}
_PLACES = {"cost_usd": 12, "credits": 6, "quantity": 6}
_MAX_EXACT = 2.0**50  # below this many small units a double holds the scaled value to well within 0.5


@dataclass(frozen=True)
class Quantities:
    """Usage of a group of events in every meter: counts, tokens, credits, AI cost and custom units."""

    events: int = 0
    requests: int = 0
    """LLM calls."""
    actions: int = 0
    """Outermost actions (each billed once, however many calls it made)."""
    input_tokens: int = 0
    output_tokens: int = 0
    tokens: int = 0
    credits: Decimal = Decimal(0)
    cost_usd: Decimal = Decimal(0)
    """AI cost of the LLM calls (exact; calls of unpriced models count 0 here and in ``unpriced``)."""
    unpriced: int = 0
    units: dict[str, Decimal] = field(default_factory=dict)
    """Custom usage and outcomes by unit (``{"resolved_ticket": Decimal(12)}``)."""

    def get(self, meter: str) -> Decimal:
        """The usage in ``meter`` (a built-in meter or a custom unit) as a Decimal."""
        if meter in BUILTIN_METERS:
            return Decimal(getattr(self, meter))
        return self.units.get(meter, Decimal(0))

    def __add__(self, other: Quantities) -> Quantities:
        units = dict(self.units)
        for unit, amount in other.units.items():
            units[unit] = units.get(unit, Decimal(0)) + amount
        return Quantities(**{name: getattr(self, name) + getattr(other, name) for name in _ADDED}, units=units)

    def __sub__(self, other: Quantities) -> Quantities:
        """``self`` without ``other`` (a part of it: a rollup group less its adjusted events)."""
        units = dict(self.units)
        for unit, amount in other.units.items():
            units[unit] = units.get(unit, Decimal(0)) - amount
        return Quantities(**{name: getattr(self, name) - getattr(other, name) for name in _ADDED}, units=units)

    def as_dict(self) -> dict[str, Any]:
        """Every meter with its usage (custom units by name), for JSON output."""
        data: dict[str, Any] = {name: getattr(self, name) for name in _ADDED}
        data.update(self.units)
        return data


_ADDED = ("events", "requests", "actions", "input_tokens", "output_tokens", "tokens", "credits", "cost_usd", "unpriced")


def total(items: Iterable[Quantities]) -> Quantities:
    """The sum of several quantities (a replay sums thousands of groups per customer)."""
    items = list(items)
    return summed([_FIELDS(item) for item in items], [item.units for item in items])


def meters_of(q: Quantities) -> tuple[Any, ...]:
    """``q``'s meters but ``units``, in field order: what :func:`summed` adds up."""
    return _FIELDS(q)


def summed(rows: Sequence[tuple[Any, ...]], units: Iterable[dict[str, Decimal]]) -> Quantities:
    """The quantities whose meters are ``rows`` (from :func:`meters_of`) and custom units ``units``, added up:
    each meter by ``sum()`` over its column, left to right from zero, as adding one item at a time would."""
    added: dict[str, Decimal] = {}
    for mine in units:
        for unit, amount in mine.items():
            added[unit] = added.get(unit, Decimal(0)) + amount
    sums = map(sum, zip(*rows, strict=True), _ZERO) if rows else _ZERO
    return Quantities(**dict(zip(_ADDED, sums, strict=True)), units=added)


_FIELDS = attrgetter(*_ADDED)
_ZERO = _FIELDS(Quantities())


@dataclass(frozen=True)
class Group:
    """The events of one customer, feature, action and unit that share ``billable`` and ``adjusted``."""

    customer_id: str | None
    feature: str | None
    action_name: str | None
    unit: str | None
    billable: bool
    adjusted: bool
    """Named by an exclusion or a reversal in the ledger (left out of the invoiced stage)."""
    usage: Quantities
    day: str | None = None
    first: str | None = None
    last: str | None = None
    rerated: Decimal | None = None
    """Credits under a replay's candidate rules (None when no rules were given)."""


def _places(column: str) -> str:
    """SQL: how many decimal places the stored decimal text ``column`` has (``'0.0006528'`` 7, ``'1.5E-7'`` 8)."""
    mantissa = f"CASE WHEN instr({column}, 'E') > 0 THEN substr({column}, 1, instr({column}, 'E') - 1) ELSE {column} END"
    decimals = f"CASE WHEN instr({mantissa}, '.') > 0 THEN length({mantissa}) - instr({mantissa}, '.') ELSE 0 END"
    exponent = f"CASE WHEN instr({column}, 'E') > 0 THEN CAST(substr({column}, instr({column}, 'E') + 1) AS INTEGER) ELSE 0 END"
    plain = f"CASE WHEN instr({column}, '.') > 0 THEN length({column}) - instr({column}, '.') ELSE 0 END"
    # Most stored values have no exponent: the cheap form first, the full one only for 'E' notation.
    return f"CASE WHEN instr({column}, 'E') = 0 THEN {plain} ELSE ({decimals}) - ({exponent}) END"


def _sums(exact: bool) -> list[str]:
    out = []
    for column, where in (("cost_usd", CALL), ("credits", "1"), ("quantity", "1")):
        value = f"CASE WHEN {where} THEN {column} END"
        if exact:
            out.append(f"decimal_sum({value})")
        else:
            out.append(f"SUM(CAST(ROUND(CAST({value} AS REAL) * {_SCALE[column]}) AS INTEGER))")
            out.append(f"MAX({_places(column)})")
            out.append(f"MAX(ABS(CAST({column} AS REAL)))")
    return out


class _DecimalSum:
    """SQLite aggregate: the exact sum of decimal text, as text (the slow path)."""

    def __init__(self) -> None:
        self.total = Decimal(0)

    def step(self, value: Any) -> None:
        if value is not None:
            self.total += Decimal(str(value))

    def finalize(self) -> str:
        return str(self.total)


def stored_decimal_sum(conn: sqlite3.Connection) -> None:
    """Register ``decimal_sum`` on ``conn`` (the exact fallback of :func:`group_usage`)."""
    conn.create_aggregate("decimal_sum", 1, _DecimalSum)  # type: ignore[arg-type]


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat()


def group_usage(conn: sqlite3.Connection, start: datetime, end: datetime, *, customer_id: str | None = None,
                by_day: bool = False, rerate: tuple[str, Sequence[Any]] | None = None,
                adjusted: bool = True, where: str = "", params: Sequence[Any] = (),
                keys: Sequence[str] = GROUP_COLUMNS, source: tuple[str, Sequence[Any]] | None = None) -> list[Group]:
    """The events of ``[start, end)`` (of one customer, or every one) summed per group (see :class:`Group`),
    scanning the events themselves (:mod:`.rollup` reads the per-day rollup instead and uses this for what
    the rollup does not hold).

    ``rerate`` is an SQL expression giving an event's credits in micro-credits under candidate rules (and its
    parameters); ``adjusted=False`` skips the ledger lookup (every event counts as not adjusted). ``keys``: the
    columns of :data:`GROUP_COLUMNS` to group by (the others come back None); ``source``: the ``FROM`` text and
    its parameters (the events table by default).
    """
    filters = ["timestamp >= ?", "timestamp < ?"]
    args: list[Any] = [_iso(start), _iso(end)]
    if customer_id is not None:
        filters.append("customer_id = ?")
        args.append(customer_id)
    if where:
        filters.append(where)
        args.extend(params)
    grouped = [c for c in GROUP_COLUMNS if c in keys] + ["billable", "adjusted"] + (
        ["substr(timestamp, 1, 10)"] if by_day else [])
    keys = [c if c in keys else "NULL" for c in GROUP_COLUMNS] + grouped[-(3 if by_day else 2):]
    flag = ("id IN (SELECT event_id FROM billing_adjusted_events)" if adjusted else "0")
    counts = [
        "COUNT(*)", f"SUM({CALL})", f"SUM({OUTER_ACTION})",
        f"SUM(CASE WHEN {CALL} THEN input_tokens ELSE 0 END)", f"SUM(CASE WHEN {CALL} THEN output_tokens ELSE 0 END)",
        f"SUM(CASE WHEN {CALL} THEN total_tokens ELSE 0 END)", f"SUM({CALL} AND cost_usd IS NULL)",
        "MIN(timestamp)", "MAX(timestamp)",
    ]
    rerate_sql = [f"SUM({rerate[0]})"] if rerate else []
    rerate_args = list(rerate[1]) if rerate else []

    def run(exact: bool) -> list[tuple[Any, ...]]:
        select = [*keys, *counts, *_sums(exact), *rerate_sql]
        # Store-wide, a scan in table order beats the (customer_id, timestamp) index: through it every row is
        # a random lookup. One customer's events are few: the index finds them.
        table = source[0] if source else ("events" if customer_id is not None else "events NOT INDEXED")
        sql = (f"SELECT {', '.join(select)} FROM (SELECT *, {flag} AS adjusted FROM {table} "
               f"WHERE {' AND '.join(filters)}) GROUP BY {', '.join(grouped)}")
        # The re-rating expression's parameters come first: it appears in the SELECT list, before the WHERE.
        return conn.execute(sql, [*rerate_args, *(source[1] if source else ()), *args]).fetchall()

    rows = run(exact=False)
    fits = rows_fit(rows, len(keys) + len(counts))
    if not fits:
        stored_decimal_sum(conn)
        rows = run(exact=True)
    return to_groups(rows, by_day=by_day, fits=fits, rerated=bool(rerate_sql))


def rows_fit(rows: Sequence[Sequence[Any]], at: int) -> bool:
    """Whether every integer sum of the rows (from column ``at``: cost, credits, quantity as ``(sum, largest
    number of decimal places, largest magnitude)``) is exact in its small unit."""
    return all((r[at + 3 * i + 1] or 0) <= _PLACES[c] and (r[at + 3 * i + 2] or 0) * _SCALE[c] < _MAX_EXACT
               for r in rows for i, c in enumerate(("cost_usd", "credits", "quantity")))


def to_groups(rows: Sequence[Sequence[Any]], *, by_day: bool, fits: bool, rerated: bool) -> list[Group]:
    """Groups from rows laid out as :func:`group_usage` selects them: the keys (customer, feature, action, unit,
    billable, adjusted[, day]), nine counts, the three sums (three columns each when ``fits``, else one exact
    decimal text each), then the re-rated micro-credits when ``rerated``."""
    k = 7 if by_day else 6
    n = k + 9
    out = []
    for r in rows:
        if fits:
            cost, credits, quantity = (Decimal(r[n + 3 * i] or 0) / _SCALE[c]
                                       for i, c in enumerate(("cost_usd", "credits", "quantity")))
            extra = r[n + 9:]
        else:
            cost, credits, quantity = (Decimal(r[n + i] or 0) for i in range(3))
            extra = r[n + 3:]
        unit = r[3]
        usage = Quantities(events=r[k], requests=r[k + 1] or 0, actions=r[k + 2] or 0,
                           input_tokens=r[k + 3] or 0, output_tokens=r[k + 4] or 0,
                           tokens=r[k + 5] or 0, unpriced=r[k + 6] or 0,
                           cost_usd=normal(cost), credits=normal(credits),
                           units={unit: normal(quantity)} if unit is not None else {})
        out.append(Group(customer_id=r[0], feature=r[1], action_name=r[2], unit=unit, billable=bool(r[4]),
                         adjusted=bool(r[5]), usage=usage, day=r[6] if by_day else None,
                         first=r[k + 7], last=r[k + 8],
                         rerated=normal(Decimal(extra[0] or 0) / 10**6) if rerated else None))
    return out


def normal(value: Decimal) -> Decimal:
    """``value`` without trailing zeros of the scaling (``Decimal('50.000000')`` → ``Decimal('50')``)."""
    return value.normalize() + 0 if value else Decimal(0)


def with_usage(group: Group, usage: Quantities) -> Group:
    return replace(group, usage=usage)
