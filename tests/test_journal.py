"""The journal: lines are durable in a memory-mapped segment, recovered only from dead writers, torn last
lines skipped, and a journal that cannot allocate raises (a logged fault) instead of crashing the process."""

from __future__ import annotations

import errno
import json
import mmap
import os
from pathlib import Path

import pytest

from metricaos_sdk.storage import journal as journal_module
from metricaos_sdk.storage.journal import Journal, recover_segments


def lines(*numbers: int) -> list[bytes]:
    return [json.dumps(["event", n]).encode() for n in numbers]


def die(journal: Journal) -> None:
    """What a killed process leaves: its segments on disk, their locks released, nothing deleted."""
    for segment in [*journal.retired, *([journal.current] if journal.current else [])]:
        if segment.map is not None:
            segment.map.close()
        os.close(segment.fd)


def recovered(directory: Path) -> list[list[bytes]]:
    return [rows for rows in recover_segments(directory)]


def test_a_live_writers_segments_are_not_recovered(tmp_path):
    journal = Journal(tmp_path / "j")
    journal.append(lines(1, 2), last_seq=2)
    assert recovered(tmp_path / "j") == []  # its lock is held: another process must leave it alone
    assert len(list((tmp_path / "j").glob("*.jsonl"))) == 1


def test_a_dead_writers_lines_are_recovered_once_in_order(tmp_path):
    journal = Journal(tmp_path / "j")
    journal.append(lines(1), last_seq=1)
    journal.append(lines(2, 3), last_seq=3)
    die(journal)
    assert recovered(tmp_path / "j") == [lines(1, 2, 3)]
    assert list((tmp_path / "j").glob("*.jsonl")) == []  # deleted once consumed
    assert recovered(tmp_path / "j") == []


def test_segment_is_preallocated_and_lines_end_at_the_first_zero_byte(tmp_path):
    journal = Journal(tmp_path / "j")
    journal.append(lines(1), last_seq=1)
    [path] = (tmp_path / "j").glob("*.jsonl")
    data = path.read_bytes()  # another reader sees the bytes at once: they are in the page cache
    assert len(data) == Journal.SEGMENT_BYTES
    assert os.stat(path).st_blocks * 512 >= Journal.SEGMENT_BYTES  # reserved, not sparse (see _allocate)
    assert data.split(b"\0", 1)[0] == lines(1)[0] + b"\n"


def test_a_torn_last_line_is_skipped(tmp_path, caplog):
    journal = Journal(tmp_path / "j")
    journal.append(lines(1), last_seq=1)
    segment = journal.current
    torn = (lines(2)[0] + b"\n")[:7]  # killed mid-copy: a prefix, then zeros
    segment.map[segment.offset:segment.offset + len(torn)] = torn
    die(journal)
    assert recovered(tmp_path / "j") == [lines(1)]
    assert "torn journal line" in caplog.text


def test_full_segments_rotate_and_are_released_once_committed(tmp_path, monkeypatch):
    monkeypatch.setattr(Journal, "SEGMENT_BYTES", 64)
    journal = Journal(tmp_path / "j")
    for n in range(1, 7):
        journal.append(lines(n), last_seq=n)  # ~14 bytes each: four lines to a segment
    assert len(journal.retired) == 1 and journal.retired[0].last_seq == 4
    assert journal.committed(3) == []  # segment 1 still holds row 4
    [done] = journal.committed(4)
    done.discard()
    assert len(list((tmp_path / "j").glob("*.jsonl"))) == 1
    [last] = journal.committed(6, final=True)
    assert last.last_seq == 6 and journal.current is None


def test_a_batch_larger_than_a_segment_gets_a_segment_of_its_own(tmp_path, monkeypatch):
    monkeypatch.setattr(Journal, "SEGMENT_BYTES", 16)
    journal = Journal(tmp_path / "j")
    journal.append(lines(*range(10)), last_seq=10)
    die(journal)
    assert recovered(tmp_path / "j") == [lines(*range(10))]


