"""Delivery: committed events sent on to the systems that bill and aggregate them, exactly once.

The SQLite sink is the outbox (``outbox.py``); a thread per destination moves its events on (``worker.py``);
each destination is a name, a batch size and ``deliver(events) -> Result`` (``destination.py``), with a pure
encoder per receiver. At-least-once sending, deterministic keys from the event id, and the receiver's
deduplication on them make it exactly once. See docs/delivery.md.
"""

from .destination import Destination, Result
from .http_json import HTTPJSON
from .outbox import Outbox, Status
from .worker import Delivery, DeliveryPolicy

__all__ = ["HTTPJSON", "Delivery", "DeliveryPolicy", "Destination", "Outbox", "Result", "Status"]
