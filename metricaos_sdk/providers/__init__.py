"""Pure extraction of usage from provider responses, chunks and SSE events. No I/O."""

from .base import Endpoint, InvalidUsage, StreamState

__all__ = ["Endpoint", "InvalidUsage", "StreamState"]
