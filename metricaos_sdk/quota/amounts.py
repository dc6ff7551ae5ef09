"""Quota units and their integer representation in the stores.

Every store counts in integers so that SQLite arithmetic and Redis Lua scripts (whose numbers are doubles,
exact up to 2**53) stay exact: tokens and requests as they are, USD in nano-dollars, credits in
micro-credits. Usage is converted rounding up and limits rounding down, so the conversion can only make a
limit stricter, never looser.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Literal

from ..errors import ConfigurationError

__all__ = ["SCALE", "UNITS", "Unit", "from_units", "to_limit", "to_usage", "unit_label"]

Unit = Literal["credits", "tokens", "cost_usd", "requests"]
UNITS: tuple[str, ...] = ("credits", "tokens", "cost_usd", "requests")
SCALE: dict[str, int] = {"credits": 10**6, "tokens": 1, "cost_usd": 10**9, "requests": 1}


def check_amount(unit: str, value: object, what: str) -> Decimal:
    """``value`` as a non-negative Decimal, or a ConfigurationError saying what is wrong."""
    if unit not in SCALE:
        raise ConfigurationError(f"Unknown quota unit {unit!r}: use one of {', '.join(UNITS)}.")
    if isinstance(value, (float, bool)) or not isinstance(value, (int, Decimal, str)):
        raise ConfigurationError(f"{what} must be an int, Decimal or str (never a float), got {value!r}.")
    try:
        amount = Decimal(value)
    except ArithmeticError:
        raise ConfigurationError(f"{what} is not a number: {value!r}.") from None
    if not amount.is_finite() or amount < 0:
        raise ConfigurationError(f"{what} must be a non-negative number, got {value!r}.")
    if unit in ("tokens", "requests") and amount != amount.to_integral_value():
        raise ConfigurationError(f"{what} counts whole {unit}, got {value!r}.")
    return amount


def to_usage(unit: str, amount: int | Decimal | None) -> int:
    """Usage in store units, rounded up."""
    if not amount:
        return 0
    scale = SCALE[unit]
    if scale == 1 and isinstance(amount, int):
        return amount
    return int((Decimal(amount) * scale).to_integral_value(ROUND_CEILING))


def to_limit(unit: str, amount: int | Decimal) -> int:
    """A limit in store units, rounded down."""
    return int((Decimal(amount) * SCALE[unit]).to_integral_value(ROUND_FLOOR))


def from_units(unit: str, value: int) -> int | Decimal:
    """Store units back to the public type: int for tokens/requests, Decimal for USD and credits."""
    scale = SCALE[unit]
    return int(value) if scale == 1 else (Decimal(int(value)) / scale).normalize() + 0


def unit_label(unit: str) -> str:
    return "USD" if unit == "cost_usd" else unit
