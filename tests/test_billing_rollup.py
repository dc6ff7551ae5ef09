"""The per-day billing rollup (m009): what it holds equals a GROUP BY over the events — after inserts through the
trigger, after the migration's backfill of an existing database, and with duplicate event ids (INSERT OR IGNORE:
the trigger fires only for rows actually inserted); and what billing reads from it equals the events scan."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

import pytest
import sqlite_utils

from metricaos_sdk import SQLiteSink
from metricaos_sdk.billing import Billing, Charge, PricePlan
from metricaos_sdk.billing.aggregate import group_usage
from metricaos_sdk.billing.rating import rating_sql
from metricaos_sdk.billing.rollup import Rerate, Scope, day_totals, usage
from metricaos_sdk.quota.credits import CreditRule
from metricaos_sdk.storage.database import Database
from metricaos_sdk.storage.migrations import migrations
from metricaos_sdk.storage.rows import EVENT_COLUMNS, event_to_row
from tests.billing_support import NOV, event, store

RULES = {"docs": CreditRule(per_call=40),
         "*": CreditRule(credits_per_usd=1000, margin="1.5", quantum="0.01", rounding="up", per_unit={"page": "0.3"})}


def history(seed: int = 7, n: int = 400):
    """Every kind of event the rollup tells apart: calls in and out of actions, outermost and nested actions,
    custom usage and outcomes, billable or not, with and without customer, feature, cost and credits, across
    October and November (repeated values, so the values rollup has counts above 1)."""
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        kind = rnd.choice(["chat_completion"] * 4 + ["embedding", "action", "usage", "outcome"])
        fields: dict = {}
        if kind == "action":
            fields = {"action_name": rnd.choice(["summarize", "workflow"]), "action_id": f"a{i}",
                      "parent_action_id": rnd.choice([None, None, "a0"])}
        elif kind in ("usage", "outcome"):
            fields = {"unit": "page" if kind == "usage" else "resolved_ticket", "quantity": rnd.choice([1, 3, "0.5"])}
        elif rnd.random() < 0.3:
            fields = {"action_id": "a1", "action_name": "summarize"}
        out.append(event(event_type=kind, customer=rnd.choice(["cus_a", "cus_a", "cus_b", None]),
                         feature=rnd.choice(["docs", "support", None]), billable=rnd.random() < 0.8,
                         credits=rnd.choice([None, 0, 50, "1.25", "0.000001"]),
                         cost=rnd.choice([None, "0.0012", "0.00037", "0", "0.0000125"]),
                         tokens=(rnd.choice([10, 120, 300]), rnd.choice([5, 40])),
                         at=NOV + timedelta(minutes=rnd.randint(-3000, 60 * 24 * 30)), **fields))
    return out


def direct(conn):
    """A GROUP BY over the events, written here independently of the migration's SQL."""
    rows = conn.execute("""
        SELECT substr(timestamp, 1, 10), customer_id, feature, action_name, unit, billable,
               CASE WHEN event_type = 'action' THEN (CASE WHEN parent_action_id IS NULL THEN 'action' ELSE 'nested_action' END)
                    WHEN event_type IN ('usage', 'outcome') THEN event_type
                    WHEN action_id IS NULL THEN 'call' ELSE 'call_in_action' END,
               COUNT(*), SUM(input_tokens), SUM(output_tokens), SUM(total_tokens), SUM(cost_usd IS NULL),
               group_concat(ifnull(cost_usd, '0'), ' '), group_concat(ifnull(credits, '0'), ' '),
               group_concat(ifnull(quantity, '0'), ' '), MIN(timestamp), MAX(timestamp)
        FROM events GROUP BY 1, 2, 3, 4, 5, 6, 7""").fetchall()
    return {r[:7]: (*r[7:12], *(sum((Decimal(v) for v in text.split()), Decimal(0)) for text in r[12:15]), *r[15:])
            for r in rows}


