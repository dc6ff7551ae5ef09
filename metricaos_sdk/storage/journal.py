"""An append-only journal that makes an event durable before SQLite has it, without a system call.

Committing each event to SQLite costs ~60 µs; copying a line into a shared memory map costs about one. So
the caller's thread appends each event to a journal segment (a file mapped with ``MAP_SHARED``: the bytes
are in the OS page cache as soon as they are copied, durable against a killed process) and a writer thread
moves them into SQLite in batches. A ``write(2)`` would do the same but releases the GIL, handing it to the
writer thread mid-call; the memory copy keeps the caller's thread running.

A segment is a fixed-size, zero-filled file, its blocks allocated up front: its lines end at the first NUL byte, which
JSON text never contains. A segment is deleted only after its rows are committed; a process that dies
leaves its segments behind, and the next process to open the database replays them (``INSERT OR IGNORE``
on the event id makes replay idempotent).

Ownership is an exclusive ``flock`` held on every segment until it is deleted: a segment whose lock can be
taken belongs to a dead process. A torn last line (killed mid-copy) belongs to a call that never returned
and is skipped.
"""

from __future__ import annotations

import errno
import itertools
import json
import logging
import mmap
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no cross-process recovery, own segments only
    fcntl = None  # type: ignore[assignment]

__all__ = ["Journal", "Segment", "recover_segments"]

_CREATING = ".creating"  # a segment being made; it holds no line yet

log = logging.getLogger("metricaos_sdk")


