"""One SQLite file, opened once per process, shared by every thread behind a lock.

WAL journal with ``synchronous=NORMAL``: a commit is written to the OS before it returns, so the event of
a call that returned survives the process being killed (it would not survive a power cut; set
``durable=True`` for ``synchronous=FULL``). The connection is reopened after ``fork()``.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import sqlite_utils

from .._fork import renew_after_fork
from .migrations import migrations

__all__ = ["Database", "immediate_transaction"]


@contextmanager
def immediate_transaction(conn: sqlite3.Connection, lock: Any) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` … ``COMMIT`` on ``conn`` while holding ``lock``; rolled back on any error.

    IMMEDIATE takes SQLite's write lock at the start, so two processes never both read and then both write.
    """
    with lock:
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")


class Database:
    """A migrated SQLite database file. Thread-safe; fork-safe."""

    def __init__(self, path: str | os.PathLike[str], *, durable: bool = False) -> None:
        self.path = Path(path)
        self.durable = durable
        self.lock = threading.RLock()
        renew_after_fork(self, lock=threading.RLock)  # the connection is reopened by pid (connection())
        self._pid = -1
        self._conn: sqlite3.Connection | None = None
        self.connection()  # open and migrate now: a bad path fails at construction, not at the first call

    def connection(self) -> sqlite3.Connection:
        """The process's connection (opened and migrated on first use, and again after a fork)."""
        if self._pid != os.getpid() or self._conn is None:
            with self.lock:
                if self._pid != os.getpid() or self._conn is None:
                    self._conn = self._open()
                    self._pid = os.getpid()
        return self._conn

    def _open(self) -> sqlite3.Connection:
        if self.path.parent and not self.path.parent.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: we issue BEGIN/COMMIT ourselves, so a write is exactly one transaction.
        conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30.0)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={'FULL' if self.durable else 'NORMAL'}")
        conn.execute("PRAGMA busy_timeout=30000")
        db = sqlite_utils.Database(conn)
        with self.lock:
            try:
                migrations.apply(db)
            except sqlite3.OperationalError:
                # Another process migrated the same file at the same moment; its work is ours.
                migrations.apply(db)
        return conn

    def sqlite_utils(self) -> sqlite_utils.Database:
        """The same connection as a ``sqlite_utils.Database`` (for reports and the CLI)."""
        return sqlite_utils.Database(self.connection())

    def transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` … ``COMMIT`` under the process lock; rolled back on error."""
        return immediate_transaction(self.connection(), self.lock)

    def close(self) -> None:
        with self.lock:
            if self._conn is not None and self._pid == os.getpid():
                self._conn.close()
            self._conn = None
