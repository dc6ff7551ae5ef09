"""What the quota engine does while its store does not answer: a breaker, and settlements that wait.

A call waits on the store for at most ``MeterConfig.quota_timeout`` (a SQLite lock another process holds, a
Redis round trip). When it fails, the breaker opens: for a back-off that doubles from half a second to half a
minute, calls do not wait on the store at all — they are allowed (``quota_fail_open``, the default) or refused
with ``QuotaUnavailable`` — and then one call tries it again. A call allowed without a reservation still
counts: its settlement (the usage it actually had) waits here, and so does any settlement the store did not
take in time, and the meter's worker thread retries them, patiently, until the store takes them — so the
counters end up right, though a call settled late may overshoot a limit that an outage left unguarded.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from .policy import Policy
from .reservations import Demand

__all__ = ["Breaker", "Pending", "Unsettled", "demands_of"]


class Breaker:
    """Open after a failure for a doubling back-off; a success closes it."""

    FIRST = 0.5
    LONGEST = 30.0

    def __init__(self) -> None:
        self._until = 0.0
        self._backoff = 0.0

    @property
    def available(self) -> bool:
        """The last operation succeeded (or none failed yet)."""
        return self._backoff == 0.0

    def allows(self) -> bool:
        """Whether a call may try the store now (closed, or its back-off is over: one call tries again)."""
        return self._backoff == 0.0 or time.monotonic() >= self._until

    def failed(self) -> None:
        self._backoff = min(max(self._backoff * 2, self.FIRST), self.LONGEST)
        self._until = time.monotonic() + self._backoff

    def succeeded(self) -> None:
        self._backoff = 0.0
        self._until = 0.0


@dataclass(slots=True)
class Unsettled:
    """A finished call's usage that its store has not taken yet. ``demands`` is None when the call's limits were
    not known (the store was down before they were loaded): they are worked out when it answers, for the
    periods in force when the call was made (``epoch``)."""

    customer_id: str
    call_id: str
    demands: list[Demand] | None
    epoch: float
    feature: str | None
    actual: dict[str, int]
    """The call's actual consumption per unit, in store units."""
    once: float | None = None
    """Idempotent until this time (epoch s): custom usage, settled at most once per id (``settle_once``)."""


class Pending:
    """Settlements waiting for the store, oldest first. Appended from any thread; retried by one at a time."""

    def __init__(self) -> None:
        self.items: deque[Unsettled] = deque()
        self._retrying = threading.Lock()

    def __len__(self) -> int:
        return len(self.items)

    def add(self, item: Unsettled) -> None:
        self.items.append(item)

    def retry(self, settle: Callable[[str, str, list[Demand]], object],
              demands_of: Callable[[Unsettled], list[Demand]],
              settle_once: Callable[[str, str, list[Demand], float], object] | None = None) -> bool:
        """Hand each waiting settlement to ``settle(customer, reservation id, demands)``, oldest first, until one
        fails (the store is still down: the rest wait for the next round). True if at least one went through.
        A settlement whose periods all ended meanwhile is dropped: no limit counts it any more."""
        if not self._retrying.acquire(blocking=False):
            return False  # another thread is at it
        took = False
        try:
            items = self.items
            while items:
                item = items[0]
                try:
                    demands = item.demands if item.demands is not None else demands_of(item)
                    if demands and max(b.expires_at for d in demands for b in d.buckets) > time.time():
                        if item.once is not None and settle_once is not None:
                            settle_once(item.customer_id, item.call_id, demands, item.once)
                        else:
                            settle(item.customer_id, item.call_id, demands)
                except Exception:
                    return took
                items.popleft()
                took = True
            return took
        finally:
            self._retrying.release()


def demands_of(policy: Policy | None, item: Unsettled) -> list[Demand]:
    """The demands of a call whose limits were not known when it was made: its customer's limits now (``policy``),
    for the periods in force at the call's time."""
    if policy is None:
        return []
    demands = []
    for index, spec in enumerate(policy.limits):
        if spec.feature is not None and spec.feature != item.feature:
            continue
        _, _, buckets, overflow = policy.window(index, item.epoch)
        demands.append(Demand(item.actual.get(spec.unit, 0), buckets, False, overflow))
    return demands
