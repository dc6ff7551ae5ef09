"""The spike watcher: :func:`~metricaos_sdk.reports.alerts.detect_spikes` on a schedule, in an ordinary daemon
thread, calling the user's callback once per spike. Every fault is logged and counted, never raised: the
watcher runs beside the product's LLM calls and must never reach into them."""

from __future__ import annotations

import logging
import math
import os
import threading
from collections.abc import Callable
from datetime import datetime, timezone

from ..errors import ConfigurationError
from ..faults import Fault, log_fault
from .alerts import Spike, SpikeRules, as_utc, detect_spikes
from .source import EventSource, open_source

__all__ = ["SourceLike", "SpikeWatcher"]

log = logging.getLogger("metricaos_sdk")

SourceLike = str | os.PathLike[str] | EventSource | Callable[[], EventSource]


class SpikeWatcher:
    """Runs :func:`detect_spikes` every ``interval`` seconds on a daemon thread and calls ``callback(spike)`` once
    per spike (dimension, key, window) — never twice for the same one.

    ``source`` is a SQLite path or ``postgresql://`` URL (opened for each run, then closed), a callable that
    opens a new :class:`~metricaos_sdk.reports.source.EventSource` (the watcher closes it after the run), or an
    open source (used from the watcher's thread, never closed by it). Every exception of the detector or the
    callback is caught, logged (the sentence and exception type of :func:`~metricaos_sdk.faults.log_fault`: no
    prompt text, no keys) and counted in ``faults``. The callback runs on the watcher's thread.

        with SpikeWatcher("metricaos.db", SpikeRules(window="hour"), notify, interval=60):
            ...
    """

    def __init__(self, source: SourceLike, rules: SpikeRules | None, callback: Callable[[Spike], object], *,
                 interval: float = 60.0, clock: Callable[[], datetime] | None = None) -> None:
        self.rules = SpikeRules() if rules is None else rules
        if not isinstance(self.rules, SpikeRules):
            raise ConfigurationError(f"rules must be a SpikeRules, like SpikeRules(window='day'); got "
                                     f"{type(rules).__name__}.")
        if not callable(callback):
            raise ConfigurationError(f"callback must be callable with one Spike; got {type(callback).__name__}.")
        if isinstance(interval, bool) or not isinstance(interval, (int, float)) or not 0 < interval < math.inf:
            raise ConfigurationError(f"interval {interval!r} is not a positive number of seconds: pass one, "
                                     f"such as 60.")
        self._open, self._owns = _opener(source)
        self.callback = callback
        self.interval = float(interval)
        self.clock = clock or (lambda: datetime.now(timezone.utc))
        """The current time of each run (an aware datetime; replace it to replay a past period)."""
        self.faults = 0
        """How many exceptions of the detector or the callback were logged and swallowed."""
        self.last_fault: Fault | None = None
        self._seen: set[tuple[str, str, datetime]] = set()
        self._lock = threading.Lock()  # guards _seen and the counters; never held while calling back
        self._start_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stopping: threading.Event | None = None

    @property
    def running(self) -> bool:
        """Whether the watcher's thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> SpikeWatcher:
        """Start the thread (no-op when running). The first run is immediate."""
        with self._start_lock:
            if not self.running:
                self._stopping = threading.Event()  # each thread its own: a late old thread never revives
                self._thread = threading.Thread(target=self._run, args=(self._stopping,),
                                                name="metricaos-spike-watcher", daemon=True)
                self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> bool:
        """Stop the thread, waiting at most ``timeout`` seconds for a run in progress; whether it has stopped."""
        with self._start_lock:
            thread, stopping = self._thread, self._stopping
        if thread is None or stopping is None:
            return True
        stopping.set()
        if thread is threading.current_thread():  # stopped from the callback: the loop ends after this run
            return False
        thread.join(timeout)
        return not thread.is_alive()

    def close(self) -> None:
        """Stop the thread (as :meth:`stop`)."""
        self.stop()

    def __enter__(self) -> SpikeWatcher:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def check(self, *, now: datetime | None = None) -> list[Spike]:
        """Run the detector once and call back for each spike not seen before; returns those. Never raises."""
        try:
            at = as_utc(self.clock() if now is None else now)
            source = self._open()
            try:
                spikes = detect_spikes(source, self.rules, now=at)
            finally:
                if self._owns:
                    source.close()
        except Exception:
            self._fault("spike detection failed")
            return []
        window_start = self.rules.current_window(at)[0]
        with self._lock:
            new = [s for s in spikes if s.id not in self._seen]
            self._seen = {seen for seen in self._seen if seen[2] >= window_start} | {s.id for s in new}
        for spike in new:
            try:
                self.callback(spike)
            except Exception:
                self._fault("the spike callback raised")
        return new

    def _fault(self, what: str) -> None:
        fault = log_fault(log, what)
        with self._lock:
            self.faults += 1
            self.last_fault = fault

    def _run(self, stopping: threading.Event) -> None:
        while not stopping.is_set():
            try:
                self.check()
            except Exception:  # check() never raises; this keeps the thread alive if that ever breaks
                self._fault("the spike watcher failed")
            if stopping.wait(self.interval):
                break


def _opener(source: SourceLike) -> tuple[Callable[[], EventSource], bool]:
    if isinstance(source, (str, os.PathLike)):
        return (lambda: open_source(source)), True
    if hasattr(source, "query") and hasattr(source, "moment"):
        return (lambda: source), False  # type: ignore[return-value]
    if callable(source):
        return source, True
    raise ConfigurationError(f"source must be a database path or URL, an EventSource or a callable opening one; got "
                             f"{type(source).__name__}.")
