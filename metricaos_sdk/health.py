"""``meter.health()``: what the meter holds and how it fared, for a status page or a readiness probe."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from .delivery.outbox import Status
from .faults import Fault

__all__ = ["Health"]


class Health(BaseModel):
    """A snapshot; every count is since the meter was made, unless it says "now"."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    faults: int
    """Metering faults logged and swallowed (never raised into a call)."""
    last_fault: Fault | None = None
    """The last of them: what failed, the exception's type, and when."""
    closed: bool = False
    open_streams: int = 0
    """Streams (and bodies being read) open now; :meth:`Meter.close` records them as cancelled."""
    events_pending: int = 0
    """Events recorded and not yet committed to the store now (journaled: they survive a crash)."""
    events_in_memory_only: int = 0
    """Of those, events the journal could not take (a full or missing disk): held in memory until committed, and
    lost if the process dies first."""
    journal_replaced: int = 0
    """Times a journal segment was found deleted under the running process and its events journaled again."""
    quota_store_available: bool = True
    """False while the quota store failed its last call-path operation: calls skip it (fail open or closed, as
    configured) until it answers again."""
    quota_settlements_pending: int = 0
    """Settlements of finished calls waiting for the quota store now, retried in the background."""
    deliveries: list[Status] = []
    """Where each delivery destination stands: queued, delivered, skipped, retried, failed (parked), and why."""
