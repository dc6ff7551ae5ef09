"""Money and quantities for billing: exact ``Decimal`` from validated input, rounding, and fair allocation.

Money never passes through a float: amounts come in as ``int``, ``Decimal`` or ``str`` and are rounded
only where an invoice line is made (half up, to the currency's minor unit), so an invoice's total is
exactly the sum of its lines.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import ROUND_CEILING, ROUND_HALF_UP, Decimal

from ..errors import ConfigurationError

__all__ = ["MINOR_UNITS", "Amount", "allocate", "check_money", "check_quantity", "minor_units", "round_money"]

Amount = int | Decimal | str
"""An exact amount as callers may give it: never a float."""

MINOR_UNITS: dict[str, int] = {"JPY": 0, "KRW": 0, "CLP": 0, "VND": 0, "ISK": 0, "HUF": 2, "BHD": 3, "KWD": 3,
                               "JOD": 3, "OMR": 3, "TND": 3}
"""Currencies whose minor unit is not the cent (ISO 4217); every other currency rounds to 2 places."""


def minor_units(currency: str) -> int:
    """Decimal places of ``currency`` (2 unless listed in :data:`MINOR_UNITS`)."""
    return MINOR_UNITS.get(currency, 2)


def _decimal(value: object, what: str) -> Decimal:
    if isinstance(value, (float, bool)) or not isinstance(value, (int, Decimal, str)):
        raise ConfigurationError(f"{what} must be an int, Decimal or str (never a float), got {value!r}: "
                                 f"write it as a string, e.g. '0.50'.")
    try:
        amount = Decimal(value)
    except ArithmeticError:
        raise ConfigurationError(f"{what} is not a number: {value!r}; write it as digits, e.g. '10' or '0.002'.") from None
    if not amount.is_finite():
        raise ConfigurationError(f"{what} must be a finite number, got {value!r}.")
    return amount


def check_money(value: object, what: str, *, allow_negative: bool = False) -> Decimal:
    """``value`` as an exact Decimal amount of money, or a ConfigurationError saying what is wrong."""
    amount = _decimal(value, what)
    if amount < 0 and not allow_negative:
        raise ConfigurationError(f"{what} must not be negative, got {value!r}: give the amount as a positive number.")
    return amount


def check_quantity(value: object, what: str, *, positive: bool = False) -> Decimal:
    """``value`` as an exact non-negative (or, with ``positive``, positive) Decimal quantity."""
    amount = _decimal(value, what)
    if amount < 0 or (positive and amount == 0):
        raise ConfigurationError(f"{what} must be {'more than 0' if positive else 'zero or more'}, got {value!r}.")
    return amount


def round_money(amount: Decimal, currency: str) -> Decimal:
    """``amount`` rounded half up to ``currency``'s minor unit (``Decimal('0.01')`` for USD)."""
    return amount.quantize(Decimal(1).scaleb(-minor_units(currency)), ROUND_HALF_UP)


def ceil_div(a: Decimal, b: Decimal) -> Decimal:
    """``a / b`` rounded up to a whole number (started blocks count whole)."""
    return (a / b).to_integral_value(ROUND_CEILING)


def allocate(total: Decimal, weights: Mapping[str, Decimal], currency: str) -> dict[str, Decimal]:
    """Split ``total`` (already rounded to the currency) over ``weights`` in proportion, rounded to the minor
    unit by the largest-remainder method, so the parts add up to ``total`` exactly.

    With no positive weight, everything goes to ``"(unallocated)"``.
    """
    positive = {k: w for k, w in weights.items() if w > 0}
    weight = sum(positive.values(), Decimal(0))
    if not positive or weight == 0:
        return {"(unallocated)": total} if total else {}
    step = Decimal(1).scaleb(-minor_units(currency))
    steps = int((total / step).to_integral_value(ROUND_HALF_UP))
    exact = {k: Decimal(steps) * w / weight for k, w in positive.items()}
    floors = {k: int(v) for k, v in exact.items()}  # int() truncates toward zero: also right for negative totals
    left = steps - sum(floors.values())
    order = sorted(exact, key=lambda k: (-(abs(exact[k] - floors[k])), k))
    sign = 1 if left >= 0 else -1
    for k in order[: abs(left)]:
        floors[k] += sign
    return {k: Decimal(n) * step for k, n in floors.items()}
