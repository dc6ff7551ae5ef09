"""SQLiteQuotaStore: counters and reservations in the events database, shared by the processes of a host.

Each reserve and settle is one ``BEGIN IMMEDIATE`` transaction, which takes SQLite's write lock before
reading: two processes can never both read the same free allowance. The store has its own connection (not
the sink's), so a batch the sink's writer thread is committing delays a reservation only by SQLite's own
lock, never by a Python lock held across the commit. Reservation rows carry their lease's end; rows past it
are ignored at once and deleted from time to time.

A write waits for SQLite's lock (another process may hold it for seconds) and for this store's own lock (another
thread of this process) while others keep getting through, but at most ``timeout`` seconds while nobody does,
then raises :class:`StoreBusy` or SQLite's ``database is locked``: the meter's calls use a store with a short
timeout and apply their fail-open/closed policy; :meth:`patient` gives the same store with a long one, for
settings, reports and settlements retried in the background.
"""

from __future__ import annotations

import functools
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from ..._fork import renew_after_fork
from ...storage.database import Database
from ..reservations import Bucket, Demand, Reserved, Settled, plan_reservation, plan_settlement

__all__ = ["SQLiteQuotaStore", "StoreBusy"]




class StoreBusy(TimeoutError):
    """Another thread of this process held the store longer than the store's timeout."""


_UPSERT_USED = (
    "INSERT INTO quota_used (customer_id, bucket, used, expires_at) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (customer_id, bucket) DO UPDATE SET used = used + excluded.used, expires_at = excluded.expires_at"
)
_PURGE_EVERY = 512  # reservations, per process: deleting expired rows is housekeeping, not correctness


_SLICE = 0.01  # seconds per wait before looking again whether anyone got anywhere


class _Stall:
    """How long a wait may go on: ``timeout`` seconds while nothing moves, and ``OVERALL`` times that in all while
    others keep getting through (busy, not stuck: contention is no outage)."""

    OVERALL = 20

    __slots__ = ("_last", "_seen", "_start", "timeout")

    def __init__(self, timeout: float, seen: object) -> None:
        self.timeout = timeout
        self._start = self._last = time.monotonic()
        self._seen = seen

    def exceeded(self, seen: object) -> bool:
        now = time.monotonic()
        if seen != self._seen:
            self._seen, self._last = seen, now
        return now - self._last >= self.timeout or now - self._start >= self.timeout * self.OVERALL


class _TimedLock:
    """This process's lock on the store's connection. Its holders are bounded themselves (each waits on SQLite
    as :func:`_begin` allows), so waiting for it is waiting in a moving queue: ``with`` waits up to
    ``_Stall.OVERALL`` times ``timeout``, then raises :class:`StoreBusy` rather than queue without end."""

    __slots__ = ("_lock", "timeout")

    def __init__(self, timeout: float) -> None:
        self._lock = threading.Lock()
        self.timeout = timeout

    def __enter__(self) -> None:
        if not self._lock.acquire(timeout=self.timeout * _Stall.OVERALL):
            raise StoreBusy(f"the quota store was held for {self.timeout * _Stall.OVERALL:g} s by other threads "
                            "of this process")

    def __exit__(self, *exc: object) -> None:
        self._lock.release()

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        return self._lock.acquire(blocking, timeout)

    def release(self) -> None:
        self._lock.release()


def _begin(conn: sqlite3.Connection, timeout: float) -> None:
    """``BEGIN IMMEDIATE``, waiting for SQLite's write lock while other connections keep committing (their
    commits move ``PRAGMA data_version``), but at most ``timeout`` seconds while nobody does: a process holding
    the lock for seconds (a long transaction, ``BEGIN EXCLUSIVE``) is an outage to the call, not a queue."""
    stall: _Stall | None = None
    while True:
        try:
            conn.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            try:
                version = conn.execute("PRAGMA data_version").fetchone()[0]
            except sqlite3.OperationalError:
                version = None  # not even readable (a rollback-journal database locked exclusively)
            if stall is None:
                stall = _Stall(timeout, version)
            elif stall.exceeded(version):
                raise


