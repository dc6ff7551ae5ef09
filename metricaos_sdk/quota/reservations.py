"""Reserve before the call, settle after: the admission arithmetic every store applies atomically.

A call asks for one :class:`Demand` per limit that applies to it (the plan's monthly credits, a feature's
sub-limit, a rate window …). A demand draws from one or more :class:`Bucket` in order — the period's
allowance and the customer's grants, the one expiring first drawn first — and is *enforced* (hard and
throttle modes: refuse when it does not fit) or not (soft and overage modes: admit and report).

``reserve``: each bucket has ``limit - used - reserved`` free; an enforced demand that does not fit in its
buckets refuses the whole reservation, and nothing is held. Otherwise the estimate is held on the buckets
it fits in (what does not fit lands on the ``overflow`` bucket) until the call settles or the lease ends.

``settle``: the reservation is dropped and the actual usage drawn the same way, so ``used`` only ever
grows by what calls really consumed; the part beyond every bucket is the call's overflow (its overage).

These functions are pure: the in-memory and SQLite stores read the counters, call them, and write the
result inside one lock or transaction; the Redis store runs the same steps in a Lua script.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

__all__ = ["Balance", "Bucket", "Demand", "Reserved", "Settled", "plan_reservation", "plan_settlement"]


@dataclass(frozen=True, slots=True)
class Bucket:
    """A counter with a limit, in store units; the store may forget it after ``expires_at`` (epoch s)."""

    key: str
    limit: int
    expires_at: float


@dataclass(frozen=True, slots=True)
class Demand:
    """An amount to draw from ``buckets`` in order; ``enforce``: refuse when it does not fit."""

    amount: int
    buckets: tuple[Bucket, ...]
    enforce: bool = True
    overflow: int = 0
    """Index of the bucket charged with what fits nowhere (the period's allowance)."""


@dataclass(frozen=True, slots=True)
class Balance:
    """A demand's buckets summed: settled use, use held by calls in flight, and the limit."""

    used: int
    reserved: int
    limit: int

    @property
    def free(self) -> int:
        return max(self.limit - self.used - self.reserved, 0)


@dataclass(frozen=True, slots=True)
class Reserved:
    """The outcome of a reservation: ``balances`` are per demand, as they were before it."""

    ok: bool
    balances: tuple[Balance, ...]
    failed: int | None = None
    """Index of the first enforced demand that did not fit (``ok`` is False)."""


@dataclass(frozen=True, slots=True)
class Settled:
    """The outcome of a settlement: per demand, the balance after it and the part that fit no bucket."""

    balances: tuple[Balance, ...]
    overflow: tuple[int, ...]


def _balance(demand: Demand, used: Mapping[str, int], reserved: Mapping[str, int]) -> Balance:
    u = r = limit = 0
    for b in demand.buckets:  # a plain loop: this runs inside the store's lock on every metered call
        u += used.get(b.key, 0)
        r += reserved.get(b.key, 0)
        limit += b.limit
    return Balance(u, r, limit)


def _draw(demand: Demand, amount: int, used: Mapping[str, int], reserved: Mapping[str, int],
          out: dict[str, int]) -> int:
    """Add the draw of ``amount`` to ``out``; return the part that fit no bucket (charged to overflow)."""
    left = amount
    for b in demand.buckets:
        if left <= 0:
            break
        free = b.limit - used.get(b.key, 0) - reserved.get(b.key, 0) - out.get(b.key, 0)
        take = min(free, left)
        if take > 0:
            out[b.key] = out.get(b.key, 0) + take
            left -= take
    if left > 0 and demand.buckets:
        key = demand.buckets[demand.overflow].key
        out[key] = out.get(key, 0) + left
    return max(left, 0)


def plan_reservation(demands: Sequence[Demand], used: Mapping[str, int],
                     reserved: Mapping[str, int]) -> tuple[Reserved, dict[str, int]]:
    """The outcome, and the amounts to hold per bucket (empty when refused)."""
    balances = tuple(_balance(d, used, reserved) for d in demands)
    for i, (d, bal) in enumerate(zip(demands, balances, strict=True)):
        if d.enforce and d.amount > bal.free:
            return Reserved(False, balances, i), {}
    hold: dict[str, int] = {}
    for d in demands:
        _draw(d, d.amount, used, reserved, hold)
    return Reserved(True, balances), {k: v for k, v in hold.items() if v}


def plan_settlement(demands: Sequence[Demand], used: Mapping[str, int],
                    reserved: Mapping[str, int]) -> tuple[Settled, dict[str, int]]:
    """``reserved`` must exclude the settling reservation. Returns the outcome and the use to add per bucket."""
    add: dict[str, int] = {}
    overflow = tuple(_draw(d, d.amount, used, reserved, add) for d in demands)
    after = {k: used.get(k, 0) + add.get(k, 0) for d in demands for k in (b.key for b in d.buckets)}
    return Settled(tuple(_balance(d, after, reserved) for d in demands), overflow), {k: v for k, v in add.items() if v}
