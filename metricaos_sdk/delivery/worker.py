"""Delivery: one thread per destination moving committed events from the outbox to the receiver.

A round: take (or renew) the destination's lease; read the next batch past its cursor; deliver it; settle
what was decided. A refused batch is split in halves until the events the receiver refuses are alone, and
those are parked (the receiver's reason kept) while the rest go on; a batch that fails for a reason worth
retrying (no answer, 408, 429, 5xx) is sent again after a back-off with jitter, ``Retry-After`` honoured.
Only the longest prefix of a batch whose every event is decided is settled — the cursor never passes an event
still owed — and what was decided past it is remembered, so a retry does not send it again.

The caller's thread never waits on any of this: the call made its local commit; the SQLite writer wakes the
threads after each commit. ``flush(timeout)`` waits, at most that long, for every destination to settle what
was committed when it was called; ``stop()`` does the same and ends the threads. A process that dies leaves
its lease to lapse; the next process on the file, or ``metricaos deliver``, goes on from the cursor.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .._fork import renew_after_fork
from ..errors import ConfigurationError
from ..faults import describe, log_fault
from .destination import Destination, Result
from .outbox import Outbox, Pending, Status, holder_id

__all__ = ["Delivery", "DeliveryPolicy"]

log = logging.getLogger("metricaos_sdk")


@dataclass(frozen=True, slots=True)
class DeliveryPolicy:
    """How hard delivery tries. Every bound here is a ceiling on memory or time, never a reason to drop."""

    first_backoff: float = 0.5
    """Seconds before the first retry; each failure doubles it (with jitter: between half and all of it)."""
    longest_backoff: float = 60.0
    longest_retry_after: float = 3600.0
    """A receiver's ``Retry-After`` is honoured up to this."""
    retry_horizon: float = 72 * 3600.0
    """A batch that has been failing (with retryable errors) this long is parked, so later events can move;
    ``metricaos deliveries retry`` sends it again."""
    poll_interval: float = 1.0
    """How often an idle thread looks for events committed by other processes on the file."""
    lease_seconds: float = 30.0


class _Later(Exception):
    def __init__(self, result: Result) -> None:
        self.result = result


