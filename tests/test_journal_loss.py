"""A journal deleted under a running process loses nothing silently (issue 11, point 5).

Deleting the journal directory used to leave later events in the deleted, still-mapped segment: no fault, no
log line, and after ``kill -9`` every returned call not yet committed was gone. The writer now notices (the
segment's link count is 0), makes the journal again, journals every uncommitted event anew, and counts a fault;
``meter.health()`` says how many events are held in memory only when no journal can be made.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from metricaos_sdk import MemorySink, Meter
from metricaos_sdk.testing import SimulatedOpenAI

CHILD = textwrap.dedent('''
    import os, shutil, sqlite3, sys, time
    from metricaos_sdk import Meter
    from metricaos_sdk.testing import SimulatedOpenAI

    db = sys.argv[1]
    meter = Meter(db)
    client = meter.wrap(SimulatedOpenAI().client())
    ask = dict(model="gpt-4.1-mini", messages=[{"role": "user", "content": "hi"}])
    client.chat.completions.create(**ask)
    meter.flush()
    lock = sqlite3.connect(db, isolation_level=None)
    lock.execute("BEGIN EXCLUSIVE")  # nothing more is committed: what follows lives in the journal only
    shutil.rmtree(db + "-metricaos-journal")
    for _ in range(int(sys.argv[2])):
        client.chat.completions.create(**ask)
    for _ in range(1000):  # until the writer has noticed (it looks before each batch) and said so
        if meter.health().journal_replaced and meter.faults:
            break
        time.sleep(0.01)
    print(meter.health().journal_replaced, meter.faults, flush=True)
    time.sleep(60)  # killed here
''')


def test_events_journaled_after_the_journal_was_deleted_survive_kill_9(db_path: Path) -> None:
    calls = 25
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(db_path), str(calls)], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    replaced, faults = map(int, child.stdout.readline().split())
    child.send_signal(signal.SIGKILL)
    child.wait()
    child.stdout.close()
    meter = Meter(db_path)  # recovery replays what the dead process journaled
    assert len(meter.events()) == calls + 1
    meter.close()
    assert replaced == 1 and faults == 1  # and it was noticed, not silent


def test_events_no_journal_can_take_are_held_in_memory_and_said_so(db_path: Path) -> None:
    meter = Meter(db_path)
    client = meter.wrap(SimulatedOpenAI().client())
    ask = dict(model="gpt-4.1-mini", messages=[{"role": "user", "content": "hi"}])
    client.chat.completions.create(**ask)
    meter.flush()
    journal = Path(f"{db_path}-metricaos-journal")
    shutil.rmtree(journal)
    journal.write_text("a file where the journal directory was: no segment can be made")
    import sqlite3

    lock = sqlite3.connect(db_path, isolation_level=None)
    lock.execute("BEGIN EXCLUSIVE")
    for _ in range(3):
        client.chat.completions.create(**ask)
    deadline = time.monotonic() + 10
    while meter.health().events_in_memory_only < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    health = meter.health()
    assert health.events_in_memory_only == 3 and health.events_pending == 3 and meter.faults >= 1
    lock.execute("ROLLBACK")
    lock.close()
    meter.flush()
    health = meter.health()
    assert health.events_in_memory_only == 0 and health.events_pending == 0
    assert len(meter.events()) == 4
    meter.close()
    os.remove(journal)


def test_a_sink_without_a_journal_reports_no_journal_figures() -> None:
    health = Meter(sink=MemorySink()).health()
    assert (health.events_pending, health.events_in_memory_only, health.journal_replaced) == (0, 0, 0)