class Segment:
    """One journal file, memory-mapped and locked by its writer for as long as it exists."""

    def __init__(self, path: Path, size: int) -> None:
        self.path = path
        self.size = size
        self.offset = 0
        self.last_seq = 0  # the writer's sequence number of the last row appended here
        self.map: mmap.mmap | None = None
        # Made under a name recovery does not read, and renamed once locked: a process starting up must
        # never find it unlocked, take it for a dead writer's and delete it.
        creating = path.with_suffix(_CREATING)
        self.fd = os.open(creating, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            if fcntl is not None:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            _allocate(self.fd, size)
            os.rename(creating, path)
        except BaseException:
            os.close(self.fd)
            creating.unlink(missing_ok=True)
            raise
        try:
            self.map = mmap.mmap(self.fd, size)
        except (OSError, ValueError):  # a file system that cannot map files: one write(2) per append
            log.info("metricaos_sdk: cannot memory-map %s; the journal falls back to write(2)", path)

    def room(self) -> int:
        return self.size - self.offset

    def append(self, data: bytes) -> None:
        """Copy whole lines (each ending in a newline) in; the caller checked :meth:`room`."""
        end = self.offset + len(data)
        if self.map is not None:
            self.map[self.offset:end] = data
        else:
            _write_at(self.fd, data, self.offset)
        self.offset = end

    def close_inherited(self) -> None:
        """In a forked child: drop the mapping and descriptor inherited from the parent. The ``flock`` stays
        the parent's (it goes only when every descriptor of the file is closed), so a dead parent's
        segment is not mistaken for a live one's while the child runs."""
        if self.map is not None:
            self.map.close()
        os.close(self.fd)

    def deleted(self) -> bool:
        """Whether the file was deleted under us (someone removed the journal directory): appends still land
        in its mapping, but on nothing a crash would leave behind."""
        try:
            return os.fstat(self.fd).st_nlink == 0
        except OSError:
            return True

    def abandon(self) -> None:
        """Let go of a deleted segment: its mapping and descriptor (its file is gone already)."""
        if self.map is not None:
            self.map.close()
        os.close(self.fd)

    def discard(self) -> None:
        """Delete the file (its rows are committed), then release the lock."""
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass
        if self.map is not None:
            self.map.close()
        os.close(self.fd)


def _allocate(fd: int, size: int) -> None:
    """Reserve the segment's blocks now. A sparse file would do until the disk fills: then a write into its
    mapping gets SIGBUS and kills the process, where this raises OSError (a logged metering fault)."""
    if hasattr(os, "posix_fallocate"):
        try:
            os.posix_fallocate(fd, 0, size)
            return
        except OSError as exc:
            if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
                raise
    zeros = bytes(min(size, 1 << 20))  # no fallocate (macOS, Windows, some file systems): write the zeros
    for at in range(0, size, len(zeros)):
        _write_at(fd, zeros[: size - at], at)


def _write_at(fd: int, data: bytes, at: int) -> None:
    view = memoryview(data)
    os.lseek(fd, at, os.SEEK_SET)
    while view:
        view = view[os.write(fd, view):]


class Journal:
    """The per-process journal of one database: appends go to the current segment; a full segment is
    retired, and deleted once every row in it is committed."""

    SEGMENT_BYTES = 4 * 1024 * 1024  # ~10,000 events

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.pid = os.getpid()
        self._numbers = itertools.count()
        self._tag = os.urandom(4).hex()
        self.current: Segment | None = None
        self.retired: list[Segment] = []

    def append(self, rows: Sequence[bytes], last_seq: int) -> None:
        """Make JSON lines (one event row each, UTF-8, without the newline) durable."""
        data = b"\n".join(rows) + b"\n"
        current = self.current
        if current is None or current.room() < len(data):
            if current is not None:
                # Detached first: if the next segment cannot be opened (a full disk), a later append must
                # not retire this one again, or it would be discarded, and its descriptor closed, twice.
                self.retired.append(current)
                self.current = None
            self.directory.mkdir(parents=True, exist_ok=True)
            path = self.directory / f"{self.pid}-{self._tag}-{next(self._numbers)}.jsonl"
            current = self.current = Segment(path, max(self.SEGMENT_BYTES, len(data)))
        current.append(data)
        current.last_seq = last_seq

    def lost(self) -> bool:
        """Whether a segment holding uncommitted rows was deleted under the running process."""
        return any(s.deleted() for s in [*self.retired, *([self.current] if self.current is not None else [])])

    def replace_lost(self, rows: Sequence[bytes], last_seq: int) -> None:
        """Drop the deleted segments and journal ``rows`` (every row not yet committed) in a new one, in a
        directory made again if it went too; a surviving current segment is retired. Rows also still in a
        surviving segment are then journaled twice, which replay does not mind (``INSERT OR IGNORE`` on the id)."""
        kept = []
        for segment in [*self.retired, *([self.current] if self.current is not None else [])]:
            if segment.deleted():
                segment.abandon()
            else:
                kept.append(segment)
        self.retired, self.current = kept, None
        if rows:
            self.append(rows, last_seq)

    def close_inherited(self) -> None:
        """In a forked child: close every segment inherited from the parent (see ``Segment.close_inherited``)."""
        for segment in [*self.retired, *([self.current] if self.current is not None else [])]:
            segment.close_inherited()
        self.retired, self.current = [], None

    def committed(self, seq: int, *, final: bool = False) -> list[Segment]:
        """Detach the segments whose rows are all committed up to ``seq`` (``final``: the current one too);
        the caller discards them outside its lock."""
        done = [s for s in self.retired if s.last_seq <= seq]
        self.retired = [s for s in self.retired if s.last_seq > seq]
        if final and self.current is not None and self.current.last_seq <= seq:
            done.append(self.current)
            self.current = None
        return done


def recover_segments(directory: Path) -> Iterator[list[bytes]]:
    """JSON lines of segments left by dead processes, one list per segment; each file is deleted after the
    caller has consumed its rows (i.e. when the generator resumes)."""
    if not directory.is_dir():
        return
    for path in directory.glob(f"*{_CREATING}"):  # a dead process's half-made segment: never held a line
        _delete_if_stale(path)
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
            data = data.split(b"\0", 1)[0]  # the zero-filled rest of the segment
            rows = []
            for line in data.splitlines():
                try:
                    json.loads(line)  # only whole lines: a torn last one belongs to a call that never returned
                    rows.append(line)
                except ValueError:
                    log.warning("metricaos_sdk: skipped a torn journal line in %s (a call that never returned)", path.name)
            yield rows
            path.unlink(missing_ok=True)
        finally:
            os.close(fd)


def _delete_if_stale(path: Path) -> None:
    """Delete a half-made segment left for a minute: making one takes milliseconds, and until it is
    locked, a lock cannot tell a live maker from a dead one."""
    try:
        if time.time() - path.stat().st_mtime > 60:
            path.unlink(missing_ok=True)
    except FileNotFoundError:
        pass
