"""The outbox: committed events, read in commit order per destination, settled by advancing a cursor.

The events table is the queue. SQLite serialises writers, so rowid order is commit order across every
process on the file: a destination's cursor (the last rowid it settled) never skips a row committed after it.
An event is settled when the receiver took it, when the destination does not take that kind of event
(``skipped``), or when the receiver refused it (``parked`` in ``delivery_failures`` with its reason, until
``retry_parked`` puts it back) — never dropped. One process at a time delivers to a destination: it holds a
lease on the destination's row, renewed while it works; a process that dies lets it lapse, and the next one
on the file takes over from the cursor.

All of this runs off the call path (the delivery thread, the CLI): it waits on SQLite as long as it must.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

from .._fork import renew_after_fork
from ..events import UsageEvent
from ..storage.database import immediate_transaction
from ..storage.rows import events_from_rows

__all__ = ["Outbox", "Pending", "Status"]


@dataclass(frozen=True, slots=True)
class Pending:
    """An event waiting for a destination: its rowid in the outbox, and the event."""

    rowid: int
    event: UsageEvent
    parked: bool = False
    """Put back by ``retry_parked`` after a receiver refused it: sent again, first."""


@dataclass(frozen=True, slots=True)
class Status:
    """Where one destination stands, as the outbox records it (every process's work on the file)."""

    destination: str
    queued: int
    """Committed events past the cursor: not delivered yet."""
    delivered: int
    skipped: int
    """Events the destination does not take (an unmapped customer, an event type it does not bill)."""
    retried: int
    """Deliveries that failed and were tried again (each attempt counted)."""
    failed: int
    """Events parked because the receiver refused them; ``metricaos deliveries retry`` sends them again."""
    failing_since: float | None
    """Since when (epoch seconds) delivery has been failing without a success, if it is."""
    last_error: str | None
    last_delivery_at: float | None
    holder: str | None
    """The process delivering (``host:pid:tag``) while its lease runs."""


def holder_id() -> str:
    """Who holds a lease: host, pid and a random tag (a pid can be reused; the tag tells runs apart)."""
    return f"{socket.gethostname()}:{os.getpid()}:{os.urandom(3).hex()}"


class Outbox:
    """Delivery state in the events database, on a connection of its own (the writer's is its own too)."""

    def __init__(self, path: str | os.PathLike[str], *, timeout: float = 30.0) -> None:
        self.path = Path(path)
        self.timeout = timeout
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._pid = -1
        renew_after_fork(self, _lock=threading.Lock, _conn=lambda: None)

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None or self._pid != os.getpid():
            conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=self.timeout)
            conn.execute(f"PRAGMA busy_timeout={int(self.timeout * 1000)}")
            self._conn, self._pid = conn, os.getpid()
        return self._conn

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._lock, immediate_transaction(self._connection(), nullcontext()) as conn:
            yield conn

    def close(self) -> None:
        with self._lock:
            if self._conn is not None and self._pid == os.getpid():
                self._conn.close()
            self._conn = None

    # -- leases -------------------------------------------------------------------------------------
    def lease(self, destination: str, holder: str, seconds: float) -> bool:
        """Take or renew the destination's lease; False while another live process holds it."""
        now = time.time()
        with self._write() as conn:
            conn.execute("INSERT OR IGNORE INTO delivery_state (destination) VALUES (?)", (destination,))
            changed = conn.execute(
                "UPDATE delivery_state SET holder = ?, lease_until = ? WHERE destination = ? "
                "AND (holder IS NULL OR holder = ? OR lease_until < ?)",
                (holder, now + seconds, destination, holder, now)).rowcount
        return bool(changed)

    def release(self, destination: str, holder: str) -> None:
        with self._write() as conn:
            conn.execute("UPDATE delivery_state SET holder = NULL, lease_until = 0 WHERE destination = ? AND holder = ?",
                         (destination, holder))

    # -- reading ------------------------------------------------------------------------------------
    def cursor(self, destination: str) -> int:
        with self._lock:
            row = self._connection().execute("SELECT cursor FROM delivery_state WHERE destination = ?",
                                             (destination,)).fetchone()
        return int(row[0]) if row else 0

    def high_water(self) -> int:
        """The rowid of the last committed event (0 for none): what a flush waits for the cursors to reach."""
        with self._lock:
            row = self._connection().execute("SELECT MAX(rowid) FROM events").fetchone()
        return int(row[0] or 0)

    def batch(self, destination: str, limit: int) -> list[Pending]:
        """Up to ``limit`` events to send next: those put back for a retry first, then those past the cursor."""
        with self._lock:
            conn = self._connection()
            rows = conn.execute(
                "SELECT e.rowid, e.* FROM delivery_failures f JOIN events e ON e.rowid = f.event_rowid "
                "WHERE f.destination = ? AND f.state = 'retry' ORDER BY e.rowid LIMIT ?", (destination, limit)).fetchall()
            retried = len(rows)
            if retried < limit:
                row = conn.execute("SELECT cursor FROM delivery_state WHERE destination = ?", (destination,)).fetchone()
                rows += conn.execute("SELECT rowid, * FROM events WHERE rowid > ? ORDER BY rowid LIMIT ?",
                                     (int(row[0]) if row else 0, limit - retried)).fetchall()
            names = [d[0] for d in conn.execute("SELECT * FROM events LIMIT 0").description]
        events = events_from_rows(names, [row[1:] for row in rows])
        return [Pending(row[0], event, parked=i < retried) for i, (row, event) in enumerate(zip(rows, events, strict=True))]

    # -- settling -----------------------------------------------------------------------------------
    def settle(self, destination: str, pending: Sequence[Pending], *, delivered: int, skipped: int,
               parked: Sequence[tuple[Pending, str]] = ()) -> None:
        """Record the outcome of a delivery of ``pending`` (all of it settled): advance the cursor past it,
        count what was delivered and skipped, park what was refused, clear retried parkings that went."""
        now = time.time()
        fresh = [p.rowid for p in pending if not p.parked]
        again = [p.rowid for p in pending if p.parked]
        refused = {p.rowid for p, _ in parked}
        with self._write() as conn:
            conn.execute("INSERT OR IGNORE INTO delivery_state (destination) VALUES (?)", (destination,))
            if fresh:
                conn.execute("UPDATE delivery_state SET cursor = MAX(cursor, ?) WHERE destination = ?",
                             (max(fresh), destination))
            gone = [r for r in again if r not in refused]
            if gone:
                conn.executemany("DELETE FROM delivery_failures WHERE destination = ? AND event_rowid = ?",
                                 [(destination, r) for r in gone])
            for p, why in parked:
                conn.execute("INSERT OR REPLACE INTO delivery_failures (destination, event_rowid, event_id, reason, "
                             "parked_at, state) VALUES (?, ?, ?, ?, ?, 'parked')",
                             (destination, p.rowid, p.event.id, why[:1000], now))
            # failing_since says whether delivery is failing now; last_error keeps the last reason until a newer one.
            reason = parked[0][1][:1000] if parked else None
            conn.execute("UPDATE delivery_state SET delivered = delivered + ?, skipped = skipped + ?, "
                         "failing_since = NULL, last_error = COALESCE(?, last_error), last_delivery_at = ? "
                         "WHERE destination = ?", (delivered, skipped, reason, now, destination))

    def failed(self, destination: str, error: str) -> float:
        """A delivery failed and will be tried again; returns since when delivery has been failing."""
        now = time.time()
        with self._write() as conn:
            conn.execute("INSERT OR IGNORE INTO delivery_state (destination) VALUES (?)", (destination,))
            conn.execute("UPDATE delivery_state SET retried = retried + 1, last_error = ?, "
                         "failing_since = COALESCE(failing_since, ?) WHERE destination = ?",
                         (error[:1000], now, destination))
            row = conn.execute("SELECT failing_since FROM delivery_state WHERE destination = ?", (destination,)).fetchone()
        return float(row[0])

    def retry_parked(self, destination: str | None = None) -> int:
        """Put the parked events (of one destination, or all) back to be sent again; returns how many."""
        with self._write() as conn:
            if destination is None:
                return int(conn.execute("UPDATE delivery_failures SET state = 'retry' WHERE state = 'parked'").rowcount)
            return int(conn.execute("UPDATE delivery_failures SET state = 'retry' WHERE state = 'parked' "
                                    "AND destination = ?", (destination,)).rowcount)

    def owed(self, destination: str, target: int) -> bool:
        """Whether the destination still owes events up to rowid ``target`` (past its cursor, or put back for a
        retry)."""
        with self._lock:
            conn = self._connection()
            row = conn.execute("SELECT cursor FROM delivery_state WHERE destination = ?", (destination,)).fetchone()
            if (int(row[0]) if row else 0) < target:
                return True
            return conn.execute("SELECT 1 FROM delivery_failures WHERE destination = ? AND state = 'retry' LIMIT 1",
                                (destination,)).fetchone() is not None

    def parked(self, destination: str) -> list[tuple[str, str]]:
        """``(event id, reason)`` of the destination's parked events, oldest first."""
        with self._lock:
            return [(r[0], r[1]) for r in self._connection().execute(
                "SELECT event_id, reason FROM delivery_failures WHERE destination = ? AND state = 'parked' "
                "ORDER BY event_rowid", (destination,))]

    def status(self, destinations: Sequence[str] = ()) -> list[Status]:
        """Where each destination stands (those given, plus any the file has a record of)."""
        with self._lock:
            conn = self._connection()
            top = int(conn.execute("SELECT MAX(rowid) FROM events").fetchone()[0] or 0)
            rows = {r[0]: r for r in conn.execute(
                "SELECT destination, cursor, holder, lease_until, delivered, skipped, retried, failing_since, "
                "last_error, last_delivery_at FROM delivery_state")}
            failed = dict(conn.execute("SELECT destination, COUNT(*) FROM delivery_failures GROUP BY destination"))
            queued = {name: int(conn.execute("SELECT COUNT(*) FROM events WHERE rowid > ?", (r[1],)).fetchone()[0])
                      for name, r in rows.items()}
            total = int(conn.execute("SELECT COUNT(*) FROM events").fetchone()[0]) if top else 0
        now = time.time()
        out = []
        for name in sorted({*destinations, *rows}):
            r = rows.get(name)
            if r is None:  # nothing delivered there yet: everything is queued
                out.append(Status(name, total, 0, 0, 0, int(failed.get(name, 0)), None, None, None, None))
                continue
            out.append(Status(name, queued[name], int(r[4]), int(r[5]), int(r[6]), int(failed.get(name, 0)), r[7],
                              r[8], r[9], r[2] if r[2] and r[3] > now else None))
        return out

