"""SQLiteSink: the default sink. Events and the quota ledger in one local file.

``write`` makes an event durable in the caller's thread with one append to a journal (see
``storage/journal.py``) and returns; a writer thread commits batches to SQLite, then deletes the journal
segments they came from. An event travels as one JSON line (its row in column order): the same text is
appended to the journal and queued for the writer, which parses and inserts a batch in one transaction.
"""

from __future__ import annotations

import functools
import itertools
import logging
import os
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .._fork import close_at_exit, forget_at_exit, in_forked_child
from ..events import UsageEvent
from ..faults import log_fault
from ..storage.database import Database
from ..storage.journal import Journal, Segment, recover_segments
from ..storage.rows import EVENT_COLUMNS, event_to_line, line_to_row, row_to_event

__all__ = ["SQLiteSink"]

log = logging.getLogger("metricaos_sdk")

# Rows per INSERT statement: a few fixed sizes, so SQLite's statement cache holds every statement we use,
# within SQLite's default limit of host parameters (32,766 since 3.32; 999 before, as on Ubuntu 20.04).
_BATCH_SIZES = (128, 32, 8, 1) if sqlite3.sqlite_version_info >= (3, 32, 0) else (16, 4, 1)


# Errors of one row rather than of the database: a value SQLite cannot store (an int past 2**63 - 1, a type it
# cannot bind), a constraint, or a line that does not parse.
_ROW_ERRORS = (OverflowError, TypeError, ValueError, sqlite3.IntegrityError, sqlite3.InterfaceError)


@functools.lru_cache(maxsize=len(_BATCH_SIZES))
def _insert(rows: int) -> str:
    values = f"({', '.join('?' * len(EVENT_COLUMNS))})"
    return f"INSERT OR IGNORE INTO events ({', '.join(EVENT_COLUMNS)}) VALUES {', '.join([values] * rows)}"


