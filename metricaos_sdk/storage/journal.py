"""An append-only journal that makes an event durable in one ``write(2)``, before SQLite has it.

Committing each event to SQLite costs ~60 µs; appending a line to a file costs a few. So the caller's
thread appends each event here (durable against a killed process as soon as ``write`` returns: the bytes
are in the OS page cache) and a writer thread moves them into SQLite in batches. A segment is deleted only
after its rows are committed; a process that dies leaves its segments behind, and the next process to open
the database replays them (``INSERT OR IGNORE`` on the event id makes replay idempotent).

Ownership is an exclusive ``flock`` held on every segment until it is deleted: a segment whose lock can be
taken belongs to a dead process. A torn last line (killed mid-write) belongs to a call that never returned
and is skipped.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no cross-process recovery, own segments only
    fcntl = None  # type: ignore[assignment]

__all__ = ["Journal", "Segment", "recover_segments"]

log = logging.getLogger("metricaos_sdk")


class Segment:
    """One journal file, locked by its writer for as long as it exists."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        if fcntl is not None:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self.lines = 0
        self.last_seq = 0  # the writer's sequence number of the last row appended here

    def append(self, lines: Sequence[str]) -> None:
        """Append JSON lines (one event row each, without the newline) in one ``write(2)``."""
        data = ("\n".join(lines) + "\n").encode()
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view):]
        self.lines += len(lines)

    def discard(self) -> None:
        """Delete the file (its rows are committed), then release the lock."""
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass
        os.close(self.fd)


class Journal:
    """The per-process journal of one database: appends go to the current segment; a full segment is
    retired, and deleted once every row in it is committed."""

    ROTATE_LINES = 10_000

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.pid = os.getpid()
        self._numbers = itertools.count()
        self._tag = os.urandom(4).hex()
        self.current: Segment | None = None
        self.retired: list[Segment] = []

    def append(self, rows: Sequence[str], last_seq: int) -> None:
        if self.current is None:
            self.directory.mkdir(parents=True, exist_ok=True)
            self.current = Segment(self.directory / f"{self.pid}-{self._tag}-{next(self._numbers)}.jsonl")
        self.current.append(rows)
        self.current.last_seq = last_seq
        if self.current.lines >= self.ROTATE_LINES:
            self.retired.append(self.current)
            self.current = None

    def committed(self, seq: int, *, final: bool = False) -> list[Segment]:
        """Detach the segments whose rows are all committed up to ``seq`` (``final``: the current one too);
        the caller discards them outside its lock."""
        done = [s for s in self.retired if s.last_seq <= seq]
        self.retired = [s for s in self.retired if s.last_seq > seq]
        if final and self.current is not None and self.current.last_seq <= seq:
            done.append(self.current)
            self.current = None
        return done


def recover_segments(directory: Path) -> Iterator[list[str]]:
    """JSON lines of segments left by dead processes, one list per segment; each file is deleted after the
    caller has consumed its rows (i.e. when the generator resumes)."""
    if not directory.is_dir():
        return
    for path in sorted(directory.glob("*.jsonl")):
        try:
            fd = os.open(path, os.O_RDWR)
        except FileNotFoundError:
            continue
        try:
            if fcntl is not None:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # a live process owns it
            elif not path.name.startswith(f"{os.getpid()}-"):
                continue
            with open(fd, "rb", closefd=False) as f:
                data = f.read()
            rows = []
            for line in data.splitlines():
                try:
                    json.loads(line)  # only whole lines: a torn last one belongs to a call that never returned
                    rows.append(line.decode())
                except ValueError:
                    log.warning("metricaos_sdk: skipped a torn journal line in %s (a call that never returned)", path.name)
            yield rows
            path.unlink(missing_ok=True)
        finally:
            os.close(fd)
