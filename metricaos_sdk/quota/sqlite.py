"""SQLiteQuotaStore: quota definitions and the per-day ledger in the events database.

The ledger is written by :class:`~metricaos_sdk.sinks.SQLiteSink` in the same transaction as the event,
so ``add`` has nothing to do; processes sharing the file share the quotas. Events this process wrote but
the sink has not committed yet are added from ``pending`` (the sink's ``pending_usage``).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from decimal import Decimal

from ..events import UsageEvent
from ..storage.database import Database
from .limits import Quota, UsageTotals

__all__ = ["SQLiteQuotaStore"]


class SQLiteQuotaStore:
    """Quotas and usage counters shared by every process using the same SQLite file."""

    def __init__(self, database: Database, pending: Callable[[str, str], UsageTotals] | None = None) -> None:
        self.database = database
        self.pending = pending

    def quotas(self, customer_id: str) -> list[Quota]:
        conn = self.database.connection()
        with self.database.lock:
            rows = conn.execute(
                "SELECT unit, period, limit_value FROM quotas WHERE customer_id = ? ORDER BY unit", (customer_id,)
            ).fetchall()
        return [
            Quota(customer_id, unit, Decimal(limit) if unit == "cost_usd" else int(limit), period)
            for unit, period, limit in rows
        ]

    def set_quota(self, quota: Quota) -> None:
        with self.database.transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO quotas (customer_id, unit, period, limit_value) VALUES (?, ?, ?, ?)",
                (quota.customer_id, quota.unit, quota.period, str(quota.limit)),
            )

    def remove_quotas(self, customer_id: str) -> None:
        with self.database.transaction() as conn:
            conn.execute("DELETE FROM quotas WHERE customer_id = ?", (customer_id,))

    def used_since(self, customer_id: str, since: datetime) -> UsageTotals:
        day = since.astimezone(timezone.utc).date().isoformat()
        conn = self.database.connection()
        with self.database.lock:
            rows = conn.execute(
                "SELECT tokens, requests, cost_usd FROM usage_daily WHERE customer_id = ? AND day >= ?",
                (customer_id, day),
            ).fetchall()
        extra = self.pending(customer_id, day) if self.pending is not None else UsageTotals()
        return UsageTotals(
            tokens=sum(r[0] for r in rows) + extra.tokens,
            requests=sum(r[1] for r in rows) + extra.requests,
            cost_usd=sum((Decimal(r[2]) for r in rows), extra.cost_usd),
        )

    def add(self, event: UsageEvent) -> None:
        pass  # SQLiteSink.write keeps the ledger in the event's own transaction