class SQLiteQuotaStore:
    """Quota counters, reservations and settings in a SQLite file (migrated on open)."""

    def __init__(self, database: Database | str | os.PathLike[str], *, timeout: float = 30.0) -> None:
        self.database = database if isinstance(database, Database) else Database(database)
        self.timeout = timeout
        """Seconds an operation waits for a lock before it raises."""
        self._lock = _TimedLock(timeout)
        renew_after_fork(self, _lock=functools.partial(_TimedLock, timeout))
        self._pid = -1
        self._conn: sqlite3.Connection | None = None
        self._sql: dict[int, tuple[str, str]] = {}
        self._count = 0

    def patient(self, timeout: float = 30.0) -> SQLiteQuotaStore:
        """The same store, with its own connection, waiting up to ``timeout`` seconds: for work that may wait."""
        return self if timeout == self.timeout else SQLiteQuotaStore(self.database, timeout=timeout)

    def _connection(self) -> sqlite3.Connection:
        if self._pid != os.getpid() or self._conn is None:  # first use, or a forked child
            # SQLite's own busy wait is kept to one slice: _begin() decides how long to go on (see _Stall).
            wait = min(self.timeout, _SLICE)
            conn = sqlite3.connect(self.database.path, check_same_thread=False, isolation_level=None, timeout=wait)
            conn.execute(f"PRAGMA busy_timeout={max(int(wait * 1000), 1)}")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._conn, self._pid = conn, os.getpid()
        return self._conn

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            conn = self._connection()
            _begin(conn, self.timeout)
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def _queries(self, n: int) -> tuple[str, str]:
        sql = self._sql.get(n)
        if sql is None:
            marks = ", ".join("?" * n)
            sql = self._sql[n] = (
                f"SELECT bucket, used FROM quota_used WHERE customer_id = ? AND bucket IN ({marks})",
                f"SELECT bucket, SUM(amount) FROM quota_reservations WHERE customer_id = ? AND bucket IN ({marks}) "
                "AND expires_at > ? GROUP BY bucket",
            )
        return sql

    def _state(self, conn: sqlite3.Connection, customer_id: str, keys: list[str], now: float) -> tuple[dict[str, int], dict[str, int]]:
        q_used, q_held = self._queries(len(keys))
        used = dict(conn.execute(q_used, (customer_id, *keys)).fetchall())
        reserved = dict(conn.execute(q_held, (customer_id, *keys, now)).fetchall())
        return used, reserved

    def reserve(self, customer_id: str, reservation_id: str, demands: Sequence[Demand], lease: float) -> Reserved:
        keys = list({b.key for d in demands for b in d.buckets})
        now = time.time()
        with self._write() as conn:
            used, reserved = self._state(conn, customer_id, keys, now)
            outcome, hold = plan_reservation(demands, used, reserved)
            if hold:
                conn.executemany(
                    "INSERT OR REPLACE INTO quota_reservations (id, customer_id, bucket, amount, expires_at) "
                    "VALUES (?, ?, ?, ?, ?)",
                    [(reservation_id, customer_id, k, v, now + lease) for k, v in hold.items()],
                )
            self._count += 1
            if self._count % _PURGE_EVERY == 0:
                self._purge(conn, now)
        return outcome

    def settle(self, customer_id: str, reservation_id: str, demands: Sequence[Demand]) -> Settled:
        keys = list({b.key for d in demands for b in d.buckets})
        expiry = {b.key: b.expires_at for d in demands for b in d.buckets}
        with self._write() as conn:
            conn.execute("DELETE FROM quota_reservations WHERE id = ?", (reservation_id,))
            used, reserved = self._state(conn, customer_id, keys, time.time())
            outcome, add = plan_settlement(demands, used, reserved)
            if add:
                conn.executemany(_UPSERT_USED, [(customer_id, k, v, expiry[k]) for k, v in add.items()])
        return outcome

    def settle_once(self, customer_id: str, settlement_id: str, demands: Sequence[Demand],
                    expires_at: float) -> Settled | None:
        """``settle``, at most once per ``settlement_id`` until ``expires_at``: the mark and the counters move in one
        transaction, so a second settlement of the same id (another process recording it again) adds nothing."""
        keys = list({b.key for d in demands for b in d.buckets})
        expiry = {b.key: b.expires_at for d in demands for b in d.buckets}
        now = time.time()
        with self._write() as conn:
            mark = f"settled:{settlement_id}"
            conn.execute("DELETE FROM quota_marks WHERE customer_id = ? AND mark = ? AND expires_at <= ?",
                         (customer_id, mark, now))
            if not conn.execute("INSERT OR IGNORE INTO quota_marks (customer_id, mark, expires_at) VALUES (?, ?, ?)",
                                (customer_id, mark, expires_at)).rowcount:
                return None
            conn.execute("DELETE FROM quota_reservations WHERE id = ?", (settlement_id,))
            used, reserved = self._state(conn, customer_id, keys, now)
            outcome, add = plan_settlement(demands, used, reserved)
            if add:
                conn.executemany(_UPSERT_USED, [(customer_id, k, v, expiry[k]) for k, v in add.items()])
        return outcome

    def release(self, customer_id: str, reservation_id: str) -> None:
        with self._lock:
            self._connection().execute("DELETE FROM quota_reservations WHERE id = ?", (reservation_id,))

    @staticmethod
    def _purge(conn: sqlite3.Connection, now: float) -> None:
        conn.execute("DELETE FROM quota_reservations WHERE expires_at <= ?", (now,))
        conn.execute("DELETE FROM quota_used WHERE expires_at <= ?", (now,))
        conn.execute("DELETE FROM quota_marks WHERE expires_at <= ?", (now,))

    def balances(self, customer_id: str, buckets: Sequence[Bucket]) -> dict[str, tuple[int, int]]:
        keys = [b.key for b in buckets]
        if not keys:
            return {}
        with self._lock:
            used, reserved = self._state(self._connection(), customer_id, keys, time.time())
        return {k: (used.get(k, 0), reserved.get(k, 0)) for k in keys}

    def open_reservations(self, customer_id: str | None = None) -> int:
        sql = "SELECT COUNT(DISTINCT id) FROM quota_reservations WHERE expires_at > ?"
        args: tuple[object, ...] = (time.time(),)
        if customer_id is not None:
            sql, args = sql + " AND customer_id = ?", (*args, customer_id)
        with self._lock:
            return int(self._connection().execute(sql, args).fetchone()[0])

    def mark_once(self, customer_id: str, mark: str, expires_at: float) -> bool:
        now = time.time()
        with self._write() as conn:
            conn.execute("DELETE FROM quota_marks WHERE customer_id = ? AND mark = ? AND expires_at <= ?",
                         (customer_id, mark, now))
            return bool(conn.execute("INSERT OR IGNORE INTO quota_marks (customer_id, mark, expires_at) VALUES (?, ?, ?)",
                                     (customer_id, mark, expires_at)).rowcount)

    def config_version(self) -> int:
        with self._lock:
            row = self._connection().execute("SELECT value FROM quota_meta WHERE key = 'config_version'").fetchone()
        return int(row[0]) if row else 0

    def get_config(self, kind: str, name: str) -> str | None:
        with self._lock:
            row = self._connection().execute("SELECT value FROM quota_config WHERE kind = ? AND name = ?",
                                             (kind, name)).fetchone()
        return row[0] if row else None

    def list_config(self, kind: str) -> dict[str, str]:
        with self._lock:
            return dict(self._connection().execute("SELECT name, value FROM quota_config WHERE kind = ?", (kind,)))

    def put_config(self, kind: str, name: str, value: str | None) -> None:
        with self._write() as conn:
            if value is None:
                conn.execute("DELETE FROM quota_config WHERE kind = ? AND name = ?", (kind, name))
            else:
                conn.execute("INSERT OR REPLACE INTO quota_config (kind, name, value) VALUES (?, ?, ?)", (kind, name, value))
            conn.execute("INSERT INTO quota_meta (key, value) VALUES ('config_version', 1) "
                         "ON CONFLICT (key) DO UPDATE SET value = value + 1")

    def close(self) -> None:
        with self._lock:
            if self._conn is not None and self._pid == os.getpid():
                self._conn.close()
            self._conn = None
