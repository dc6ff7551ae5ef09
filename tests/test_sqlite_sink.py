"""The SQLite sink: durable before the call returns, idempotent on ids, migrated from blank or old."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest
import sqlite_utils

from metricaos_sdk import SQLiteSink, UsageEvent
from metricaos_sdk.sinks import sqlite as sink_module
from metricaos_sdk.storage.migrations import migrations
from metricaos_sdk.storage.rows import EVENT_COLUMNS


def make_event(**kw):
    base = dict(timestamp=datetime.now(timezone.utc), event_type="chat_completion", provider="openai",
                endpoint="/chat/completions", model="gpt-4.1-mini", customer_id="c", input_tokens=10,
                output_tokens=5, total_tokens=15, cost_usd=Decimal("0.0000123456789"), price_status="priced")
    base.update(kw)
    return UsageEvent(**base)


def test_event_round_trips_exactly(db_path):
    sink = SQLiteSink(db_path)
    event = make_event(tags={"k": "v"})
    sink.write([event])
    [back] = list(sink.events())  # events() flushes the writer first
    assert back == event
    assert back.cost_usd == Decimal("0.0000123456789")
    conn = sqlite3.connect(db_path)
    assert conn.execute("SELECT typeof(cost_usd), cost_usd FROM events").fetchone() == ("text", "0.0000123456789")


def test_writes_are_idempotent_on_event_id(db_path):
    sink = SQLiteSink(db_path)
    event = make_event()
    sink.write([event])
    sink.flush()
    sink.write([event, event])
    assert len(list(sink.events())) == 1
    conn = sqlite3.connect(db_path)
    assert conn.execute("SELECT count(*), sum(total_tokens) FROM events").fetchone() == (1, 15)


def test_json_batch_insert_keeps_every_column_exact(db_path):
    # Rows travel as JSON through SQLite's json_each: types and exact money must come out as they went in.
    sink = SQLiteSink(db_path)
    event = make_event(tags={"k": "v", "unicode": "é✓"}, duration_ms=12.345, http_status=None, billable=False,
                       cost_usd=Decimal("0.000000000123456789"))
    sink.write([event])
    [back] = list(sink.events())
    assert back == event
    conn = sqlite3.connect(db_path)
    types = conn.execute("SELECT typeof(cost_usd), typeof(input_tokens), typeof(duration_ms), typeof(billable), "
                         "typeof(http_status) FROM events").fetchone()
    assert types == ("text", "integer", "real", "integer", "null")


def test_an_event_the_journal_cannot_take_is_still_committed_and_flush_does_not_wait(db_path, monkeypatch, caplog):
    # A full disk refuses the journal line: the write raises (the meter logs it as a fault), but the event is
    # still queued and committed, and flush() does not wait out its timeout for a line never queued.
    from metricaos_sdk.storage.journal import Journal

    sink = SQLiteSink(db_path)
    real_append = Journal.append

    def enospc_once(journal, rows, last_seq):
        monkeypatch.setattr(Journal, "append", real_append)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Journal, "append", enospc_once)
    unjournaled, journaled = make_event(), make_event()
    with pytest.raises(OSError, match="queued for SQLite but would not survive a crash"):
        sink.write([unjournaled])
    sink.write([journaled])
    sink.flush(timeout=10)
    assert "flush timed out" not in caplog.text
    assert {e.id for e in sink.events()} == {unjournaled.id, journaled.id}
    sink.close()
    assert list(sink.journal_dir.glob("*.jsonl")) == []  # the journaled one's segment is released


def test_a_row_sqlite_cannot_store_is_set_aside_and_holds_back_nothing(db_path, caplog):
    # Retried whole, the batch holding it would fail forever and no later event would be stored.
    sink = SQLiteSink(db_path)
    before, unstorable, after = make_event(), make_event(input_tokens=2**63), make_event()
    sink.write([before, unstorable, after])
    sink.write([make_event(id=before.id)])  # a replay in a later batch still counts once
    sink.flush(timeout=10)
    assert {e.id for e in sink.events()} == {before.id, after.id}
    [kept] = sink.rejected_path.read_bytes().splitlines()
    assert json.loads(kept)[0] == unstorable.id and json.loads(kept)[EVENT_COLUMNS.index("input_tokens")] == 2**63
    assert "SQLite refused an event row" in caplog.text and "flush timed out" not in caplog.text
    sink.close()
    assert list(sink.journal_dir.glob("*.jsonl")) == []


def test_wal_mode_and_migrations_recorded(db_path):
    SQLiteSink(db_path)
    conn = sqlite3.connect(db_path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    applied = [r[0] for r in conn.execute("SELECT name FROM _sqlite_migrations WHERE migration_set='metricaos'")]
    assert applied == ["m001_events", "m002_quotas", "m003_quota_reservations", "m004_event_credits",
                       "m005_drop_m002_quota_tables", "m006_delivery", "m007_event_actions", "m008_billing",
                       "m009_billing_rollup", "m010_event_server", "m011_report_rollup"]


def test_upgrade_from_first_schema_version(db_path):
    db = sqlite_utils.Database(db_path)
    migrations.apply(db, stop_before="m002_quotas")
    assert "quotas" not in db.table_names()
    db.conn.close()
    sink = SQLiteSink(db_path)  # opening migrates the rest
    sink.write([make_event()])
    tables = set(sqlite_utils.Database(db_path).table_names())
    assert {"events", "quota_used", "quota_config"} <= tables and not {"quotas", "usage_daily"} & tables  # m005


def test_event_of_a_returned_call_survives_kill_9(tmp_path):
    db_path = tmp_path / "crash.db"
    script = textwrap.dedent(f"""
        import sys, time
        from metricaos_sdk import Meter
        from metricaos_sdk.testing import SimulatedOpenAI
        meter = Meter({str(db_path)!r})
        client = meter.wrap(SimulatedOpenAI().client())
        with meter.context(customer_id="cus_crash"):
            client.chat.completions.create(model="gpt-4.1-mini", messages=[{{"role": "user", "content": "hi"}}])
        print("returned", flush=True)
        time.sleep(60)
    """)
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "returned"
        os.kill(child.pid, signal.SIGKILL)
        assert child.wait(timeout=30) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        child.stdout.close()
    # The next process to open the database recovers the event from the dead one's journal.
    [event] = SQLiteSink(db_path).events()
    assert event.customer_id == "cus_crash" and event.status == "ok" and event.total_tokens > 0
    assert list((tmp_path / "crash.db-metricaos-journal").glob("*.jsonl")) == []
    assert sqlite3.connect(db_path).execute("SELECT count(*) FROM events").fetchone() == (1,)


def test_journal_lines_of_either_form_load(db_path):
    # Lines written before tags were left as a JSON object (tags as text) still replay.
    from metricaos_sdk.storage.rows import EVENT_COLUMNS, event_to_line, event_to_row, line_to_row

    event = make_event(tags={"b": "2", "a": "1"})
    new_form = line_to_row(event_to_line(event))
    old_form = line_to_row(json.dumps(list(event_to_row(event))))
    assert new_form == old_form == list(event_to_row(event))
    assert new_form[EVENT_COLUMNS.index("tags")] == '{"a": "1", "b": "2"}'


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_records_its_own_events_and_leaves_the_parents_alone(db_path):
    sink = SQLiteSink(db_path)
    sink.write([make_event(customer_id="parent-1")])
    pid = os.fork()
    if pid == 0:  # the child: its own queue, journal and writer; the parent's first event is not its to commit
        code = 1
        try:
            sink.write([make_event(customer_id="child")])
            sink.close()
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    sink.write([make_event(customer_id="parent-2")])
    assert sorted(e.customer_id for e in sink.events()) == ["child", "parent-1", "parent-2"]
    sink.close()
    assert list(Path(f"{db_path}-metricaos-journal").glob("*.jsonl")) == []


def test_a_child_forked_while_another_thread_holds_the_locks_records_its_calls(db_path, router):
    # fork() copies a lock as it was: one held by another of the parent's threads (the writer committing,
    # a quota check) stayed held forever in the child, whose next call or commit then waited for good.
    import openai

    from metricaos_sdk import Meter
    from tests.fake_openai import FakeOpenAI

    FakeOpenAI().mount(router)
    meter = Meter(db_path)
    meter.set_quota("cus_fork", tokens=1_000_000)
    client = meter.wrap(openai.OpenAI(api_key="sk-test"))
    locks = [meter.sink.database.lock, meter.quota_store._lock, meter._quotas._lock, meter._lock]
    held, release = threading.Event(), threading.Event()

    def hold():
        for lock in locks:
            lock.acquire()
        held.set()
        release.wait()
        for lock in reversed(locks):
            lock.release()

    holder = threading.Thread(target=hold)
    holder.start()
    held.wait()
    pid = os.fork()
    if pid == 0:
        signal.alarm(20)  # a deadlocked child dies of SIGALRM rather than hang the test run
        code = 1
        try:
            with meter.context(customer_id="cus_fork"):
                client.chat.completions.create(model="gpt-4.1-mini", messages=[{"role": "user", "content": "hi"}])
            meter.close()
            code = 0
        finally:
            os._exit(code)
    release.set()
    holder.join()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert [e.customer_id for e in meter.events()] == ["cus_fork"]
    meter.close()


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="reads the child's descriptors from /proc")
def test_a_forked_child_lets_go_of_the_parents_journal_segments(db_path):
    # The child's copies of the parent's segment descriptors kept the parent's locks alive: after a kill -9
    # of the parent, its segment looked live, and went unrecovered, for as long as the child ran.
    sink = SQLiteSink(db_path)
    sink.write([make_event(customer_id="parent")])
    segment = sink._journal.current
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        alive = os.path.exists(f"/proc/self/fd/{segment.fd}") and os.readlink(f"/proc/self/fd/{segment.fd}") == str(segment.path)
        os.write(write, b"1" if alive else b"0")
        os._exit(0)
    os.close(write)
    inherited = os.read(read, 1)
    os.waitpid(pid, 0)
    assert inherited == b"0"
    sink.close()


def test_a_writer_that_could_not_start_is_started_by_the_next_write(db_path, monkeypatch):
    # A writer that could not be started used to stay "started" for good: nothing was committed again, the
    # first event was never journaled, and close() raised.
    sink = SQLiteSink(db_path)
    real_start = threading.Thread.start

    def no_thread(thread):
        monkeypatch.setattr(threading.Thread, "start", real_start)
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(threading.Thread, "start", no_thread)
    first, second = make_event(), make_event()
    with pytest.raises(RuntimeError):
        sink.write([first])
    assert sink._thread is None
    sink.write([second])
    assert {e.id for e in sink.events()} == {first.id, second.id}
    sink.close()
    assert sink._thread is None and list(sink.journal_dir.glob("*.jsonl")) == []


def test_a_write_while_the_writer_stops_is_committed_not_stranded(db_path):
    # A write landing after the writer decided to exit but before close() cleared it found a writer
    # "running" and started none: it stayed queued, uncommitted, with nobody to commit it.
    sink = SQLiteSink(db_path, batch_delay=0)
    exiting, resume = threading.Event(), threading.Event()
    real_discard = sink_module._discard

    def slow_final_discard(segments):
        if segments and sink._journal.current is None:  # the stopping writer's last segment: it is leaving
            exiting.set()
            resume.wait(5)
        real_discard(segments)

    sink_module._discard = slow_final_discard
    try:
        sink.write([make_event()])
        sink.flush()
        closer = threading.Thread(target=sink._stop_writer)
        closer.start()
        assert exiting.wait(5)
        late = make_event()
        sink.write([late])  # the writer is on its way out
        resume.set()
        closer.join()
        with sink._cond:  # whatever is queued has a writer to commit it, without anyone calling flush()
            assert not sink._queue or sink._thread is not None
        assert late.id in {e.id for e in sink.events()}
    finally:
        sink_module._discard = real_discard
        sink.close()


def test_journal_lines_of_another_shape_are_set_aside_and_the_rest_recovered(db_path, caplog):
    # A line of a version with another number of fields (or no row at all) made every Meter() raise.
    good = make_event()
    journal_dir = Path(f"{db_path}-metricaos-journal")
    journal_dir.mkdir()
    from metricaos_sdk.storage.rows import event_to_line

    line = event_to_line(good)
    short = json.dumps(json.loads(line)[:10]).encode()
    # A line of a version before m007 (without the action and custom usage fields) is replayed, padded.
    earlier = make_event()
    before_m007 = json.dumps(json.loads(event_to_line(earlier))[:EVENT_COLUMNS.index("action_id")]).encode()
    (journal_dir / "1-dead-0.jsonl").write_bytes(b"\n".join([short, b'{"id": "x"}', line, before_m007]) + b"\n")
    sink = SQLiteSink(db_path)
    assert sorted(e.id for e in sink.events()) == sorted([good.id, earlier.id])
    assert sink.rejected_path.read_bytes().splitlines() == [short, b'{"id": "x"}']
    sink.close()


@pytest.mark.parametrize("cost", ["0", "1.234E-7", "0.00065280000", "123456789.123456789"])
def test_text_and_money_round_trip_exactly_through_the_journal_line(db_path, cost):
    # The line is UTF-8 JSON from pydantic-core: non-ASCII and line-separator characters stay one line,
    # Decimals keep their exact text (exponent and trailing zeros included).
    sink = SQLiteSink(db_path)
    event = make_event(feature="résumé\u2028line", tags={"équipe": "a\nb", "z": "\r"}, cost_usd=Decimal(cost),
                       credits=Decimal("12.50"), timestamp=datetime(2026, 11, 27, 5, 0, tzinfo=timezone.utc))
    sink.write([event])
    [back] = list(sink.events())
    assert back == event and str(back.cost_usd) == cost and str(back.credits) == "12.50"
    conn = sqlite3.connect(db_path)
    assert conn.execute("SELECT timestamp, cost_usd FROM events").fetchone() == ("2026-11-27T05:00:00+00:00", cost)


def test_timestamps_are_stored_as_utc_isoformat_text_whatever_their_zone_or_journal_version(db_path):
    # Stored timestamps compare as text (since/until queries): one form, isoformat()'s "+00:00", whether the
    # event's zone was UTC or not, and whether its journal line came from this version ("Z") or an earlier one.
    from metricaos_sdk.storage.rows import EVENT_COLUMNS, event_to_line, line_to_row

    at = EVENT_COLUMNS.index("timestamp")
    utc = datetime(2026, 11, 27, 5, 0, 0, 120000, tzinfo=timezone.utc)
    paris = utc.astimezone(timezone(timedelta(hours=1)))
    earlier_line = event_to_line(make_event(timestamp=utc)).replace(b'.120000Z"', b'.120000+00:00"')
    assert line_to_row(earlier_line)[at] == line_to_row(event_to_line(make_event(timestamp=paris)))[at] \
        == utc.isoformat() == "2026-11-27T05:00:00.120000+00:00"
    sink = SQLiteSink(db_path)
    sink.write([make_event(timestamp=paris), make_event(timestamp=utc.replace(microsecond=0))])
    sink.flush()
    stored = [r[0] for r in sqlite3.connect(db_path).execute("SELECT timestamp FROM events ORDER BY timestamp")]
    assert stored == ["2026-11-27T05:00:00+00:00", "2026-11-27T05:00:00.120000+00:00"]
    assert [e.timestamp for e in sink.events(since=utc)] == [utc]


@pytest.mark.parametrize("sizes", [None, (16, 4, 1)], ids=["sqlite>=3.32", "sqlite<3.32"])
def test_a_large_batch_is_inserted_whole_once_per_id(db_path, monkeypatch, sizes):
    import metricaos_sdk.sinks.sqlite as sqlite_sink

    if sizes is not None:  # SQLite before 3.32 allows 999 parameters per statement
        monkeypatch.setattr(sqlite_sink, "_BATCH_SIZES", sizes)
    sink = SQLiteSink(db_path)
    events = [make_event(customer_id=f"c{i}", input_tokens=i) for i in range(173)]  # 128+32+8+1+1+1+1+1
    sink.write(events + events[:5])  # replayed ids inside the same batch are ignored too
    sink.write(events[100:110])
    back = list(sink.events())
    assert len(back) == 173 and {e.id for e in back} == {e.id for e in events}
    assert sorted(e.input_tokens for e in back) == list(range(173))
