"""InMemoryQuotaStore: one process, one lock. The default when the meter's sink is not SQLite."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

from ..reservations import Bucket, Demand, Reserved, Settled, plan_reservation, plan_settlement

__all__ = ["InMemoryQuotaStore"]


class InMemoryQuotaStore:
    """Quota counters and reservations in this process's memory (threads share it; processes do not)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._used: dict[tuple[str, str], int] = {}
        self._expires: dict[tuple[str, str], float] = {}
        # customer -> reservation id -> (expires_at, {bucket: amount})
        self._held: dict[str, dict[str, tuple[float, dict[str, int]]]] = {}
        self._marks: dict[tuple[str, str], float] = {}
        self._config: dict[tuple[str, str], str] = {}
        self._version = 0

    def _state(self, customer_id: str, keys: set[str], now: float) -> tuple[dict[str, int], dict[str, int]]:
        used = {k: self._used.get((customer_id, k), 0) for k in keys}
        reserved: dict[str, int] = {}
        held = self._held.get(customer_id, {})
        for rid, (expires, amounts) in list(held.items()):
            if expires <= now:
                del held[rid]  # an abandoned reservation: its lease is over
                continue
            for k, v in amounts.items():
                reserved[k] = reserved.get(k, 0) + v
        return used, reserved

    def reserve(self, customer_id: str, reservation_id: str, demands: Sequence[Demand], lease: float) -> Reserved:
        keys = {b.key for d in demands for b in d.buckets}
        now = time.time()
        with self._lock:
            used, reserved = self._state(customer_id, keys, now)
            outcome, hold = plan_reservation(demands, used, reserved)
            if outcome.ok and hold:
                self._held.setdefault(customer_id, {})[reservation_id] = (now + lease, hold)
        return outcome

    def settle(self, customer_id: str, reservation_id: str, demands: Sequence[Demand]) -> Settled:
        keys = {b.key for d in demands for b in d.buckets}
        now = time.time()
        with self._lock:
            self._held.get(customer_id, {}).pop(reservation_id, None)
            used, reserved = self._state(customer_id, keys, now)
            outcome, add = plan_settlement(demands, used, reserved)
            expiry = {b.key: b.expires_at for d in demands for b in d.buckets}
            for k, v in add.items():
                self._used[(customer_id, k)] = used[k] + v
                self._expires[(customer_id, k)] = expiry[k]
            if len(self._expires) > 10_000:
                self._purge(now)
        return outcome

    def settle_once(self, customer_id: str, settlement_id: str, demands: Sequence[Demand],
                    expires_at: float) -> Settled | None:
        """``settle``, at most once per ``settlement_id`` until ``expires_at`` (None: settled before)."""
        with self._lock:
            mark = (customer_id, f"settled:{settlement_id}")
            if self._marks.get(mark, 0) > time.time():
                return None
            self._marks[mark] = expires_at
        return self.settle(customer_id, settlement_id, demands)

    def _purge(self, now: float) -> None:
        for key in [k for k, t in self._expires.items() if t <= now]:
            self._used.pop(key, None)
            del self._expires[key]

    def release(self, customer_id: str, reservation_id: str) -> None:
        with self._lock:
            self._held.get(customer_id, {}).pop(reservation_id, None)

    def balances(self, customer_id: str, buckets: Sequence[Bucket]) -> dict[str, tuple[int, int]]:
        with self._lock:
            used, reserved = self._state(customer_id, {b.key for b in buckets}, time.time())
        return {b.key: (used[b.key], reserved.get(b.key, 0)) for b in buckets}

    def open_reservations(self, customer_id: str | None = None) -> int:
        now = time.time()
        with self._lock:
            groups = [self._held.get(customer_id, {})] if customer_id is not None else list(self._held.values())
            return sum(1 for g in groups for expires, _ in g.values() if expires > now)

    def mark_once(self, customer_id: str, mark: str, expires_at: float) -> bool:
        now = time.time()
        with self._lock:
            if self._marks.get((customer_id, mark), 0) > now:
                return False
            self._marks[(customer_id, mark)] = expires_at
            return True

    def config_version(self) -> int:
        return self._version

    def get_config(self, kind: str, name: str) -> str | None:
        return self._config.get((kind, name))

    def list_config(self, kind: str) -> dict[str, str]:
        with self._lock:
            return {n: v for (k, n), v in self._config.items() if k == kind}

    def put_config(self, kind: str, name: str, value: str | None) -> None:
        with self._lock:
            if value is None:
                self._config.pop((kind, name), None)
            else:
                self._config[(kind, name)] = value
            self._version += 1

    def close(self) -> None:
        pass
