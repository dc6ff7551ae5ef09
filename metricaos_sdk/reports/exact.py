"""Exact sums of money in SQL: never a float in a total.

SQLite stores ``cost_usd`` as exact decimal text, and its ``SUM()`` of text adds floats. So a report sums each
cost as an integer number of pico-dollars (10⁻¹² USD) instead — exact for every cost that has at most 12
decimal places and is under $100 (then the nearest double times 10¹² is within far less than ½ of the integer,
and ``ROUND`` lands on it). The integer sums are split in two (``pico / 10⁶`` and ``pico % 10⁶``) so that no SQL
sum can overflow 64 bits (SQLite raises rather than wraps); the halves are joined in Python. A cost outside that
range — more places, or a single event over $100 — is counted apart, and the reader sums those few rows again as
``Decimal`` (:func:`finish`). PostgreSQL stores ``numeric``: its ``SUM()`` is exact already.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

__all__ = ["POSTGRES_COST", "POSTGRES_CREDITS", "SQLITE_COST", "SQLITE_CREDITS", "ExactSum", "decimal_places", "tidy"]

_PICO = Decimal("1e-12")
_HALF = 1_000_000


def decimal_places(column: str) -> str:
    """SQL: the number of decimal places of a decimal text column (``str(Decimal)``: ``0.00125`` or ``1.25E-7``)."""
    exp = f"instr({column}, 'E')"
    mantissa = f"substr({column}, 1, {exp} - 1)"
    return (f"CASE WHEN {exp} = 0 THEN CASE WHEN instr({column}, '.') > 0 THEN length({column}) - instr({column}, '.') "
            f"ELSE 0 END ELSE (CASE WHEN instr({mantissa}, '.') > 0 THEN length({mantissa}) - instr({mantissa}, '.') "
            f"ELSE 0 END) - CAST(substr({column}, {exp} + 1) AS INTEGER) END")


@dataclass(frozen=True)
class ExactSum:
    """How one dialect sums a decimal column exactly: ``aggregates`` go in a ``SELECT`` (three columns in SQLite,
    one in PostgreSQL); ``slow`` is the condition of rows the aggregates leave out (``None``: none are)."""

    aggregates: tuple[str, ...]
    slow: str | None

    def value(self, parts: tuple[object, ...]) -> tuple[Decimal, int]:
        """The exact sum of the rows the aggregates covered, and how many rows they left to sum apart."""
        if len(parts) == 1:
            return Decimal(parts[0] or 0), 0  # type: ignore[arg-type]
        high, low, slow = parts
        return tidy(Decimal(int(high or 0) * _HALF + int(low or 0)) * _PICO), int(slow or 0)


def tidy(value: Decimal) -> Decimal:
    """``value`` without trailing zeros (``0.001500000000`` → ``0.0015``), never in exponent form (``1E+2``)."""
    value = value.normalize()
    return value.quantize(Decimal(1)) if value.as_tuple().exponent > 0 else value  # type: ignore[operator]


def _sqlite(column: str) -> ExactSum:
    fast = (f"({column} IS NOT NULL AND abs(CAST({column} AS REAL)) < 100 AND {decimal_places(column)} <= 12)")
    pico = f"CAST(round(CAST({column} AS REAL) * 1000000000000) AS INTEGER)"
    return ExactSum(
        aggregates=(f"sum(CASE WHEN {fast} THEN {pico} / {_HALF} END)",
                    f"sum(CASE WHEN {fast} THEN {pico} % {_HALF} END)",
                    f"sum(CASE WHEN {column} IS NOT NULL AND NOT {fast} THEN 1 ELSE 0 END)"),
        slow=f"({column} IS NOT NULL AND NOT {fast})",
    )


SQLITE_COST = _sqlite("cost_usd")
SQLITE_CREDITS = _sqlite("credits")
POSTGRES_COST = ExactSum(aggregates=("sum(cost_usd)",), slow=None)
POSTGRES_CREDITS = ExactSum(aggregates=("sum(credits)",), slow=None)
