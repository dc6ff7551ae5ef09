"""The schema's migrations (metricaos_sdk/storage/migrations.py), on a blank database and as upgrades.

Databases at an older step are made with ``migrations.apply(db, stop_before=...)`` and filled directly with
SQL: opening them through the SDK would migrate them first.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from decimal import Decimal

import pytest
import sqlite_utils

from metricaos_sdk import Meter, UsageEvent
from metricaos_sdk.storage.migrations import migrations
from metricaos_sdk.storage.rows import EVENT_COLUMNS, event_to_row

APPLIED = ["m001_events", "m002_quotas", "m003_quota_reservations", "m004_event_credits", "m005_drop_m002_quota_tables",
           "m006_delivery", "m007_event_actions", "m008_billing", "m009_billing_rollup",
           "m010_event_server", "m011_report_rollup"]
TABLES = {"_sqlite_migrations", "events", "quota_used", "quota_reservations", "quota_marks", "quota_config", "quota_meta",
          "delivery_state", "delivery_failures", "billing_adjustments", "billing_adjusted_events",
          "billing_plans", "billing_subscriptions", "billing_daily", "billing_daily_values", "report_daily", "report_daily_users"}
QUOTA_TABLES = sorted(t for t in TABLES if t.startswith("quota_"))


def test_migrate_blank(db_path):
    db = sqlite_utils.Database(db_path)
    migrations.apply(db)
    assert [m.name for m in migrations.applied(db)] == APPLIED
    assert migrations.pending(db) == []
    assert set(db.table_names()) == TABLES  # m002's quotas and usage_daily are gone (m005)
    assert list(db["events"].columns_dict) == list(EVENT_COLUMNS)  # one column per UsageEvent field, in order
    assert db["events"].pks == ["id"]
    migrations.apply(db)  # applying again is a no-op
    assert [m.name for m in migrations.applied(db)] == APPLIED


def m004_database(db_path, *, leftovers: bool) -> sqlite_utils.Database:
    """A database as 0.1.0 left it (migrated up to m004) holding an event and quota state."""
    db = sqlite_utils.Database(db_path)
    migrations.apply(db, stop_before="m005_drop_m002_quota_tables")
    assert [m.name for m in migrations.applied(db)] == APPLIED[:4]
    event = UsageEvent(timestamp=datetime(2026, 11, 30, 12, tzinfo=timezone.utc), event_type="chat_completion",
                       provider="openai", endpoint="/chat/completions", model="gpt-4.1-mini", customer_id="cus_old",
                       input_tokens=1200, output_tokens=300, total_tokens=1500, cost_usd=Decimal("0.00096"),
                       price_status="priced", credits=Decimal("1.5"))
    columns = list(db["events"].columns_dict)  # m004's: the action and custom usage columns came with m007
    row = dict(zip(EVENT_COLUMNS, event_to_row(event), strict=True))
    db.execute(f"INSERT INTO events ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
               [row[c] for c in columns])
    limits = {"limits": {"tokens": {"limit": "5000", "period": "month"}}}
    db.execute("INSERT INTO quota_config VALUES ('customer', 'cus_old', ?)", [json.dumps(limits)])
    db.execute("INSERT INTO quota_meta VALUES ('config_version', 3)")
    db.execute("INSERT INTO quota_used VALUES ('cus_old', 'own:tokens:*:month:1764547200', 1500, 1767312000.0)")
    db.execute("INSERT INTO quota_reservations VALUES ('call-1', 'cus_old', 'own:tokens:*:month:1764547200', 512, 4102444800.0)")
    db.execute("INSERT INTO quota_marks VALUES ('cus_old', 'warned:80', 4102444800.0)")
    if leftovers:  # a database that was at m002 once: m003 copied these rows over, and they stayed behind
        db.execute("INSERT INTO quotas VALUES ('cus_old', 'tokens', 'month', '5000')")
        db.execute("INSERT INTO usage_daily VALUES ('cus_old', '2026-11-30', 1500, 1, '0.00096')")
    db.conn.commit()
    return db


@pytest.mark.parametrize("leftovers", [False, True], ids=["empty-m002-tables", "m002-rows-left-behind"])
def test_upgrade_from_m004_drops_the_m002_tables_and_keeps_events_and_quotas(db_path, leftovers):
    db = m004_database(db_path, leftovers=leftovers)
    assert {"quotas", "usage_daily"} <= set(db.table_names())
    before = {table: list(db[table].rows) for table in ["events", *QUOTA_TABLES]}
    assert all(before.values())
    migrations.apply(db)
    assert [m.name for m in migrations.applied(db)] == APPLIED
    assert set(db.table_names()) == TABLES
    after = {table: list(db[table].rows) for table in before}
    # m007's columns are added to every row, empty: each row is what it was, plus them
    assert [{k: v for k, v in row.items() if k in before["events"][0]} for row in after["events"]] == before["events"]
    assert {k for row in after["events"] for k, v in row.items() if k not in before["events"][0] and v is not None} == set()
    assert {t: rows for t, rows in after.items() if t != "events"} == {t: r for t, r in before.items() if t != "events"}
    # m011 filled the reports' rollup from the events already there
    for rollup in ("report_daily", "report_daily_users"):
        assert db.execute(f"SELECT sum(events), sum(total_tokens) FROM {rollup}").fetchone() == (
            len(before["events"]), sum(row["total_tokens"] for row in before["events"]))
    db.conn.close()

    meter = Meter(db_path)  # the SDK reads the upgraded file as its own
    [event] = meter.events(customer_id="cus_old")
    assert (event.input_tokens, event.cost_usd, event.credits) == (1200, Decimal("0.00096"), Decimal("1.5"))
    assert [(q.unit, q.limit, q.period) for q in meter.customers.limits_of("cus_old")] == [("tokens", 5000, "month")]
    meter.close()


def test_opening_an_m004_database_with_the_sdk_upgrades_it(db_path):
    m004_database(db_path, leftovers=True).conn.close()
    Meter(db_path).close()
    db = sqlite_utils.Database(db_path)
    assert [m.name for m in migrations.applied(db)] == APPLIED
    assert set(db.table_names()) == TABLES
