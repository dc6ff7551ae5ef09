"""The QuotaStore protocol: atomic reserve / settle / release, plus the customers' settings.

Amounts are integers in store units (see :mod:`..amounts`). A store makes each of ``reserve``,
``settle`` and ``release`` atomic for a customer across every process that shares it — a lock (in
process), a ``BEGIN IMMEDIATE`` transaction (SQLite), a Lua script (Redis). Reservations older than their
lease are ignored and eventually deleted, so a process that dies mid-call holds nothing for long.

Settings (plans, customers, grants) are small JSON documents under ``(kind, name)``; every write bumps
``config_version`` so other processes know to reload them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from ..reservations import Bucket, Demand, Reserved, Settled

__all__ = ["QuotaStore"]


@runtime_checkable
class QuotaStore(Protocol):
    """Storage for quota counters, reservations and settings, shared by the processes that use it."""

    def reserve(self, customer_id: str, reservation_id: str, demands: Sequence[Demand], lease: float) -> Reserved:
        """Hold every demand for ``lease`` seconds, or nothing if an enforced one does not fit."""

    def settle(self, customer_id: str, reservation_id: str, demands: Sequence[Demand]) -> Settled:
        """Drop the reservation (if still held) and add the actual amounts in ``demands`` to the counters."""

    # Optional: ``settle_once(customer_id, settlement_id, demands, expires_at) -> Settled | None`` settles at most
    # once per id (None: settled before), atomically; a store without it is marked first (``mark_once``), then settled.

    def release(self, customer_id: str, reservation_id: str) -> None:
        """Drop the reservation without using anything."""

    def balances(self, customer_id: str, buckets: Sequence[Bucket]) -> dict[str, tuple[int, int]]:
        """``{bucket key: (used, reserved)}`` for the buckets given."""

    def open_reservations(self, customer_id: str | None = None) -> int:
        """How many reservations are held and not expired (for one customer, or all)."""

    def mark_once(self, customer_id: str, mark: str, expires_at: float) -> bool:
        """True the first time ``mark`` is set for the customer (until ``expires_at``), False after."""

    def config_version(self) -> int:
        """A number that changes whenever a setting is written."""

    def get_config(self, kind: str, name: str) -> str | None:
        """The JSON document stored under ``(kind, name)``."""

    def list_config(self, kind: str) -> dict[str, str]:
        """Every document of ``kind`` by name."""

    def put_config(self, kind: str, name: str, value: str | None) -> None:
        """Store (``None``: delete) a document and bump the version."""

    def close(self) -> None:
        """Release connections."""
