"""The Sink interface: where events go. Shaped like an httpx transport — one required method.

A sink receives events of calls that have finished. ``write`` must be idempotent on ``event.id`` (a
retried delivery must not count twice). The meter calls ``write`` synchronously after each call, inside
a guard: an exception from a sink is logged and counted, never raised into the caller's LLM call.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Protocol, runtime_checkable

from ..events import UsageEvent

__all__ = ["EventQuery", "Sink"]


@runtime_checkable
class Sink(Protocol):
    """Receives finished events. Implement ``write``; ``flush`` and ``close`` may do nothing."""

    def write(self, events: Sequence[UsageEvent]) -> None:
        """Persist or forward ``events``. Idempotent on ``event.id``."""

    def flush(self) -> None:
        """Block until every event written so far is delivered."""

    def close(self) -> None:
        """Flush and release resources. Called once by ``Meter.close()`` and at interpreter exit."""


@runtime_checkable
class EventQuery(Protocol):
    """A sink that can also read its events back (SQLite and memory sinks do; an HTTP sink does not)."""

    def events(
        self,
        *,
        customer_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int | None = None,
    ) -> Iterable[UsageEvent]:
        """Events in time order, filtered."""
