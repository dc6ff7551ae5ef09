"""How numbers are written for people: one rule for reports, the CLI and exception messages.

The rule (bills are read from this text, so it never hides an amount and never invents one):

- **Counts** (calls, tokens, requests): whole numbers with thousands separators — ``12,345``.
- **Other exact quantities** (credits): every digit they have, thousands separators, no exponent and no
  trailing zeros — ``1,234.5``, ``50``.
- **Money totals** (anything summed over calls, a limit, what is used or left of it): dollars and cents,
  rounded half up — ``$1,234.57``, ``$1.01`` for 1.005. A positive amount under a cent is ``<$0.01``, never
  ``$0.00``, which would read as free; zero is ``$0.00``. A negative amount carries a minus: ``-$1.50``.
- **Money per call** (one call's cost or estimate, and the balance a refused estimate is weighed against):
  4 significant digits, rounded half up, and never fewer
  decimals than cents — ``$0.001699``, ``$0.50``, ``$1,234.57``; zeros past the cents are dropped.
- **Unknown cost** (``cost_usd=None``, a model without a price) is never shown as ``$0`` nor added in as
  0: a cost is written ``cost $1.23 + 4 unpriced calls`` (:func:`cost`).

Everything here is exact ``Decimal`` arithmetic (a float never comes near money) and pure: no I/O, no
import from the rest of the SDK, so every module may use it.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Context, Decimal

__all__ = ["SIGNIFICANT_DIGITS", "cost", "count", "plural", "quantity", "usd", "usd_per_call"]

SIGNIFICANT_DIGITS = 4
"""Significant digits of a per-call amount (:func:`usd_per_call`)."""

_CENT = Decimal("0.01")
_EXACT = Context(prec=100)  # rounding happens only where a rule above says so, never by running out of digits


def count(n: int) -> str:
    """A whole number with thousands separators: ``12,345``."""
    return f"{n:,}"


def quantity(value: int | Decimal) -> str:
    """An exact quantity (credits, tokens) with all its digits: ``1,234.5``; no exponent, no trailing zeros."""
    if isinstance(value, int):
        return f"{value:,}"
    if not value.is_finite():
        return str(value)
    return format(value.normalize(_EXACT), ",f")


def plural(n: int, noun: str) -> str:
    """``1 call``, ``0 calls``, ``1,234 calls`` (regular plurals only)."""
    return f"{n:,} {noun}" if n == 1 else f"{n:,} {noun}s"


def usd(amount: int | Decimal) -> str:
    """A money total in dollars and cents, rounded half up; ``<$0.01`` for a positive amount under a cent."""
    value = Decimal(amount)
    if not value.is_finite():
        return f"${value}"
    sign, value = ("-", -value) if value < 0 else ("", value)
    if 0 < value < _CENT:
        return f"{sign}<$0.01"
    return f"{sign}${format(value.quantize(_CENT, ROUND_HALF_UP, _EXACT), ',f')}"


def usd_per_call(amount: int | Decimal) -> str:
    """One call's amount: :data:`SIGNIFICANT_DIGITS` significant digits (half up), at least cents."""
    value = Decimal(amount)
    if not value.is_finite():
        return f"${value}"
    if not value:
        return "$0.00"
    sign, value = ("-", -value) if value < 0 else ("", value)
    places = max(2, SIGNIFICANT_DIGITS - 1 - value.adjusted())
    whole, _, fraction = format(value.quantize(Decimal(1).scaleb(-places), ROUND_HALF_UP, _EXACT), ",f").partition(".")
    return f"{sign}${whole}.{fraction.rstrip('0').ljust(2, '0')}"


def cost(priced: Decimal, unpriced: int, calls: int) -> str:
    """The cost of ``calls`` calls, ``unpriced`` of which had no price (their cost is unknown, not 0).

    ``cost $1.23``; ``cost $1.23 + 4 unpriced calls``; ``cost unknown (4 unpriced calls)`` when no call had a price.
    """
    if unpriced and unpriced >= calls:
        return f"cost unknown ({plural(unpriced, 'unpriced call')})"
    text = f"cost {usd(priced)}"
    return text + f" + {plural(unpriced, 'unpriced call')}" if unpriced else text
