"""Delivery: committed events sent on to the systems that bill and aggregate them, exactly once.

The SQLite sink is the outbox (``outbox.py``); a thread per destination moves its events on (``worker.py``);
each destination is a name, a batch size and ``deliver(events) -> Result`` (``destination.py``), with a pure
encoder per receiver. At-least-once sending, deterministic keys from the event id, and the receiver's
deduplication on them make it exactly once. See docs/delivery.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .destination import Destination, Result
from .outbox import Outbox, Status
from .worker import Delivery, DeliveryPolicy

if TYPE_CHECKING:
    from .http_json import HTTPJSON
    from .lago import Lago
    from .openmeter import OpenMeter
    from .otel import OpenTelemetry
    from .postgres import PostgreSQL
    from .stripe import StripeMeter

__all__ = ["HTTPJSON", "Delivery", "DeliveryPolicy", "Destination", "Lago", "OpenMeter", "OpenTelemetry",
           "Outbox", "PostgreSQL", "Result", "Status", "StripeMeter"]

_OPTIONAL = {"OpenTelemetry": "otel", "PostgreSQL": "postgres", "HTTPJSON": "http_json", "Lago": "lago",
             "OpenMeter": "openmeter", "StripeMeter": "stripe"}
"""Destinations, imported when first named: importing this package (which ``import metricaos_sdk`` does) never
imports a destination the app does not use, nor the client library of one that needs an optional extra
(``PostgreSQL`` needs psycopg: ``pip install 'metricaos-sdk[postgres]'``; ``OpenTelemetry`` the OpenTelemetry
SDK: ``pip install 'metricaos-sdk[otel]'``)."""


def __getattr__(name: str) -> Any:
    module = _OPTIONAL.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value