def rolled(conn):
    rows = conn.execute("""
        SELECT day, customer_id, feature, action_name, unit, billable, kind, events, input_tokens, output_tokens,
               tokens, unpriced, cost_small, credits_small, quantity_small, first, last FROM billing_daily""").fetchall()
    out = {}
    for r in rows:
        key = tuple(None if v == 0 and isinstance(v, int) and i in (1, 2, 3, 4) else v for i, v in enumerate(r[:7]))
        out[key] = (*r[7:12], Decimal(r[12]) / 10**12, Decimal(r[13]) / 10**6, Decimal(r[14]) / 10**6, *r[15:])
    return out


def value_counts(conn):
    """Charged events per distinct (customer, feature, action, unit, day, rated values), straight from the events."""
    charged = ("billable = 1 AND ((event_type NOT IN ('action', 'usage', 'outcome') AND action_id IS NULL) OR "
               "(event_type = 'action' AND parent_action_id IS NULL) OR event_type IN ('usage', 'outcome'))")
    return sorted(conn.execute(f"""
        SELECT substr(timestamp, 1, 10), ifnull(customer_id, 0), ifnull(feature, 0), ifnull(action_name, 0),
               ifnull(unit, 0), CASE WHEN event_type IN ('action', 'usage', 'outcome') THEN event_type ELSE 'call' END,
               COUNT(*) FROM events WHERE {charged}
        GROUP BY 1, 2, 3, 4, 5, 6, CASE WHEN event_type IN ('usage', 'outcome') THEN quantity
                                       ELSE input_tokens || ' ' || output_tokens || ' ' || ifnull(cost_usd, 'none') END
        """).fetchall(), key=repr)


def values_rolled(conn):
    return sorted(conn.execute("SELECT day, customer_id, feature, action_name, unit, kind, events "
                               "FROM billing_daily_values").fetchall(), key=repr)


def test_the_trigger_keeps_the_rollup_equal_to_a_group_by_over_the_events(db_path):
    database = Database(db_path)
    events = history()
    store(database, events[:150])
    store(database, events[150:])
    conn = database.connection()
    assert rolled(conn) == direct(conn) and len(direct(conn)) > 40
    assert values_rolled(conn) == value_counts(conn)
    assert max(r[-1] for r in values_rolled(conn)) > 1  # repeated values are counted, not stored twice
    database.close()


def test_a_duplicate_event_id_is_counted_once(db_path):
    database = Database(db_path)
    events = history(n=60)
    store(database, events)
    conn = database.connection()
    before = rolled(conn), values_rolled(conn)
    store(database, events[:30])  # INSERT OR IGNORE: nothing inserted, so the trigger does not fire
    sink = SQLiteSink(database)
    sink.write(events[30:40] + [events[0].model_copy(update={"input_tokens": 999})])  # the sink's own path: same ids again
    sink.flush()
    assert (rolled(conn), values_rolled(conn)) == before == (direct(conn), value_counts(conn))
    assert conn.execute("SELECT COUNT(*) FROM events").fetchone()[0] == 60
    sink.close()


def test_the_migration_backfills_an_existing_database(db_path):
    old = sqlite_utils.Database(db_path)
    migrations.apply(old, stop_before="m009_billing_rollup")
    assert "billing_daily" not in old.table_names()
    events = history(seed=11)
    # The columns the events table had before m009 (later migrations add fields: m010 server_address …).
    present = {column.name for column in old["events"].columns}
    kept = [i for i, name in enumerate(EVENT_COLUMNS) if name in present]
    old.conn.executemany(f"INSERT INTO events ({', '.join(EVENT_COLUMNS[i] for i in kept)}) "
                         f"VALUES ({', '.join('?' * len(kept))})",
                         [[event_to_row(e)[i] for i in kept] for e in events[:300]])
    old.conn.commit()
    old.conn.close()
    database = Database(db_path)  # opening it migrates: m009 fills the rollup from the 300 events
    conn = database.connection()
    assert rolled(conn) == direct(conn) and values_rolled(conn) == value_counts(conn)
    store(database, events[300:])  # and the trigger carries on from there
    assert rolled(conn) == direct(conn) and values_rolled(conn) == value_counts(conn)
    database.close()