def test_without_memory_maps_the_journal_writes_instead(tmp_path, monkeypatch):
    def no_mmap(*args, **kwargs):
        raise OSError(errno.ENODEV, "No such device")

    monkeypatch.setattr(mmap, "mmap", no_mmap)
    journal = Journal(tmp_path / "j")
    journal.append(lines(1), last_seq=1)
    journal.append(lines(2), last_seq=2)
    assert journal.current.map is None
    die(journal)
    assert recovered(tmp_path / "j") == [lines(1, 2)]


def test_a_full_disk_raises_at_allocation_instead_of_killing_the_process(tmp_path, monkeypatch):
    # A sparse mapped file would take SIGBUS on the first write into a page the disk has no room for.
    def enospc(fd, offset, length):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(journal_module.os, "posix_fallocate", enospc, raising=False)
    journal = Journal(tmp_path / "j")
    with pytest.raises(OSError, match="No space left"):
        journal.append(lines(1), last_seq=1)
    assert list((tmp_path / "j").glob("*.jsonl")) == []  # nothing half-made left behind


def test_a_segment_that_cannot_be_opened_at_rotation_leaves_the_full_one_retired_once(tmp_path, monkeypatch):
    # The disk fills as a segment rotates: the next append must open a new segment, not retire the full one
    # a second time (it would then be discarded twice: a second close() of a descriptor the process may
    # have reused for another file).
    monkeypatch.setattr(Journal, "SEGMENT_BYTES", 64)
    journal = Journal(tmp_path / "j")
    for n in range(1, 5):
        journal.append(lines(n), last_seq=n)  # segment 1 is full
    real_allocate = journal_module._allocate

    def enospc_once(fd, size):
        monkeypatch.setattr(journal_module, "_allocate", real_allocate)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(journal_module, "_allocate", enospc_once)
    with pytest.raises(OSError, match="No space left"):
        journal.append(lines(5), last_seq=5)
    journal.append(lines(6), last_seq=6)
    assert [s.last_seq for s in journal.retired] == [4]
    done = journal.committed(6, final=True)
    assert [s.last_seq for s in done] == [4, 6]
    for segment in done:
        segment.discard()
    assert list((tmp_path / "j").glob("*.jsonl")) == []


def test_a_segment_is_never_visible_to_recovery_before_it_is_locked(tmp_path, monkeypatch):
    # Made as *.jsonl then locked, a new segment could be found unlocked by a process starting up, taken for
    # a dead writer's and deleted: its lines then went into a file that no longer existed.
    seen = []
    real_flock = journal_module.fcntl.flock

    def recover_before_the_lock(fd, operation):
        if not seen:  # the new segment's own lock is about to be taken: another process starts up now
            seen.append(None)
            seen[0] = recovered(tmp_path / "j")
        return real_flock(fd, operation)

    monkeypatch.setattr(journal_module.fcntl, "flock", recover_before_the_lock)
    journal = Journal(tmp_path / "j")
    journal.append(lines(1), last_seq=1)
    assert seen == [[]] and journal.current.path.exists()
    die(journal)
    assert recovered(tmp_path / "j") == [lines(1)]


def test_a_dead_processs_half_made_segment_is_cleared_once_stale(tmp_path):
    directory = tmp_path / "j"
    directory.mkdir()
    stale, fresh = directory / "1-dead-0.creating", directory / "2-live-0.creating"
    stale.write_bytes(bytes(64))
    fresh.write_bytes(bytes(64))
    os.utime(stale, (0, 0))
    assert recovered(directory) == []
    assert list(directory.iterdir()) == [fresh]  # possibly being made right now


def test_without_fallocate_the_zeros_are_written(tmp_path, monkeypatch):
    monkeypatch.setattr(Journal, "SEGMENT_BYTES", 3 * 1024 * 1024 + 5)
    monkeypatch.delattr(journal_module.os, "posix_fallocate", raising=False)
    journal = Journal(tmp_path / "j")
    journal.append(lines(1), last_seq=1)
    [path] = (tmp_path / "j").glob("*.jsonl")
    assert os.stat(path).st_blocks * 512 >= Journal.SEGMENT_BYTES
    die(journal)
    assert recovered(tmp_path / "j") == [lines(1)]
