"""Reports and dashboard benchmarks over a store of a million events, SQLite and PostgreSQL.

    python benchmarks/reports.py [--events 1000000] [--store PATH] [--postgres-url URL] [--repeat 3] [--json]

1. A store of ``--events`` LLM calls over 30 days (``metricaos_sdk.testing.sample``: 7 customers, 84 users,
   4 features, 5 models, actions around a fifth of the calls — about 1.2 events per call), written once into
   ``--store`` (default: a file in the temp directory named after the size, reused by later runs).
2. ``report``: the ``metricaos report --json`` command, run as a process (Python's start and the import
   included), by customer, model, day and user; and the same reports in process.
3. ``customer`` and ``business``: the data of the dashboard's two pages (``customer_usage`` for the busiest
   customer with ``limits_for``; ``business_overview``), and the pages themselves over HTTP (the dashboard's
   server on 127.0.0.1, each page fetched whole, as of the month's last day).
4. The same reports and pages in PostgreSQL (``--postgres-url``, default ``$METRICAOS_TEST_POSTGRES_URL``; skipped
   with the reason when unset): the events delivered by the PostgreSQL destination into a schema of their own
   (``--postgres-schema`` reuses one already loaded), read through its rollup.
5. ``write``: what the per-day rollup (m011's trigger) costs the writer: events per second the SQLite sink commits
   with and without it.

Timings are the best of ``--repeat`` runs on a warm file (the OS page cache holds it).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from metricaos_sdk.reports.business import business_overview  # noqa: E402
from metricaos_sdk.reports.customer import customer_usage, limits_for  # noqa: E402
from metricaos_sdk.reports.source import open_source  # noqa: E402
from metricaos_sdk.reports.usage_report import Filters, usage_report  # noqa: E402
from metricaos_sdk.testing.sample import sample_events, write_sample  # noqa: E402

BY = ("customer", "model", "day", "user")
NOW = datetime(2026, 11, 30, 12, tzinfo=timezone.utc)
"""The moment pages and the customer view are computed at: the last day of the generated month."""


def best(fn: Callable[[], Any], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def cli_report(db: str, by: str, extra: tuple[str, ...] = ()) -> None:
    subprocess.run([sys.executable, "-m", "metricaos_sdk.cli", "report", "--db", db, "--by", by, "--json", *extra],
                   check=True, capture_output=True)


def in_process(source: Any, repeat: int) -> dict[str, float]:
    out = {f"report_by_{by}_s": best(lambda by=by: usage_report(source, by, Filters()), repeat) for by in BY}
    out["customer_page_data_s"] = best(lambda: customer_usage(source, "cus_a", now=NOW), repeat)
    out["business_page_data_s"] = best(lambda: business_overview(source), repeat)
    return out


def pages(db: str, repeat: int, table: str = "metricaos_events") -> dict[str, float]:
    from metricaos_sdk.dashboard import make_server

    httpd = make_server(db, host="127.0.0.1", port=0, now=NOW, table=table)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    try:
        def get(path: str) -> None:
            with urllib.request.urlopen(base + path, timeout=60) as response:
                response.read()

        return {"business_page_s": best(lambda: get("/?period=2026-11"), repeat),
                "customer_page_s": best(lambda: get("/customer/cus_a"), repeat),
                "customer_json_s": best(lambda: get("/api/customer/cus_a"), repeat)}
    finally:
        httpd.shutdown()
        httpd.server_close()


def postgres(url: str | None, events: int, repeat: int, reuse: str | None) -> dict[str, Any] | str:
    if not url:
        return "skipped: no --postgres-url and METRICAOS_TEST_POSTGRES_URL is not set"
    import psycopg

    from metricaos_sdk.delivery.postgres import PostgreSQL

    if reuse:
        PostgreSQL(url, schema=reuse).migrate()
        source = open_source(url, schema=reuse)
        out: dict[str, Any] = in_process(source, repeat)
        source.close()
        out["pages"] = pages(url, repeat, table=f"{reuse}.metricaos_events")
        return out
    schema = f"bench_reports_{uuid.uuid4().hex[:8]}"
    destination = PostgreSQL(url, schema=schema, max_batch=5000)
    try:
        t0 = time.perf_counter()
        batch = []
        for event in sample_events(events):
            batch.append(event)
            if len(batch) == 5000:
                destination.deliver(batch)
                batch = []
        if batch:
            destination.deliver(batch)
        load = time.perf_counter() - t0
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f'VACUUM ANALYZE "{schema}".metricaos_events')
        source = open_source(url, schema=schema)
        out = {"load_s": load, **in_process(source, repeat)}
        source.close()
        out["pages"] = pages(url, repeat, table=f"{schema}.metricaos_events")
        return out
    finally:
        destination.close()
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def write_rate(tmp: Path, events: int, *, trigger: bool) -> float:
    """Events per second the SQLite sink commits (written in batches of 100, timed to the end of ``flush``)."""
    from metricaos_sdk import SQLiteSink

    path = tmp / f"write-{uuid.uuid4()}.db"
    sink = SQLiteSink(path)
    if not trigger:
        with sink.database.transaction() as conn:
            conn.execute("DROP TRIGGER events_report_rollup")
    batch = list(sample_events(events, seed=uuid.uuid4().int % 1000))
    t0 = time.perf_counter()
    for at in range(0, len(batch), 100):
        sink.write(batch[at:at + 100])
    sink.flush(timeout=600)
    elapsed = time.perf_counter() - t0
    sink.close()
    return len(batch) / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--store", type=Path, default=None)
    parser.add_argument("--postgres-url", default=os.environ.get("METRICAOS_TEST_POSTGRES_URL"))
    parser.add_argument("--postgres-schema", default=None, help="a schema already loaded with the same events")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--write-events", type=int, default=20_000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    path = args.store or Path(tempfile.gettempdir()) / f"metricaos-bench-reports-{args.events}.db"
    out: dict[str, Any] = {"events": args.events, "store": str(path)}
    if not path.exists():
        t0 = time.perf_counter()
        write_sample(path, args.events)
        out["generate_s"] = time.perf_counter() - t0
    db = str(path)
    out["cli"] = {f"report_by_{by}_s": best(lambda by=by: cli_report(db, by), args.repeat) for by in BY}
    out["cli"]["report_by_customer_one_week_s"] = best(
        lambda: cli_report(db, "customer", ("--since", "2026-11-08T06:30", "--until", "2026-11-15")), args.repeat)
    out["cli"]["python_start_and_import_s"] = best(
        lambda: subprocess.run([sys.executable, "-m", "metricaos_sdk.cli", "--version"], check=True,
                               capture_output=True), args.repeat)
    source = open_source(db)
    out["sqlite"] = in_process(source, args.repeat)
    out["sqlite"]["limits_for_s"] = best(lambda: limits_for(db, "cus_a", NOW), args.repeat)
    source.close()
    out["pages"] = pages(db, args.repeat)
    out["postgres"] = postgres(args.postgres_url, args.events, args.repeat, args.postgres_schema)
    with tempfile.TemporaryDirectory() as tmp:
        out["write_events_per_s"] = {
            name: max(write_rate(Path(tmp), args.write_events, trigger=flag) for _ in range(args.repeat))
            for name, flag in (("without_rollup", False), ("with_rollup", True))}
    if args.json:
        print(json.dumps(out))
        return
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
