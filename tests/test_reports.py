"""Reports over real SQLite stores (and PostgreSQL where the suite has one): exact money, the per-day rollup and
the events giving the same numbers, agreement with ``meter.usage()``, and the CLI's commands and errors."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from metricaos_sdk import Meter, UsageEvent
from metricaos_sdk.cli import cli
from metricaos_sdk.reports.customer import customer_usage, limits_for
from metricaos_sdk.reports.margin import margins, read_revenue
from metricaos_sdk.reports.source import SQLiteSource, open_source
from metricaos_sdk.reports.usage_report import Filters, usage_report
from metricaos_sdk.storage.database import Database
from metricaos_sdk.testing.sample import sample_events, write_sample
from tests.billing_support import event, store

NOV = datetime(2026, 11, 1, tzinfo=timezone.utc)
AMOUNTS = st.one_of(
    st.decimals(min_value=Decimal("-5"), max_value=Decimal("5"), places=12, allow_nan=False),
    st.decimals(min_value=Decimal("0"), max_value=Decimal("1"), places=18, allow_nan=False),  # past 12 places
    st.decimals(min_value=Decimal("99"), max_value=Decimal("100000"), places=4, allow_nan=False),  # over $100
    st.sampled_from([Decimal("1.5E-7"), Decimal("1.875E-8"), Decimal("3E+2"), Decimal("0E-12"), Decimal("-0.000001")]),
)


def python_sums(events: list[UsageEvent], keep=lambda e: True) -> tuple[Decimal, Decimal, int]:
    calls = [e for e in events if keep(e) and e.event_type not in ("action", "usage", "outcome")]
    return (sum((e.cost_usd or 0 for e in calls), Decimal(0)),
            sum((e.credits or 0 for e in events if keep(e)), Decimal(0)), len(calls))


@settings(max_examples=40, deadline=None)
@given(costs=st.lists(st.tuples(AMOUNTS, st.one_of(st.none(), AMOUNTS), st.integers(0, 47)), min_size=1, max_size=40))
def test_money_sums_are_exact_whatever_the_amounts(tmp_path_factory, costs):
    path = tmp_path_factory.mktemp("exact") / "m.db"
    events = [event(cost=c, credits=k, at=NOV + timedelta(hours=h), customer=f"cus_{h % 3}") for c, k, h in costs]
    store(Database(path), events)
    source = open_source(path)
    for filters in (Filters(), Filters(status="ok"),  # the rollup for whole days, the events for the rest
                    Filters(since=NOV + timedelta(hours=5), until=NOV + timedelta(hours=30))):
        rep = usage_report(source, "customer", filters)
        def keep(e: UsageEvent, f: Filters = filters) -> bool:
            return (f.since is None or e.timestamp >= f.since) and (f.until is None or e.timestamp < f.until)

        cost, credits, calls = python_sums(events, keep)
        assert rep.total.total.cost_usd == cost
        assert rep.total.total.credits == credits
        assert rep.total.total.requests == calls
        for row in rep.rows:
            assert row.total.cost_usd == python_sums(events, lambda e, k=row.key, w=keep: w(e) and e.customer_id == k)[0]
    source.close()


def test_the_rollup_and_the_events_give_the_same_report(tmp_path):
    path = write_sample(tmp_path / "s.db", 3000, days=4)
    source = open_source(path)
    assert source.rollup is not None
    since, until = NOV + timedelta(hours=13, minutes=7), NOV + timedelta(days=3, hours=2)
    for by in ("customer", "user", "feature", "model", "provider", "environment", "action", "day"):
        for window in ({}, {"since": since}, {"until": until}, {"since": since, "until": until}):
            via_rollup = usage_report(source, by, Filters(**window))
            # Forcing the events path: a status filter cannot be served by the rollup; status="ok" plus the rest
            # must add up to the whole.
            parts = [usage_report(source, by, Filters(status=s, **window)) for s in ("ok", "error", "cancelled")]
            for name in ("requests", "total_tokens", "cost_usd", "credits", "unpriced_requests", "estimated_requests"):
                assert getattr(via_rollup.total.total, name) == sum(getattr(p.total.total, name) for p in parts), (by, name)
            rows = {r.key: r.total for r in via_rollup.rows}
            merged: dict[str, Decimal] = {}
            for p in parts:
                for r in p.rows:
                    merged[r.key] = merged.get(r.key, Decimal(0)) + r.total.cost_usd
            assert {k: v.cost_usd for k, v in rows.items()} == merged
    source.close()


def test_a_store_without_the_rollup_reads_the_events(tmp_path):
    path = write_sample(tmp_path / "s.db", 800, days=3)
    with_rollup = usage_report(open_source(path), "model").as_json()
    conn = sqlite3.connect(path)
    conn.execute("DROP TRIGGER events_report_rollup")
    conn.execute("DROP TABLE report_daily")
    conn.execute("DROP TABLE report_daily_users")
    conn.commit()
    conn.close()
    source = SQLiteSource(path)  # read-only: the missing migration is not applied
    assert source.rollup is None
    assert usage_report(source, "model").as_json() == with_rollup


def test_rows_inserted_twice_count_once_in_the_rollup(tmp_path):
    db = Database(tmp_path / "m.db")
    events = store(db, [event(cost="0.25", tokens=(10, 5)), event(cost="0.5", tokens=(1, 1))])
    store(db, events)  # the same ids again: INSERT OR IGNORE fires no trigger
    total = usage_report(open_source(tmp_path / "m.db"), "customer").total.total
    assert (total.requests, total.cost_usd, total.total_tokens) == (2, Decimal("0.75"), 17)


def test_the_sample_totals_match_python(tmp_path):
    events = list(sample_events(2000, days=5))
    path = write_sample(tmp_path / "s.db", 2000, days=5)
    rep = usage_report(open_source(path), "customer")
    cost, credits, calls = python_sums(events, lambda e: e.billable)
    assert rep.total.billable.cost_usd == cost and rep.total.billable.credits == credits
    assert rep.total.billable.requests == calls
    assert rep.total.total.unpriced_requests == sum(e.cost_usd is None for e in events if e.event_type != "action")
    assert rep.total.total.estimated_requests == sum(e.usage_status == "estimated" for e in events)
    assert rep.total.non_billable.requests == sum(not e.billable and e.event_type != "action" for e in events)


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory):
    """A store written by the real openai client through the meter: the demo app, with its plans and limits."""
    path = tmp_path_factory.mktemp("demo") / "demo.db"
    result = CliRunner().invoke(cli, ["demo", "--db", str(path)])
    assert result.exit_code == 0, result.output
    return path


def run(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_the_report_agrees_with_meter_usage(demo_db):
    with Meter(demo_db) as meter:
        for customer in ("cus_acme", "cus_globex", "cus_initech"):
            summary = meter.usage(customer)
            rep = json.loads(run("report", "--db", str(demo_db), "--by", "feature", "--customer", customer,
                                 "--since", summary.period_start.isoformat(), "--until", summary.period_end.isoformat(),
                                 "--json"))
            got = {r["key"]: r["billable"] for r in rep["rows"]}
            want = {k: v for k, v in summary.by_feature.items()}
            assert set(got) == set(want)
            for key, totals in want.items():
                assert got[key]["requests"] == totals.requests
                assert got[key]["total_tokens"] == totals.total_tokens
                assert Decimal(got[key]["cost_usd"]) == totals.cost_usd
                assert Decimal(got[key]["credits"]) == totals.credits


def test_usage_shows_what_the_meter_shows(demo_db):
    with Meter(demo_db) as meter:
        summary = meter.usage("cus_globex")
    view = json.loads(run("usage", "cus_globex", "--db", str(demo_db), "--json"))
    assert view["allowance"] is not None
    assert Decimal(view["allowance"]) == summary.allowance
    assert Decimal(view["used"]) == summary.used
    assert Decimal(view["remaining"]) == summary.remaining
    assert view["period_end"] == summary.period_end.isoformat()
    assert view["at_limit"] == summary.limits[0].mode
    assert view["plan"] == summary.plan
    assert Decimal(view["totals"]["cost_usd"]) == summary.totals.cost_usd
    assert {r["key"]: r["requests"] for r in view["by_user"]} == {k: t.requests for k, t in summary.by_user.items()}
    text = run("usage", "cus_globex", "--db", str(demo_db))
    assert "cus_globex" in text and "at the limit:" in text


def test_usage_by_day_covers_the_period_so_far(tmp_path):
    path = write_sample(tmp_path / "s.db", 1500, days=10)
    now = NOV + timedelta(days=6, hours=3)
    view = customer_usage(open_source(path), "cus_a", now=now)
    assert [r.key for r in view.by_day] == [(NOV + timedelta(days=d)).date().isoformat() for d in range(7)]
    assert view.at_limit == "none" and view.allowance is None
    assert view.totals.requests == sum(r.billable.requests for r in view.by_day)
    assert view.projected is not None and view.projected > view.used
    assert limits_for(path, "cus_a", now) == (None, [])


def test_events_lists_newest_first_with_filters(tmp_path):
    path = write_sample(tmp_path / "s.db", 1500, days=2)
    lines = run("events", "--db", str(path), "--customer", "cus_a", "--status", "error", "--limit", "500", "--json")
    rows = [json.loads(line) for line in lines.splitlines()]
    expected = [e for e in sample_events(1500, days=2) if e.customer_id == "cus_a" and e.status == "error"]
    assert len(rows) == len(expected) > 0
    assert [r["timestamp"] for r in rows] == sorted((r["timestamp"] for r in rows), reverse=True)
    assert {r["id"] for r in rows} == {e.id for e in expected}


def test_export_writes_every_event_once_and_no_progress_bar_when_piped(tmp_path):
    path = write_sample(tmp_path / "s.db", 900, days=3)
    expected = {e.id: e for e in sample_events(900, days=3) if e.timestamp.date().isoformat() == "2026-11-02"}
    out = tmp_path / "day.jsonl"
    result = CliRunner().invoke(cli, ["export", "--db", str(path), "--format", "jsonl", "--period", "2026-11-02",
                                      "-o", str(out)])
    assert result.exit_code == 0 and result.output == ""
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(r["id"] for r in rows) == sorted(expected)
    assert all(Decimal(r["cost_usd"]) == expected[r["id"]].cost_usd for r in rows if r["cost_usd"] is not None)
    text = run("export", "--db", str(path), "--format", "csv", "--period", "2026-11-02")
    table = list(csv.DictReader(io.StringIO(text)))
    assert len(table) == len(expected)
    assert sum(Decimal(r["cost_usd"]) for r in table if r["cost_usd"]) == sum(
        (e.cost_usd or 0 for e in expected.values()), Decimal(0))


def test_the_invoice_export_has_the_four_stages(tmp_path):
    from metricaos_sdk.billing import Billing, Charge, PricePlan

    db = tmp_path / "b.db"
    store(Database(db), [event(cost="0.5", tokens=(100, 50), feature="chat"), event(cost="0.25", tokens=(10, 5))])
    with Billing(db) as billing:
        billing.subscribe("cus_1", PricePlan("pro", base_price="20", charges=[Charge("tokens", unit_price="0.01")]),
                          at=NOV)
        invoice = billing.invoice("cus_1", "2026-11")
    rows = list(csv.DictReader(io.StringIO(run("export", "--db", str(db), "--format", "invoice", "--period", "2026-11"))))
    assert [Decimal(r["amount"]) for r in rows] == [line.amount for line in invoice.lines]
    assert sum(Decimal(r["amount"]) for r in rows) == invoice.total
    assert {r["customer_id"] for r in rows} == {"cus_1"}
    for stage in ("raw", "metered", "billable", "invoiced"):
        assert f"{stage}_tokens" in rows[0]
    assert rows[0]["metered_tokens"] == str(invoice.stages.metered.as_dict()["tokens"])


def test_margin_from_a_revenue_file_puts_negative_margins_first(tmp_path):
    path = write_sample(tmp_path / "s.db", 1200, days=30)
    cost = {r.key: r.billable.cost_usd for r in usage_report(open_source(path), "customer").rows}
    revenue = tmp_path / "revenue.csv"
    revenue.write_text("customer_id,revenue,period\ncus_a,$1000.00,2026-11\ncus_b,1.50,2026-11\ncus_b,5,2026-10\n"
                       "cus_zz,12,2026-11\n")
    out = json.loads(run("margin", "--db", str(path), "--period", "2026-11", "--revenue", str(revenue), "--json"))
    by = {m["customer_id"]: m for m in out["customers"]}
    assert Decimal(by["cus_a"]["margin"]) == Decimal(1000) - cost["cus_a"]
    assert Decimal(by["cus_b"]["revenue"]) == Decimal("1.50")  # the October row is another period's
    assert by["cus_zz"]["cost_usd"] == "0" and by["cus_zz"]["margin"] == "12"
    margins_in_order = [Decimal(m["margin"]) for m in out["customers"]]
    negatives = [m for m in margins_in_order if m < 0]
    assert negatives and margins_in_order[: len(negatives)] == sorted(negatives)
    assert by["cus_c"]["margin_pct"] is None  # cost and no revenue
    assert margins(open_source(path), read_revenue(revenue, period="2026-11"))[0].margin < 0


@pytest.mark.parametrize(("args", "message"), [
    (["report", "--since", "2026-13-01"], "is not a date or time"),
    (["report", "--since", "2026-11-05", "--until", "2026-11-01"], "is not after since"),
    (["report", "--by", "planet"], "Invalid value for '--by'"),
    (["export", "--format", "invoice"], "an invoice export needs a period"),
    (["margin", "--period", "November"], "is not a period"),
])
def test_bad_arguments_say_what_to_fix(tmp_path, args, message):
    path = write_sample(tmp_path / "s.db", 10, days=1)
    result = CliRunner().invoke(cli, [*args, "--db", str(path)])
    assert result.exit_code != 0
    assert message in result.output
    assert "Traceback" not in result.output


def test_a_missing_store_and_a_bad_revenue_file_are_one_line_errors(tmp_path):
    result = CliRunner().invoke(cli, ["report", "--db", str(tmp_path / "none.db")])
    assert result.exit_code == 1
    assert result.output.strip() == f"Error: No metrics database at {tmp_path / 'none.db'}: pass --db PATH or set METRICAOS_DB."
    path = write_sample(tmp_path / "s.db", 10, days=1)
    bad = tmp_path / "r.csv"
    bad.write_text("customer_id,revenue\ncus_a,lots\n")
    result = CliRunner().invoke(cli, ["margin", "--db", str(path), "--period", "2026-11", "--revenue", str(bad)])
    assert result.exit_code == 1 and "r.csv line 2: needs a customer_id and a decimal revenue" in result.output
    assert len(result.output.strip().splitlines()) == 1


@pytest.mark.parametrize("method", ["copy", "insert"])
def test_postgresql_rollup_counts_concurrent_overlapping_deliveries_once(tmp_path, method):
    import os
    import threading
    import uuid

    url = os.environ.get("METRICAOS_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("METRICAOS_TEST_POSTGRES_URL is not set (scripts/postgres-server.sh starts a server)")
    psycopg = pytest.importorskip("psycopg")
    from metricaos_sdk.delivery.postgres import PostgreSQL

    schema = f"t_rollup_{uuid.uuid4().hex[:8]}"
    events = list(sample_events(2000, days=3))
    PostgreSQL(url, schema=schema).migrate()
    errors: list[BaseException] = []

    def deliver(order: list[UsageEvent]) -> None:
        destination = PostgreSQL(url, schema=schema, max_batch=250, method=method)
        try:
            for start in range(0, len(order), 250):
                result = destination.deliver(order[start:start + 250])
                assert result.outcome == "delivered", result  # a deadlock would come back as a retry
        except BaseException as exc:  # noqa: BLE001 - reported below, from the test's thread
            errors.append(exc)
        finally:
            destination.close()

    threads = [threading.Thread(target=deliver, args=(order,)) for order in (events, events[::-1], events[500:] + events)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    try:
        assert not errors
        pg = open_source(url, schema=schema)
        via_rollup = usage_report(pg, "customer").as_json()
        via_events = usage_report(pg, "customer", Filters(status="ok")).total.total.events
        lite = write_sample(tmp_path / "s.db", 2000, days=3)
        assert via_rollup == usage_report(open_source(lite), "customer").as_json()
        assert via_events == sum(e.status == "ok" for e in events)
        pg.close()
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def test_empty_and_missing_keys_stay_apart_on_every_path(tmp_path):
    import os
    import uuid

    events = [event(customer=c, feature=f, cost="0.5", at=NOV + timedelta(hours=h))
              for h in (3, 30) for c, f in ((None, None), ("", ""), ("0", "0"), ("cus_1", "chat"))]
    sources = [lambda: (store(Database(tmp_path / "m.db"), events), open_source(tmp_path / "m.db"))[1]]
    url = os.environ.get("METRICAOS_TEST_POSTGRES_URL")
    schema = f"t_keys_{uuid.uuid4().hex[:8]}"
    if url:
        from metricaos_sdk.delivery.postgres import PostgreSQL

        def postgres():
            destination = PostgreSQL(url, schema=schema)
            assert destination.deliver(events).outcome == "delivered"
            destination.close()
            return open_source(url, schema=schema)

        sources.append(postgres)
    try:
        for make in sources:
            source = make()
            for by in ("customer", "feature"):
                whole = {r.key: r.total.events for r in usage_report(source, by).rows}  # the rollup
                parts = {r.key: r.total.events for r in usage_report(source, by, Filters(since=NOV + timedelta(hours=1))).rows}
                assert whole == parts == {"(none)": 2, "": 2, "0": 2, "cus_1" if by == "customer" else "chat": 2}, by
            source.close()
    finally:
        if url:
            import psycopg

            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def test_postgresql_reports_equal_sqlite_reports(tmp_path):
    import os

    url = os.environ.get("METRICAOS_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("METRICAOS_TEST_POSTGRES_URL is not set (scripts/postgres-server.sh starts a server)")
    import uuid

    psycopg = pytest.importorskip("psycopg")
    from metricaos_sdk.delivery.postgres import PostgreSQL

    schema = f"t_reports_{uuid.uuid4().hex[:8]}"
    path = write_sample(tmp_path / "s.db", 1500, days=6)
    destination = PostgreSQL(url, schema=schema)
    try:
        events = list(sample_events(1500, days=6))
        for start in range(0, len(events), 500):
            destination.deliver(events[start:start + 500])
        pg = open_source(url, schema=schema)
        assert pg.rollup is not None  # filled by the statement trigger as the destination inserted
        lite = open_source(path)
        since = NOV + timedelta(days=1, hours=5)
        for by in ("customer", "model", "day", "hour", "action"):
            assert usage_report(pg, by, Filters(since=since)).as_json() == usage_report(lite, by, Filters(since=since)).as_json()
            whole = usage_report(pg, by, Filters(since=since)).total.total
            parts = [usage_report(pg, by, Filters(since=since, status=s)).total.total for s in ("ok", "error", "cancelled")]
            assert whole.cost_usd == sum(p.cost_usd for p in parts) and whole.events == sum(p.events for p in parts)
        assert (customer_usage(pg, "cus_a", now=NOV + timedelta(days=4)).as_json()
                == customer_usage(lite, "cus_a", now=NOV + timedelta(days=4)).as_json())
        pg.close()
        out = run("report", "--db", url, "--table", f"{schema}.metricaos_events", "--by", "model", "--json")
        assert json.loads(out) == usage_report(lite, "model").as_json()
    finally:
        destination.close()
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.mark.parametrize("where", [
    "postgresql://app@127.0.0.1:1/metrics?password=hunter2hunter2",  # the password as a parameter
    "postgresql://u:hun%ZZter2hunter2@127.0.0.1/x",  # a URL psycopg cannot parse: its message quotes it
    "host=127.0.0.1 port=1 password=hunter2hunter2 dbname=x",  # a key=value connection string, not a file name
    "postgresql://postgres:hunter2hunter2@127.0.0.1:1/x",
])
def test_a_store_that_cannot_be_read_never_shows_its_password(where):
    pytest.importorskip("psycopg")
    result = CliRunner().invoke(cli, ["report", "--db", where])
    assert result.exit_code == 1
    assert "hunter2" not in result.output and "ZZ" not in result.output
    assert result.output.startswith("Error: ") and len(result.output.strip().splitlines()) == 1
