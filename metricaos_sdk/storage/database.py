"""One SQLite file, opened once per process, shared by every thread behind a lock.

WAL journal with ``synchronous=NORMAL``: a commit is written to the OS before it returns, so the event of
a call that returned survives the process being killed (it would not survive a power cut; set
``durable=True`` for ``synchronous=FULL``). The connection is reopened after ``fork()``.

``Database(path, read_only=True)`` reads a database this process may not write (reports over a copy, a
read-only mount, another user's file): opened with ``mode=ro``, never migrated, with ``query_only`` set,
and refused with a clear error when its schema is older or newer than this version's. The database
file is never written; as for any reader of a WAL database, SQLite may create its ``-wal`` and ``-shm``
files beside it (with the database file's permissions: a writable open later says so if they are
read-only for it). Where it cannot (the directory is read-only too) and no ``-wal`` file exists (no
process has the database open), it is read as an immutable snapshot (SQLite's ``immutable=1``): right for
a copy or an archive, not for a file another user is writing at the same time.

A path that cannot be opened — a directory, a parent that is a file, a file that is not a SQLite
database, a file or directory this process may not write — raises :class:`ConfigurationError` naming the
path and the fix, never a bare ``sqlite3`` error.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._fork import renew_after_fork
from ..errors import ConfigurationError

if TYPE_CHECKING:
    import sqlite_utils

# sqlite-utils (and its plugin machinery: pluggy, click) is imported when a database is first opened, not
# with the package: it was a fifth of what ``import metricaos_sdk`` cost a process that never opens one.

__all__ = ["Database", "immediate_transaction"]

# SQLite's primary result codes (the low byte of an extended code, e.g. SQLITE_READONLY_DIRECTORY).
_READONLY, _CANTOPEN, _CORRUPT, _NOTADB = 8, 14, 11, 26
# Their messages, for Python 3.10, whose sqlite3 errors carry no code.
_MESSAGES = {"attempt to write a readonly database": _READONLY, "unable to open database file": _CANTOPEN,
             "database disk image is malformed": _CORRUPT, "file is not a database": _NOTADB}


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
    """A migrated SQLite database file (or, with ``read_only=True``, one only read). Thread-safe; fork-safe."""

    def __init__(self, path: str | os.PathLike[str], *, durable: bool = False, read_only: bool = False) -> None:
        self.path = Path(path)
        self.durable = durable
        self.read_only = read_only
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
        try:
            return self._open_read_only() if self.read_only else self._open_writable()
        except (sqlite3.Error, OSError) as exc:
            raise ConfigurationError(_explain(self.path, exc, read_only=self.read_only)) from exc

    def _open_writable(self) -> sqlite3.Connection:
        if self.path.parent and not self.path.parent.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: we issue BEGIN/COMMIT ourselves, so a write is exactly one transaction.
        conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30.0)
        try:
            # SQLite opens a file it may not write (the database, or the -wal or -shm file a read-only reader
            # may leave behind) read-only without a word; every write would then fail later, in the sink's
            # writer thread. Open them for writing as SQLite does, to say so now.
            for file in _files(self.path):
                if file.is_file():
                    os.close(os.open(file, os.O_RDWR))
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={'FULL' if self.durable else 'NORMAL'}")
            conn.execute("PRAGMA busy_timeout=30000")
            import sqlite_utils

            from .migrations import migrations

            db = sqlite_utils.Database(conn)
            with self.lock:
                try:
                    migrations.apply(db)
                except sqlite3.OperationalError:
                    # Another process migrated the same file at the same moment; its work is ours.
                    migrations.apply(db)
        except BaseException:
            conn.close()
            raise
        return conn

    def _open_read_only(self) -> sqlite3.Connection:
        if not self.path.is_file():
            raise ConfigurationError(_explain(self.path, FileNotFoundError(errno.ENOENT, "no such file"), read_only=True))
        uri = self.path.absolute().as_uri() + "?mode=ro"
        try:
            conn = self._connect_read_only(uri)
        except sqlite3.OperationalError as exc:
            # SQLite could not create the -shm file a WAL reader needs (a read-only directory). With no -wal
            # file no process has the database open (a writer keeps one): read it as a snapshot.
            if _code(exc) not in (_READONLY, _CANTOPEN) or Path(f"{self.path}-wal").exists():
                raise
            conn = self._connect_read_only(uri + "&immutable=1")
        try:
            import sqlite_utils

            _check_schema(self.path, sqlite_utils.Database(conn))
        except BaseException:
            conn.close()
            raise
        return conn

    @staticmethod
    def _connect_read_only(uri: str) -> sqlite3.Connection:
        conn = sqlite3.connect(uri, uri=True, check_same_thread=False, isolation_level=None, timeout=30.0)
        try:
            conn.execute("PRAGMA query_only=ON")  # a second guard: this connection refuses every write
            conn.execute("PRAGMA busy_timeout=30000")
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()  # reads the header: fails now, not later
        except BaseException:
            conn.close()
            raise
        return conn

    def sqlite_utils(self) -> sqlite_utils.Database:
        """The same connection as a ``sqlite_utils.Database`` (for reports and the CLI)."""
        import sqlite_utils

        return sqlite_utils.Database(self.connection())

    def transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` … ``COMMIT`` under the process lock; rolled back on error."""
        if self.read_only:
            raise ConfigurationError(f"The database {self.path} was opened read-only and cannot be written: "
                                     f"open it with Database(path) to write.")
        return immediate_transaction(self.connection(), self.lock)

    def close(self) -> None:
        with self.lock:
            if self._conn is not None and self._pid == os.getpid():
                self._conn.close()
            self._conn = None


