"""MemorySink: keeps events in a list. For tests and examples, as httpx ships MockTransport."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from datetime import datetime

from ..events import UsageEvent

__all__ = ["MemorySink"]


class MemorySink:
    """Events in memory, deduplicated on ``id``, readable back with :meth:`events`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: dict[str, UsageEvent] = {}

    def write(self, events: Sequence[UsageEvent]) -> None:
        with self._lock:
            for event in events:
                self._events.setdefault(event.id, event)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass

    def events(
        self,
        *,
        customer_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int | None = None,
    ) -> Iterator[UsageEvent]:
        with self._lock:
            found = sorted(self._events.values(), key=lambda e: (e.timestamp, e.id))
        found = [
            e
            for e in found
            if (customer_id is None or e.customer_id == customer_id)
            and (since is None or e.timestamp >= since)
            and (until is None or e.timestamp < until)
        ]
        return iter(found[:limit] if limit is not None else found)

    def __len__(self) -> int:
        return len(self._events)