def _bare(groups):
    return sorted((replace(g, first=None, last=None) for g in groups), key=repr)


@pytest.mark.parametrize("period", ["month", "part-days"])
def test_billing_reads_from_the_rollup_what_a_scan_of_the_events_gives(db_path, period):
    billing = Billing(db_path)
    events = history(seed=3)
    store(billing.database, events)
    mine = [e for e in events if e.customer_id == "cus_a"]
    billing.ledger.exclude("cus_a", [e.id for e in mine[:25]], reason="test", by="t", key="x1")
    billing.ledger.exclude("cus_a", [e.id for e in mine[20:30]], reason="again", by="t", key="x2")  # overlapping
    conn = billing.database.connection()
    start, end = (NOV, NOV.replace(month=12)) if period == "month" else (NOV + timedelta(hours=7),
                                                                         NOV + timedelta(days=20, hours=3))
    rerate = Rerate(rating_sql(RULES), rating_sql(RULES, rollup=True))
    cases = [(Scope(), {}), (Scope(customer_id="cus_a"), {"customer_id": "cus_a"}),
             (Scope(attributed=True), {"where": "customer_id IS NOT NULL"})]
    for scope, scan in cases:
        for by_day in (False, True):
            got = usage(conn, start, end, scope, by_day=by_day, rerate=rerate)
            want = group_usage(conn, start, end, by_day=by_day, rerate=(rerate.events, []), **scan)
            assert _bare(got) == _bare(want)
        assert (sorted(usage(conn, start, end, scope, adjusted=False), key=repr)  # first and last too
                == sorted(group_usage(conn, start, end, adjusted=False, **scan), key=repr))
    # The day totals a replay walks to find a hard limit: re-rated credits of billable, not excluded events.
    totals = day_totals(conn, start, end, Scope(attributed=True), "credits", custom=False, rerate=rerate)
    expected: dict[str, dict[str, Decimal]] = {}
    gone = {e.id for e in mine[:30]}
    for e in events:
        if e.customer_id and e.billable and e.id not in gone and start <= e.timestamp < end:
            day = expected.setdefault(e.customer_id, {})
            key = f"{e.timestamp:%Y-%m-%d}"
            day[key] = day.get(key, Decimal(0)) + _credits(e)
    assert {c: {d: v for d, v in days.items() if v} for c, days in totals.items()} == {
        c: {d: v for d, v in days.items() if v} for c, days in expected.items()}
    billing.close()


def _credits(e) -> Decimal:
    """The event's credits under RULES, as the meter charges them (by a plain loop, not SQL)."""
    rule = RULES.get(e.feature or "", RULES["*"])  # the feature's rule (docs: per call, no unit prices)
    if e.event_type in ("usage", "outcome"):
        price = rule.per_unit.get(e.unit) if rule.per_unit else None
        return rule._rounded(Decimal(price) * e.quantity) if price else Decimal(0)  # noqa: SLF001
    if (e.event_type == "action" and e.parent_action_id is None) or (e.event_type != "action" and e.action_id is None):
        return rule.credits(input_tokens=e.input_tokens, output_tokens=e.output_tokens, cost_usd=e.cost_usd) or Decimal(0)
    return Decimal(0)


def test_a_replay_from_the_rollup_re_rates_repeated_values_per_event(db_path):
    # 7 calls of the same cost: rounded up per event (7 x 0.02), never once on their sum (0.11 up to 0.11).
    billing = Billing(db_path)
    store(billing.database, [event(feature="chat", cost="0.00001", credits=1) for _ in range(7)])
    rule = {"*": CreditRule(credits_per_usd=1500, quantum="0.01", rounding="up")}
    plan = PricePlan("credits", charges=[Charge("credits", unit_price="1")])
    used = billing.replay("2026-11", plan, credit_rules=rule).results["credits"]["cus_1"].invoice.charge("credits").used
    assert used == 7 * rule["*"].credits(input_tokens=0, output_tokens=0, cost_usd=Decimal("0.00001")) == Decimal("0.14")
    billing.close()
