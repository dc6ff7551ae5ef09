"""What a destination is: a name, a batch size, and ``deliver(events) -> Result``.

Destinations are shaped like httpx transports: one required method, the mechanics (the outbox, leases,
retries with back-off, splitting a refused batch, counters, draining at exit) in :class:`~.worker.Delivery`,
shared by every destination. An encoder is a pure function from events to the receiver's request body
(``encoders/``); a destination pairs one with a way to send it. Write your own by implementing the protocol::

    class Mine:
        name = "mine"                     # the key of its cursor: renaming it starts delivery over
        max_batch = 100
        def accepts(self, event) -> str | None:  return None       # None: deliver it; a reason: skip it
        def deliver(self, events) -> Result:      ...               # send them; say what happened
        def close(self) -> None:                  ...

A delivery must be idempotent on ``event.id``: the outbox sends at least once (a crash between the receiver's
answer and the cursor's advance sends a batch again), and the receiver's dedup on our key makes it once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

from ..events import UsageEvent

__all__ = ["Destination", "Result"]


@dataclass(frozen=True, slots=True)
class Result:
    """What became of one delivery.

    - ``delivered``: the receiver has every event (duplicates it already had included);
    - ``retry``: nothing was taken, try the same events again later (after ``retry_after`` seconds if the
      receiver said so): connection errors, timeouts, 408, 429, 5xx;
    - ``rejected``: the receiver refuses the batch (another 4xx). ``refused`` names the events it said were
      bad, when it said so; the others are sent again at once. Without names, the batch is split in halves
      until the bad events are alone, and those are parked with ``reason``.
    """

    outcome: Literal["delivered", "retry", "rejected"]
    reason: str | None = None
    retry_after: float | None = None
    refused: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def ok(cls) -> Result:
        return _DELIVERED

    @classmethod
    def again(cls, reason: str, retry_after: float | None = None) -> Result:
        return cls("retry", reason, retry_after)

    @classmethod
    def refuse(cls, reason: str, refused: Mapping[str, str] | None = None) -> Result:
        return cls("rejected", reason, None, dict(refused or {}))


_DELIVERED = Result("delivered")


@runtime_checkable
class Destination(Protocol):
    """Where events are delivered. See the module docstring."""

    name: str
    """Stable: it keys the destination's cursor in the outbox."""
    max_batch: int
    """Events per delivery, at most (the receiver's own limit: Lago and Stripe take 100)."""

    def accepts(self, event: UsageEvent) -> str | None:
        """None to deliver ``event``; otherwise why it is skipped (settled without being sent)."""

    def deliver(self, events: Sequence[UsageEvent]) -> Result:
        """Send ``events`` (idempotent on their ids) and say what happened. Raising counts as a retry."""

    def close(self) -> None:
        """Release connections."""