class Delivery:
    """Delivers the events of one SQLite outbox to ``destinations``."""

    def __init__(self, database: str, destinations: Sequence[Destination], *, policy: DeliveryPolicy | None = None,
                 fault: Callable[[str], None] | None = None) -> None:
        names = [d.name for d in destinations]
        if len(set(names)) != len(names):
            raise ConfigurationError(f"Destination names must differ (each keys a cursor), got {names}: pass name= "
                                     "to tell them apart.")
        self.destinations = list(destinations)
        self.policy = policy or DeliveryPolicy()
        self.outbox = Outbox(database)
        self._fault = fault or (lambda what: log_fault(log, what))
        self._holder = holder_id()
        self._cond = threading.Condition()
        self._threads: dict[str, threading.Thread] = {}
        self._stopping = False
        self._commits = 0
        self._decided: dict[str, dict[int, tuple[str, str | None]]] = {d.name: {} for d in destinations}
        self._failures: dict[str, int] = {d.name: 0 for d in destinations}
        self._backoff: dict[str, float] = {d.name: 0.0 for d in destinations}
        self._leased_until: dict[str, float] = {d.name: 0.0 for d in destinations}
        renew_after_fork(self, _cond=threading.Condition, _threads=dict, _holder=holder_id,
                         _leased_until=lambda: dict.fromkeys(names, 0.0))  # a child holds no lease

    # -- life-cycle ---------------------------------------------------------------------------------
    def start(self) -> None:
        """Start a thread per destination (not again if running)."""
        with self._cond:
            self._stopping = False
            for destination in self.destinations:
                thread = self._threads.get(destination.name)
                if thread is None or not thread.is_alive():
                    thread = threading.Thread(target=self._run, args=(destination,), daemon=True,
                                              name=f"metricaos-deliver-{destination.name}")
                    self._threads[destination.name] = thread
                    thread.start()

    def notify(self) -> None:
        """Events were committed: wake the threads."""
        with self._cond:
            self._commits += 1
            self._cond.notify_all()

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every destination settled what was committed now (or ``timeout`` passes); True if they did."""
        deadline = time.monotonic() + timeout
        target = self.outbox.high_water()
        self.notify()
        running = any(t.is_alive() for t in self._threads.values())
        for destination in self.destinations:
            while self.outbox.owed(destination.name, target):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                if not running:
                    if not self.run_once(destination):
                        return False
                    continue
                with self._cond:
                    self._cond.wait(min(left, 0.05))
        return True

    def stop(self, timeout: float = 5.0) -> bool:
        """Deliver what is committed (for up to ``timeout`` seconds), then end the threads and let go of the leases.
        What is left stays in the outbox for the next process or ``metricaos deliver``."""
        drained = self.flush(timeout)
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
            threads = list(self._threads.values())
        for thread in threads:
            thread.join(max(timeout, 1.0))
        for destination in self.destinations:
            try:
                self._leased_until[destination.name] = 0.0
                self.outbox.release(destination.name, self._holder)
                destination.close()
            except Exception:
                self._fault(f"could not close the delivery to {destination.name}")
        self.outbox.close()
        return drained

    def status(self) -> list[Status]:
        return self.outbox.status([d.name for d in self.destinations])

    # -- one destination ----------------------------------------------------------------------------
    def _run(self, destination: Destination) -> None:
        name = destination.name
        while True:
            with self._cond:
                if self._stopping:
                    return
            try:
                worked = self.run_once(destination)
            except Exception:
                self._fault(f"delivery to {name} failed unexpectedly; it is retried")
                self._failures[name] += 1
                self._backoff[name] = self.policy.longest_backoff
                worked = False
            if worked:
                continue
            with self._cond:
                if self._failures[name]:  # a back-off runs its course: only stop() cuts it short
                    deadline = time.monotonic() + self._backoff[name]
                    while not self._stopping and (left := deadline - time.monotonic()) > 0:
                        self._cond.wait(left)
                else:  # idle: until something is committed here, or the poll for other processes' commits
                    seen = self._commits
                    self._cond.wait_for(lambda seen=seen: self._stopping or self._commits != seen,  # type: ignore[misc]
                                        self.policy.poll_interval)

    def run_once(self, destination: Destination) -> bool:
        """One round for ``destination``; True if it settled something (there may be more)."""
        name = destination.name
        if not self._hold_lease(name):
            return False  # another process on the file delivers here
        pending = self.outbox.batch(name, destination.max_batch)
        if not pending:
            self._decided[name].clear()
            return False
        decided = self._decided[name]
        known = {p.rowid for p in pending}
        for rowid in [r for r in decided if r not in known]:
            del decided[rowid]
        later: Result | None = None
        try:
            self._send(destination, [p for p in pending if p.rowid not in decided], decided)
        except _Later as exc:
            later = exc.result
        settled = self._settle(destination, pending, decided)
        if later is not None:
            self._failed(destination, pending, later)
        else:
            self._failures[name] = 0
        return settled > 0 and later is None

    def _hold_lease(self, name: str) -> bool:
        """Take or renew the lease on ``name`` — a write transaction, so only once a third of it has run (a round
        that renewed it every batch would take the file's write lock twice a batch, beside the sink's writer)."""
        seconds = self.policy.lease_seconds
        now = time.time()
        if now < self._leased_until[name] - seconds * 2 / 3:
            return True
        if not self.outbox.lease(name, self._holder, seconds):
            self._leased_until[name] = 0.0
            return False
        self._leased_until[name] = now + seconds
        return True

    def _send(self, destination: Destination, group: list[Pending], decided: dict[int, tuple[str, str | None]]) -> None:
        """Deliver ``group``, recording each event's fate in ``decided``; raises _Later on a retryable failure."""
        if not group:
            return
        sendable = []
        for p in group:
            try:
                reason = destination.accepts(p.event)
            except Exception as exc:
                reason = f"could not be encoded ({describe(exc)})"
                decided[p.rowid] = ("parked", reason)
                continue
            if reason is None:
                sendable.append(p)
            else:
                decided[p.rowid] = ("skipped", reason)
        if not sendable:
            return
        try:
            result = destination.deliver([p.event for p in sendable])
        except Exception as exc:
            result = Result.again(f"delivery raised {describe(exc)}")
        if result.outcome == "delivered":
            for p in sendable:
                decided[p.rowid] = ("delivered", None)
            return
        if result.outcome == "retry":
            raise _Later(result)
        named = [p for p in sendable if p.event.id in result.refused]
        if named:
            for p in named:
                decided[p.rowid] = ("parked", result.refused[p.event.id])
            self._send(destination, [p for p in sendable if p.event.id not in result.refused], decided)
        elif len(sendable) == 1:
            decided[sendable[0].rowid] = ("parked", result.reason or "refused by the receiver")
        else:
            middle = len(sendable) // 2
            self._send(destination, sendable[:middle], decided)
            self._send(destination, sendable[middle:], decided)

    def _settle(self, destination: Destination, pending: list[Pending],
                decided: dict[int, tuple[str, str | None]]) -> int:
        """Settle the longest prefix of ``pending`` whose every event is decided."""
        prefix = []
        for p in pending:
            if p.rowid not in decided:
                break
            prefix.append(p)
        if not prefix:
            return 0
        outcomes = [(p, decided.pop(p.rowid)) for p in prefix]
        delivered = sum(1 for _, (fate, _r) in outcomes if fate == "delivered")
        skipped = sum(1 for _, (fate, _r) in outcomes if fate == "skipped")
        parked = [(p, reason or "refused") for p, (fate, reason) in outcomes if fate == "parked"]
        self.outbox.settle(destination.name, prefix, delivered=delivered, skipped=skipped, parked=parked)
        for p, reason in parked:
            log.warning("metricaos_sdk: %s refused event %s; it is parked (%s)", destination.name, p.event.id, reason)
        with self._cond:
            self._cond.notify_all()
        return len(prefix)

    def _failed(self, destination: Destination, pending: list[Pending], result: Result) -> None:
        name = destination.name
        self._failures[name] += 1
        reason = result.reason or "no reason given"
        failing_since = self.outbox.failed(name, reason)
        if time.time() - failing_since > self.policy.retry_horizon:
            hours = self.policy.retry_horizon / 3600
            self.outbox.settle(name, pending, delivered=0, skipped=0,
                               parked=[(p, f"not delivered within {hours:g} h: {reason}") for p in pending])
            self._decided[name].clear()
            self._failures[name] = 0
            return
        backoff = min(self.policy.first_backoff * 2 ** (self._failures[name] - 1), self.policy.longest_backoff)
        backoff *= random.uniform(0.5, 1.0)  # jitter: hosts that failed together do not retry together
        if result.retry_after is not None:
            backoff = max(backoff, min(result.retry_after, self.policy.longest_retry_after))
        self._backoff[name] = backoff
        if self._failures[name] in (1, 10, 100) or self._failures[name] % 1000 == 0:
            log.warning("metricaos_sdk: delivery to %s failed (%s); retrying in %.1f s (failure %d)", name, reason,
                        backoff, self._failures[name])