def _check_schema(path: Path, db: sqlite_utils.Database) -> None:
    """Refuse a database whose migrations differ from this version's (a read-only open cannot migrate)."""
    from .migrations import READ_NEEDS, migrations

    known = [m.name for m in migrations._migrations]
    applied = [m.name for m in migrations.applied(db)]
    unknown = [name for name in applied if name not in known]
    if unknown:
        raise ConfigurationError(f"The database {path} was written by a newer metricaos-sdk (migration "
                                 f"{', '.join(unknown)} is unknown to this version): upgrade metricaos-sdk to read it.")
    if not applied:
        raise ConfigurationError(f"{path} is a SQLite database but not a metricaos one (it has no metricaos "
                                 f"tables): pass the path of a database written by Meter(path).")
    needed = known[: known.index(READ_NEEDS) + 1]  # later migrations change nothing a reader reads
    pending = [name for name in needed if name not in applied]
    if pending:
        raise ConfigurationError(f"The database {path} was written by an older metricaos-sdk and needs migrating "
                                 f"({', '.join(pending)}), which a read-only open cannot do: open it once with "
                                 f"Database(path) or Meter(path) as a user who may write it.")


def _files(path: Path) -> tuple[Path, Path, Path]:
    """The database file and the two SQLite keeps beside it in WAL mode."""
    return path, Path(f"{path}-wal"), Path(f"{path}-shm")


def _code(exc: BaseException) -> int | None:
    """SQLite's primary result code of ``exc`` (None for an error that is not SQLite's)."""
    code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(code, int):
        return code & 0xFF
    return _MESSAGES.get(str(exc)) if isinstance(exc, sqlite3.Error) else None


def _explain(path: Path, exc: BaseException, *, read_only: bool) -> str:
    """One sentence: why ``path`` could not be opened, and what to do about it."""
    code = _code(exc)
    blocker = next((p for p in path.parents if p.exists()), None)
    if blocker is not None and not blocker.is_dir():
        return (f"Cannot open the database {path}: {blocker} is a file, not a directory; choose a path in a "
                f"directory (or move that file away).")
    if path.is_dir():
        return f"Cannot open the database {path}: it is a directory; pass a file path such as {path / 'metricaos.db'}."
    if code in (_NOTADB, _CORRUPT):
        return (f"{path} is not a SQLite database (or it is damaged): pass the path of a metricaos database, "
                f"or a path that does not exist yet to create one.")
    if read_only:
        if isinstance(exc, FileNotFoundError) or not path.exists():
            return f"There is no database at {path}: check the path (a read-only open never creates one)."
        if isinstance(exc, PermissionError) or not os.access(path, os.R_OK):
            return f"Cannot read the database {path}: permission denied; make it readable by this user."
        return f"Cannot read the database {path} ({_reason(exc)}): check that it is a database this user may read."
    directory = path.parent
    if not directory.is_dir():
        return (f"Cannot create the directory {directory} for the database {path} ({_reason(exc)}): create it, or "
                f"choose a path in a directory this user may write.")
    if isinstance(exc, PermissionError) and exc.filename is not None and Path(exc.filename) in _files(path):
        # Our O_RDWR probe: SQLite had opened the database read-only.
        what = "the file is" if Path(exc.filename) == path else f"{exc.filename} is"
        what += " read-only for this user"
    elif (code in (_READONLY, _CANTOPEN) or isinstance(exc, PermissionError)) and not os.access(directory, os.W_OK):
        what = f"its directory {directory} is read-only for this user (SQLite creates files beside the database)"
    elif code == _READONLY:
        what = f"the file or its -wal or -shm file in {directory} is read-only for this user"
    else:
        return (f"Cannot open the database {path} ({_reason(exc)}): check the path, the free disk space and that "
                f"this user may read and write it and its directory.")
    return (f"Cannot write to the database {path}: {what}; make it writable, or open it with "
            f"Database(path, read_only=True) to read reports.")


def _reason(exc: BaseException) -> str:
    return exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
