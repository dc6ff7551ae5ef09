"""Where quota definitions and period usage live.

A ``QuotaStore`` answers two questions before each call — which limits apply to this customer, and what
has the customer used since a date — and learns of each billable event after it. The SQLite store keeps
both in the events database so separate processes share them; the in-memory store is per process.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from datetime import date, datetime, timezone
from decimal import Decimal
from typing import Protocol, runtime_checkable

from ..events import UsageEvent
from .limits import Quota, UsageTotals

__all__ = ["InMemoryQuotaStore", "QuotaStore"]


@runtime_checkable
class QuotaStore(Protocol):
    """Storage for quota definitions and per-day usage of billable events."""

    def quotas(self, customer_id: str) -> list[Quota]:
        """The limits set for ``customer_id`` (empty when none)."""

    def set_quota(self, quota: Quota) -> None:
        """Create or replace the limit for ``(quota.customer_id, quota.unit)``."""

    def remove_quotas(self, customer_id: str) -> None:
        """Drop every limit of ``customer_id``."""

    def used_since(self, customer_id: str, since: datetime) -> UsageTotals:
        """Billable usage of ``customer_id`` from the UTC day of ``since`` on."""

    def add(self, event: UsageEvent) -> None:
        """Count a billable event (stores fed by their sink in the same transaction make this a no-op)."""


class InMemoryQuotaStore:
    """A per-process quota store, for tests and for meters whose sink is not SQLite."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._quotas: dict[str, dict[str, Quota]] = defaultdict(dict)
        self._daily: dict[tuple[str, date], UsageTotals] = {}
        self._seen: set[str] = set()

    def quotas(self, customer_id: str) -> list[Quota]:
        return list(self._quotas.get(customer_id, {}).values())

    def set_quota(self, quota: Quota) -> None:
        with self._lock:
            self._quotas[quota.customer_id][quota.unit] = quota

    def remove_quotas(self, customer_id: str) -> None:
        with self._lock:
            self._quotas.pop(customer_id, None)

    def used_since(self, customer_id: str, since: datetime) -> UsageTotals:
        first = since.astimezone(timezone.utc).date()
        tokens = requests = 0
        cost = Decimal(0)
        with self._lock:
            for (customer, day), totals in self._daily.items():
                if customer == customer_id and day >= first:
                    tokens += totals.tokens
                    requests += totals.requests
                    cost += totals.cost_usd
        return UsageTotals(tokens=tokens, requests=requests, cost_usd=cost)

    def add(self, event: UsageEvent) -> None:
        if not event.billable or event.customer_id is None:
            return
        key = (event.customer_id, event.timestamp.astimezone(timezone.utc).date())
        with self._lock:
            if event.id in self._seen:  # the event id is an idempotency key
                return
            self._seen.add(event.id)
            old = self._daily.get(key, UsageTotals())
            self._daily[key] = UsageTotals(
                tokens=old.tokens + event.total_tokens,
                requests=old.requests + 1,
                cost_usd=old.cost_usd + (event.cost_usd or 0),
            )
