"""PostgreSQL destination benchmark: events/s into the table, COPY vs multi-row INSERT, by batch size.

    eval "$(bash scripts/postgres-server.sh)"
    python benchmarks/postgres.py [--events 20000] [--batches 500,1000] [--repeat 3] [--json]

For each way of writing a batch, all through ``PostgreSQL.deliver`` (one transaction a batch) —

- ``copy`` (the default): binary COPY into a temporary table, then INSERT … SELECT … ON CONFLICT DO NOTHING;
- ``insert`` (``method="insert"``): a single-row INSERT … ON CONFLICT DO NOTHING for every row, pipelined by
  psycopg's ``executemany`` (one round trip);
- ``values`` (here only, as ``MultiRowValues``): one multi-row INSERT … VALUES (…), (…) … ON CONFLICT DO
  NOTHING per batch (at most 65,535 parameters a statement: 1,524 rows) —

and each batch size:

- ``new``: ``PostgreSQL.deliver`` of ``--events`` events never seen, into an empty table (best of ``--repeat``);
- ``again``: the same events delivered a second time (every row a conflict: what an at-least-once resend costs);
- ``outbox``: a ``Delivery`` draining a SQLite outbox of ``--events`` committed events through the destination
  (reading the outbox and settling the cursor included) — what a producer's delivery thread sustains.

Events are real metered calls (``SimulatedOpenAI``), copied with fresh ids. Each case uses its own schema,
dropped afterwards. The URL defaults to ``$METRICAOS_TEST_POSTGRES_URL``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psycopg  # noqa: E402
from psycopg import sql  # noqa: E402

from metricaos_sdk import MemorySink, Meter, UsageEvent  # noqa: E402
from metricaos_sdk.delivery import Delivery, PostgreSQL  # noqa: E402
from metricaos_sdk.events import new_event_id  # noqa: E402
from metricaos_sdk.sinks import SQLiteSink  # noqa: E402
from metricaos_sdk.storage.rows import EVENT_COLUMNS  # noqa: E402
from metricaos_sdk.testing import SimulatedOpenAI  # noqa: E402

ASK = {"model": "gpt-4.1-mini", "messages": [{"role": "user", "content": "Where is my order?"}]}


class MultiRowValues(PostgreSQL):
    """The destination writing each batch as one multi-row INSERT … VALUES statement (the alternative measured)."""

    def _write_insert(self, conn: psycopg.Connection[Any], rows: list[tuple[Any, ...]]) -> None:
        per_statement = 65535 // len(EVENT_COLUMNS)
        with conn.transaction(), conn.cursor() as cur:
            for start in range(0, len(rows), per_statement):
                chunk = rows[start:start + per_statement]
                cur.execute(self._values(len(chunk)), [v for row in chunk for v in row])

    def _values(self, n: int) -> bytes:
        cache: dict[int, bytes] = self.__dict__.setdefault("_values_sql", {})
        if n not in cache:  # rendered once per size: only psycopg's own parsing is left per execution
            one = sql.SQL("({})").format(sql.SQL(", ").join([sql.Placeholder()] * len(EVENT_COLUMNS)))
            cache[n] = sql.SQL("INSERT INTO {} ({}) VALUES {} ON CONFLICT (id) DO NOTHING").format(
                self.table.events, sql.SQL(", ").join(map(sql.Identifier, EVENT_COLUMNS)),
                sql.SQL(", ").join([one] * n)).as_bytes(None)
        return cache[n]


def make(url: str, method: str, schema: str, batch: int) -> PostgreSQL:
    if method == "values":
        return MultiRowValues(url, schema=schema, method="insert", max_batch=batch)
    return PostgreSQL(url, schema=schema, method=method, max_batch=batch)  # type: ignore[arg-type]


def real_events(n: int) -> list[UsageEvent]:
    meter = Meter(sink=MemorySink())
    client = meter.wrap(SimulatedOpenAI(reply_words=5).client())
    for i in range(50):
        with meter.context(customer_id=f"cus_{i % 7}", feature="support", tags={"plan": "pro", "n": str(i)}):
            client.chat.completions.create(**ASK)
    templates = meter.events()
    meter.close()
    return [renew(templates[i % len(templates)]) for i in range(n)]


def renew(event: UsageEvent) -> UsageEvent:
    """The same event under a new id."""
    return UsageEvent.model_construct(**{**event.__dict__, "id": new_event_id()})


def drop(url: str, schema: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def deliver_all(destination: PostgreSQL, events: list[UsageEvent], batch: int) -> tuple[float, list[float]]:
    per_batch = []
    start = time.perf_counter()
    for i in range(0, len(events), batch):
        t = time.perf_counter()
        result = destination.deliver(events[i:i + batch])
        per_batch.append(time.perf_counter() - t)
        assert result.outcome == "delivered", result
    return time.perf_counter() - start, per_batch


def direct(url: str, method: str, batch: int, events: list[UsageEvent], repeat: int) -> dict[str, object]:
    best_new = best_again = float("inf")
    medians = []
    for _ in range(repeat):
        schema = f"bench_{uuid.uuid4().hex[:8]}"
        destination = make(url, method, schema, batch)
        try:
            destination.deliver(events[:1])  # connect, migrate (not timed)
            fresh = [renew(e) for e in events]
            elapsed, per_batch = deliver_all(destination, fresh, batch)
            best_new = min(best_new, elapsed)
            medians.append(statistics.median(per_batch) * 1000)
            elapsed, _ = deliver_all(destination, fresh, batch)
            best_again = min(best_again, elapsed)
        finally:
            destination.close()
            drop(url, schema)
    n = len(events)
    return {"method": method, "batch": batch, "events": n, "new_per_s": round(n / best_new),
            "again_per_s": round(n / best_again), "batch_ms_median": round(statistics.median(medians), 2)}


def through_outbox(url: str, method: str, batch: int, events: list[UsageEvent]) -> dict[str, object]:
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory() as tmp:
        sink = SQLiteSink(Path(tmp) / "outbox.db")
        sink.write([renew(e) for e in events])
        sink.flush(timeout=120)
        destination = make(url, method, schema, batch)
        destination.migrate()
        delivery = Delivery(str(sink.database.path), [destination])
        try:
            start = time.perf_counter()
            while delivery.run_once(destination):
                pass
            elapsed = time.perf_counter() - start
            [status] = delivery.status()
            assert status.delivered == len(events) and status.queued == 0, status
        finally:
            delivery.stop(5)
            sink.close()
            drop(url, schema)
    return {"method": method, "batch": batch, "events": len(events), "outbox_per_s": round(len(events) / elapsed)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default=os.environ.get("METRICAOS_TEST_POSTGRES_URL"))
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--batches", default="500,1000")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if not args.url:
        parser.error("no server: pass --url or run `eval \"$(bash scripts/postgres-server.sh)\"`")
    events = real_events(args.events)
    rows = []
    for batch in (int(b) for b in args.batches.split(",")):
        for method in ("copy", "insert", "values"):
            row = direct(args.url, method, batch, events, args.repeat)
            row.update(through_outbox(args.url, method, batch, events))
            rows.append(row)
            if not args.json:
                print(f"{method:>6} batch {batch:>5}: new {row['new_per_s']:>8,} ev/s  again {row['again_per_s']:>8,} ev/s"
                      f"  outbox {row['outbox_per_s']:>7,} ev/s  (median batch {row['batch_ms_median']} ms)", flush=True)
    if args.json:
        print(json.dumps(rows))


if __name__ == "__main__":
    main()
