"""Delivery tied to a SQLite sink: woken by its commits, drained at exit and on SIGTERM."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Sequence

from ..config import MeterConfig
from ..errors import ConfigurationError
from ..sinks.sqlite import SQLiteSink
from .destination import Destination
from .worker import Delivery

__all__ = ["attach"]



def attach(sink: object, destinations: Sequence[Destination], config: MeterConfig,
           fault: Callable[[str], None]) -> Delivery:
    """A running :class:`Delivery` of ``sink``'s events (the sink must be the SQLite outbox)."""
    if not isinstance(sink, SQLiteSink):
        raise ConfigurationError(f"Delivery needs the SQLite sink as its outbox (events are committed there before "
                                 f"they are sent), not {type(sink).__name__}: use Meter(path, deliver_to=[...]).")
    for destination in destinations:
        if not isinstance(destination, Destination):
            raise ConfigurationError(f"{type(destination).__name__} is not a delivery destination: it needs name, "
                                     "max_batch, accepts(event), deliver(events) and close().")
    delivery = Delivery(str(sink.database.path), destinations, fault=fault)
    sink.on_commit.append(delivery.notify)
    delivery.start()
    if config.deliver_on_sigterm:
        _drain_on_sigterm()
    return delivery


def _drain_on_sigterm() -> None:
    """Make SIGTERM an orderly exit — ``SystemExit(143)`` in the main thread, so ``finally`` blocks and exit hooks
    run and the meter's ``close()`` delivers what it can in ``delivery_timeout`` — where nothing else handles
    SIGTERM (its default disposition, which ends the process at once), from the main thread (where handlers are
    set). An application with its own handler should call ``meter.close()`` there."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "SIGTERM"):
        return
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _on_sigterm)


def _on_sigterm(signum: int, frame: object) -> None:
    # Not the delivery itself: a handler runs between any two bytecodes of the main thread, maybe inside our own
    # locks; the exit it starts runs close() where ordinary code runs.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM ends it at once
    raise SystemExit(128 + signum)