class SQLiteSink:
    """Writes events to a SQLite file: durable on return from ``write``, committed in batches.

    ``batch_delay`` is how long the writer lets events gather before a commit; ``flush()`` commits now.
    Writes are idempotent on the event id (``INSERT OR IGNORE``), so journal replay never double-counts.
    """

    def __init__(self, database: Database | str | os.PathLike[str], *, batch_delay: float = 0.02,
                 on_fault: Callable[[str], None] | None = None) -> None:
        self.database = database if isinstance(database, Database) else Database(database)
        self.batch_delay = batch_delay
        self.on_fault = on_fault
        """Called with a sentence when the sink meets a fault it recovers from (the meter counts it)."""
        self.journal_replaced = 0
        """Times a journal segment was found deleted under this process and its events journaled again."""
        self.on_commit: list[Callable[[], None]] = []
        """Called on the writer's thread after each commit (delivery wakes up on it)."""
        # Not "<db>-journal": that name is SQLite's own rollback journal.
        self.journal_dir = Path(f"{self.database.path}-metricaos-journal")
        self.rejected_path = Path(f"{self.database.path}-metricaos-rejected.jsonl")
        """Event lines SQLite refused (see ``_commit``), one JSON array per line in column order."""
        self._reset_process_state()
        for rows in recover_segments(self.journal_dir):  # events of processes that died before committing
            self._commit(rows)
            log.info("metricaos_sdk: recovered %d events from a journal left by a stopped process", len(rows))
        close_at_exit(self, SQLiteSink._stop_writer)
        in_forked_child(self, _reset_in_child)  # the parent's queue, writer and locks stay the parent's

    def _reset_process_state(self) -> None:
        self._pid = os.getpid()
        self._cond = threading.Condition()
        self._writer_waiting = False  # the writer sleeps on _cond: a write must wake it
        self._journal = Journal(self.journal_dir)
        self._queue: list[bytes] = []  # JSON lines, journaled, not yet committed
        self._unjournaled: deque[int] = deque()  # sequence numbers of queued lines the journal could not take
        self._written = 0
        self._committed = 0
        self._urgent = False
        self._stopping = False
        self._thread: threading.Thread | None = None

    # -- Sink -------------------------------------------------------------------------------------
    def write(self, events: Sequence[UsageEvent]) -> None:
        lines = [event_to_line(e) for e in events]
        with self._cond:
            self._written += len(lines)
            # Queued before they are journaled: if the journal cannot take them (a full disk), the writer
            # still commits them (only a crash before then loses them), and flush() is not left waiting
            # for lines that were counted but never queued.
            self._queue.extend(lines)
            try:
                self._journal.append(lines, self._written)
            except OSError as exc:
                self._unjournaled.extend(range(self._written - len(lines) + 1, self._written + 1))
                raise OSError(exc.errno, f"could not journal {len(lines)} event(s) in {self.journal_dir} "
                              f"({exc.strerror or exc}); they are queued for SQLite but would not survive a crash") from exc
            finally:
                self._wake_writer()

    def health(self) -> dict[str, int]:
        """Events not yet committed now, those of them held in memory only (the journal could not take them),
        and how often a deleted journal was replaced (see :class:`metricaos_sdk.Health`)."""
        with self._cond:
            return {"events_pending": self._written - self._committed, "events_in_memory_only": len(self._unjournaled),
                    "journal_replaced": self.journal_replaced}

    def _wake_writer(self) -> None:
        """Start a writer if none is running (a writer clears ``_thread`` itself as it exits, so there is
        never a second one), else wake it if it sleeps. Called holding ``_cond``."""
        if self._thread is None:
            thread = threading.Thread(target=self._run, name="metricaos-sqlite-writer", daemon=True)
            thread.start()  # may raise (no thread to be had): the lines stay queued and journaled meanwhile
            self._thread = thread
        elif self._writer_waiting:
            self._cond.notify_all()

    def flush(self, timeout: float = 30.0) -> None:
        """Block until every event written so far is committed (or ``timeout`` seconds pass)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            target = self._written
            self._urgent = True
            if self._queue and self._thread is None:  # the last writer stopped, or could not be started
                try:
                    self._wake_writer()
                except RuntimeError:
                    log.warning("metricaos_sdk: no thread to commit %d events with; they stay in the journal",
                                len(self._queue))
                    return
            self._cond.notify_all()
            while self._committed < target and self._thread is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    log.warning("metricaos_sdk: SQLite flush timed out; %d events stay in the journal",
                                target - self._committed)
                    return
                self._cond.wait(left)

    def close(self) -> None:
        self._stop_writer()
        self.database.close()
        forget_at_exit(self)

    # -- reading ------------------------------------------------------------------------------------
    def events(
        self,
        *,
        customer_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int | None = None,
    ) -> Iterator[UsageEvent]:
        self.flush()
        where, params = [], []
        if customer_id is not None:
            where.append("customer_id = ?")
            params.append(customer_id)
        if since is not None:
            where.append("timestamp >= ?")
            params.append(since.astimezone(timezone.utc).isoformat())
        if until is not None:
            where.append("timestamp < ?")
            params.append(until.astimezone(timezone.utc).isoformat())
        sql = "SELECT * FROM events" + (f" WHERE {' AND '.join(where)}" if where else "") + " ORDER BY timestamp, id"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        conn = self.database.connection()
        with self.database.lock:
            cursor = conn.execute(sql, params)
            names = [d[0] for d in cursor.description]
            rows = cursor.fetchall()
        return (row_to_event(dict(zip(names, row, strict=True))) for row in rows)

    # -- the writer thread --------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            self._write_batches()
        finally:
            with self._cond:
                if self._thread is threading.current_thread():  # it stopped on an unexpected error
                    self._retire()

    def _retire(self) -> None:
        """The writer is leaving: from now on write() and flush() start a new one. Called holding ``_cond``,
        in the same hold as the decision to leave, so no write can land in between and be left queued."""
        self._thread = None
        self._stopping = False
        self._cond.notify_all()

    def _write_batches(self) -> None:
        backoff = 0.05
        while True:
            with self._cond:
                while not self._queue and not self._stopping:
                    self._writer_waiting = True
                    self._cond.wait()
                    self._writer_waiting = False
                if not self._queue:  # stopping, everything committed: a clean stop leaves no journal
                    done = self._journal.committed(self._committed, final=True)
                    self._retire()
                    break
                urgent = self._urgent or self._stopping
            if not urgent:
                time.sleep(self.batch_delay)  # let a batch gather; flush() cuts this short next round
            with self._cond:
                if self._journal.lost():  # someone deleted the journal: what only it held would not survive a crash
                    self._replace_journal()
                batch, self._queue = self._queue, []
                self._urgent = False
                stopping = self._stopping
                written = self._committed + len(batch)
            try:
                self._commit(batch)
            except Exception:
                log_fault(log, f"SQLite commit failed; {len(batch)} events stay journaled and will be retried")
                with self._cond:
                    self._queue[:0] = batch
                    if self._stopping:
                        self._retire()
                        return  # the journal keeps them for the next process
                time.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            backoff = 0.05
            with self._cond:
                while self._unjournaled and self._unjournaled[0] <= written:
                    self._unjournaled.popleft()
                # Stopping with nothing left queued: the current segment is fully committed, delete it too.
                done = self._journal.committed(written, final=stopping and not self._queue)
                self._committed = written
                self._cond.notify_all()
            _discard(done)
            for callback in self.on_commit:
                try:
                    callback()
                except Exception:
                    log_fault(log, "a commit callback failed")
        _discard(done)

    def _replace_journal(self) -> None:
        """Journal every uncommitted line again in a new segment (called holding ``_cond``, before the writer
        takes its next batch: every line not committed yet is in ``_queue``)."""
        try:
            self._journal.replace_lost(self._queue, self._written)
        except OSError:
            self.journal_replaced += 1
            self._fault(f"the journal in {self.journal_dir} was deleted and could not be made again; "
                        f"{len(self._queue)} event(s) are held in memory until committed")
            self._unjournaled = deque(range(self._committed + 1, self._written + 1))
            return
        self._unjournaled.clear()
        self.journal_replaced += 1  # counted once the new journal holds them: health() never says so early
        self._fault(f"the journal in {self.journal_dir} was deleted while this process ran; it was made again and "
                    f"its {len(self._queue)} uncommitted event(s) journaled anew")

    def _fault(self, what: str) -> None:
        if self.on_fault is not None:
            self.on_fault(what)
        else:
            log_fault(log, what)

    def _commit(self, lines: Sequence[bytes]) -> None:
        """Insert the batch in one transaction. A row SQLite can never take (a value it cannot store, a line
        that does not parse) must not hold back every event after it, retried forever: the batch then goes
        in row by row, and each refused line is set aside whole in the rejected file, never dropped. Errors
        of the database itself (locked, full, unreadable) leave the whole batch to be retried."""
        try:
            self._insert([line_to_row(line) for line in lines])
        except _ROW_ERRORS:
            for line in lines:
                try:
                    self._insert([line_to_row(line)])
                except _ROW_ERRORS:
                    self._reject(line)

    def _reject(self, line: bytes) -> None:
        with open(self.rejected_path, "ab") as f:
            f.write(line.rstrip(b"\n") + b"\n")
            f.flush()
            os.fsync(f.fileno())
        log.error("metricaos_sdk: SQLite refused an event row; it is kept in %s (begins %r)", self.rejected_path, line[:80])

    def _insert(self, rows: list[list[Any]]) -> None:
        """One transaction, ignoring ids already present (a replayed journal never counts twice). Rows go in
        by the hundred per statement: ``executemany`` would step once per row, and each step releases the
        GIL and takes it back, preempting the caller's thread every time. Unpacking JSON in SQL
        (``json_each``) would re-parse each row once per column: the lines are parsed by pydantic-core."""
        with self.database.transaction() as conn:
            at = 0
            while at < len(rows):
                size = next(n for n in _BATCH_SIZES if n <= len(rows) - at)
                conn.execute(_insert(size), list(itertools.chain.from_iterable(rows[at:at + size])))
                at += size

    def _stop_writer(self) -> None:
        with self._cond:
            if self._pid != os.getpid() or self._thread is None:
                return
            self._stopping = True
            self._cond.notify_all()
            thread = self._thread
        thread.join(timeout=30)
        if thread.is_alive():  # it clears _thread itself once its queue is empty: never a second writer
            log.warning("metricaos_sdk: the SQLite writer is still committing after 30 s; what it has not "
                        "committed stays in the journal")


def _discard(segments: list[Segment]) -> None:
    for segment in segments:
        try:
            segment.discard()
        except OSError:
            log_fault(log, f"could not delete the committed journal segment {segment.path}")


def _reset_in_child(sink: SQLiteSink) -> None:
    sink._journal.close_inherited()  # the parent's segments: its descriptors, and so its locks, are its own
    sink._reset_process_state()
