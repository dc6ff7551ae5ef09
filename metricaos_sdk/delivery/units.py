"""The numbers and names billing engines take, computed exactly from an event: shared by the encoders.

Money is converted with ``Decimal`` arithmetic only (never a float): ``micro_usd`` scales by 10⁶ and rounds
half up to an integer, so ``Decimal("0.0000015")`` is 2 micro-USD and ``Decimal("0.30000000000000004")`` is
300000. Times are the event's own, as integers (``epoch_seconds``, ``epoch_millis``: floored, so every retry
sends the same value); a naive ``datetime`` is taken as UTC, as the event model records it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

__all__ = ["Lookup", "epoch_millis", "epoch_seconds", "look_up", "micro_usd", "own_cost", "plain_decimal",
           "scaled_integer"]

Lookup = Mapping[str, str] | Callable[[str], str | None]
"""Our id to the receiver's: a mapping, or a callable returning ``None`` for an id it does not know."""

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def own_cost(event: Any) -> Decimal | None:
    """The cost ``event`` adds to a sum of costs: ``None`` for an action, whose ``cost_usd`` is the sum of its
    calls' — they are delivered too, each with its own cost, so a meter summing both would count it twice."""
    cost: Decimal | None = None if event.event_type == "action" else event.cost_usd
    return cost
_MILLISECOND = timedelta(milliseconds=1)


def look_up(lookup: Lookup, key: str | None) -> str | None:
    """``lookup``'s value for ``key`` (``None`` for no key, an unknown key or an empty value)."""
    if key is None:
        return None
    value = lookup.get(key) if isinstance(lookup, Mapping) else lookup(key)
    return value or None


def scaled_integer(value: Decimal, scale: int = 0) -> int:
    """``value × 10**scale`` as an integer, rounded half up (away from zero): exact for any ``Decimal``."""
    return int(value.scaleb(scale).to_integral_value(rounding=ROUND_HALF_UP))


def micro_usd(cost: Decimal) -> int:
    """A cost in integer micro-USD (1 USD = 1 000 000), rounded half up."""
    return scaled_integer(cost, 6)


def plain_decimal(value: Decimal, places: int = 26) -> str:
    """``value`` as a plain decimal string, never in exponent form (``1E-7`` → ``"0.0000001"``), with at most
    ``places`` decimals (rounded half up beyond them)."""
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -places:
        value = value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
    text = format(value, "f")
    return "0" if text in ("-0", "") else text


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)


def epoch_millis(moment: datetime) -> int:
    """Milliseconds since the Unix epoch, floored (integer arithmetic: no float rounding)."""
    return (_aware(moment) - _EPOCH) // _MILLISECOND


def epoch_seconds(moment: datetime) -> int:
    """Seconds since the Unix epoch, floored."""
    return epoch_millis(moment) // 1000
