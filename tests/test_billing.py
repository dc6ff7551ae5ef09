"""Billing: price plans, seats, the ledger, the four stages, invoices and replays, on real SQLite files.

Every expected number is worked out by hand (or by a plain loop over the events) in the test itself.
"""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from decimal import Decimal

import pytest

from metricaos_sdk import ConfigurationError
from metricaos_sdk.billing import Billing, Charge, CreditPack, PricePlan, seat_days
from metricaos_sdk.billing.subscriptions import Subscription
from metricaos_sdk.quota.credits import CreditRule
from tests.billing_support import NOV, event, store

HYBRID = PricePlan("growth", base_price="99", charges=[Charge("credits", included=10_000, block_price="10",
                                                              block_size=10_000)],
                   credit_packs=[CreditPack("5k", credits=5_000, price="40")])


@pytest.fixture
def billing(db_path):
    b = Billing(db_path)
    yield b
    b.close()


def history(billing):
    """cus_1: 200 summaries at 50 credits, 250 support replies at 30, 5 test calls; cus_2: 5 replies."""
    return store(billing.database,
                 [event(feature="summarize", credits=50, cost="0.0012", tokens=(100, 50), at=NOV + timedelta(hours=i))
                  for i in range(200)]
                 + [event(feature="support", credits=30, cost="0.0007", tokens=(80, 20), at=NOV + timedelta(hours=i))
                    for i in range(250)]
                 + [event(feature="support", credits=0, cost="0.0007", billable=False, environment="test")
                    for _ in range(5)]
                 + [event(customer="cus_2", feature="support", credits=30, cost="0.0007") for _ in range(5)]
                 + [event(feature="support", credits=30, cost="0.0007", at=NOV - timedelta(seconds=1))])  # October


def test_hybrid_invoice_is_exact_and_its_lines_add_up(billing):
    history(billing)
    billing.subscribe("cus_1", HYBRID, at=NOV)
    inv = billing.invoice("cus_1", "2026-11")
    # 200 x 50 + 250 x 30 = 17,500 credits; 10,000 included; 7,500 over = 1 started block of 10,000 at $10.
    assert inv.charge("credits").used == 17_500
    assert inv.charge("credits").overage == 7_500
    assert [(line.kind, line.amount) for line in inv.lines if line.amount] == [("base", Decimal("99.00")),
                                                                               ("overage", Decimal("10.00"))]
    assert inv.total == Decimal("109.00") == sum(line.amount for line in inv.lines)
    assert inv.cost_usd == 200 * Decimal("0.0012") + 255 * Decimal("0.0007")  # the test calls cost too
    assert inv.margin == inv.total - inv.cost_usd
    assert billing.invoice("cus_1", "2026-11") == inv  # the same numbers when computed twice
    assert inv.explain("credits").startswith("17,500 credits: summarize 10,000, support 7,500.")
    assert sum(b.revenue for b in inv.by_feature.values()) == inv.total
    summaries = next(line for line in inv.lines if line.kind == "usage" and line.feature == "summarize")
    assert len(billing.events_of(summaries)) == 200 and summaries.quantity == 10_000


def test_the_four_stages_narrow_in_order(billing):
    history(billing)
    billing.subscribe("cus_1", HYBRID, at=NOV)
    s = billing.invoice("cus_1", "2026-11").stages
    assert (s.raw.events, s.metered.events, s.billable.events, s.invoiced.events) == (460, 455, 450, 450)
    assert s.raw.credits == 17_500 + 150 and s.metered.credits == s.billable.credits == 17_500


def test_grants_packs_credit_notes_refunds_and_exclusions_move_only_the_invoiced_stage(billing):
    events = history(billing)
    billing.subscribe("cus_1", HYBRID, at=NOV)
    before = billing.invoice("cus_1", "2026-11")
    day = NOV + timedelta(days=3)
    billing.ledger.grant("cus_1", 2_000, reason="outage on the 2nd", by="alice", key="g1", applies_at=day)
    billing.buy_pack("cus_1", "5k", by="billing-bot", key="pay_1", applies_at=day)
    billing.ledger.credit_note("cus_1", "12.50", reason="slow support", by="bob", key="cn1", applies_at=day)
    billing.ledger.refund("cus_1", "3", reason="double charge", by="bob", key="rf1", applies_at=day)
    billing.ledger.exclude("cus_1", [e.id for e in events[:100]], reason="summaries bug", by="carol", key="ex1")
    after = billing.invoice("cus_1", "2026-11")
    assert (after.stages.raw, after.stages.metered, after.stages.billable) == (
        before.stages.raw, before.stages.metered, before.stages.billable)
    # 17,500 - 100 x 50 = 12,500 invoiced; included 10,000 + 2,000 granted + 5,000 from the pack: no overage.
    assert after.stages.invoiced.credits == 12_500
    assert after.charge("credits").included == 17_000 and after.charge("credits").overage == 0
    assert [(line.kind, line.amount) for line in after.lines if line.amount] == [
        ("base", Decimal("99.00")), ("pack", Decimal("40.00")), ("credit_note", Decimal("-12.50")),
        ("refund", Decimal("-3.00"))]
    assert after.total == Decimal("123.50")
    assert len(billing.events_of(next(line for line in after.lines if line.feature == "summarize"))) == 100


def test_the_ledger_is_append_only_and_deduplicates_on_its_key(billing):
    events = history(billing)
    billing.ledger.exclude("cus_2", [events[-2].id], reason="test run", by="carol", key="ex-1")
    first = billing.ledger.credit_note("cus_1", "5", reason="late", by="bob", key="cn-42")
    again = billing.ledger.credit_note("cus_1", "5", reason="late", by="bob", key="cn-42")
    assert again == first and len(billing.ledger.entries("cus_1")) == 1 and len(billing.ledger.entries()) == 2
    with pytest.raises(ConfigurationError, match="already used, for a different adjustment"):
        billing.ledger.credit_note("cus_1", "6", reason="late", by="bob", key="cn-42")
    assert not {"update", "delete", "remove", "edit"} & {n for n in dir(billing.ledger) if not n.startswith("_")}
    conn = billing.database.connection()
    for sql in ("UPDATE billing_adjustments SET amount = '0'", "DELETE FROM billing_adjustments",
                "DELETE FROM billing_adjusted_events"):
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            conn.execute(sql)
    entry = billing.ledger.entries("cus_1")[0]
    assert (entry.actor, entry.reason, entry.amount, entry.unit) == ("bob", "late", Decimal(5), "USD")


def test_ledger_input_is_checked(billing):
    events = history(billing)
    with pytest.raises(ConfigurationError, match="reason"):
        billing.ledger.grant("cus_1", 5, reason="", by="a", key="k")
    with pytest.raises(ConfigurationError, match="never a float"):
        billing.ledger.credit_note("cus_1", 1.5, reason="r", by="a", key="k")
    with pytest.raises(ConfigurationError, match="belongs to customer 'cus_1'"):
        billing.ledger.exclude("cus_2", [events[0].id], reason="r", by="a", key="k")
    with pytest.raises(ConfigurationError, match="not an outcome"):
        billing.ledger.reverse_outcome("cus_1", events[0].id, reason="r", by="a", key="k")
    with pytest.raises(ConfigurationError, match="No event"):
        billing.ledger.exclude("cus_1", ["nope"], reason="r", by="a", key="k")
    assert billing.ledger.entries() == []


def test_outcome_pricing_and_a_reversal(billing):
    tickets = store(billing.database, [event(event_type="outcome", unit="resolved_ticket", quantity=1, feature="support",
                                             credits=None) for _ in range(12)])
    plan = PricePlan("outcomes", charges=[Charge("resolved_ticket", unit_price="0.50")])
    billing.subscribe("cus_1", plan, at=NOV)
    assert billing.invoice("cus_1", "2026-11").total == Decimal("6.00")
    billing.ledger.reverse_outcome("cus_1", tickets[3].id, reason="ticket reopened", by="support-bot", key="rv-1")
    inv = billing.invoice("cus_1", "2026-11")
    assert inv.total == Decimal("5.50") and inv.stages.billable.units == {"resolved_ticket": 12}
    assert inv.stages.invoiced.units == {"resolved_ticket": 11}


def test_seat_days_prorate_a_mid_month_change(billing):
    store(billing.database, [event(feature="f", credits=1)])
    plan = PricePlan("team", seat_price="20", charges=[Charge("credits", included_per_seat=1_000, unit_price="0.01")])
    billing.subscribe("cus_1", plan, seats=10, at=NOV)
    billing.subscribe("cus_1", plan, seats=20, at=NOV + timedelta(days=15, hours=9))
    inv = billing.invoice("cus_1", "2026-11")
    # Days 1-15 at 10 seats, day 16 (the change at 09:00) at 20, days 16-30 at 20: 150 + 300 = 450 seat-days.
    assert inv.seats == Decimal(15)
    assert inv.lines[0].amount == Decimal("300.00") and inv.charge("credits").included == 15_000


def test_seat_days_counts_the_most_seats_held_each_day():
    day = NOV + timedelta(days=1)
    timeline = [Subscription("c", NOV, "p", 3), Subscription("c", day + timedelta(hours=5), "p", 7),
                Subscription("c", day + timedelta(hours=6), "p", 2)]
    assert seat_days(timeline, NOV, NOV + timedelta(days=3)) == 3 + 7 + 2


def test_by_action_breakdown_answers_why_the_credits(billing):
    store(billing.database,
          [event(event_type="action", action_name="summarize", feature="docs", credits=50, cost="0.003",
                 action_id=f"a{i}") for i in range(160)]
          + [event(feature="docs", credits=0, cost="0.001", action_id=f"a{i}", action_name="summarize")
             for i in range(160) for _ in range(3)]
          + [event(event_type="action", action_name="workflow", feature="agents", credits=250, action_id=f"w{i}")
             for i in range(14)])
    plan = PricePlan("credits", charges=[Charge("credits", included=10_000, unit_price="0.001")])
    inv = billing.invoice("cus_1", "2026-11", plan=plan)
    assert inv.charge("credits").by_action == {"summarize": 8_000, "workflow": 3_500}
    assert "by action: summarize 8,000, workflow 3,500" in inv.explain()
    # AI cost counts the calls, not the action's own rollup of them.
    assert inv.by_action["summarize"].cost_usd == 480 * Decimal("0.001")
    assert inv.stages.billable.actions == 174 and inv.stages.billable.requests == 480
    assert inv.total == Decimal("1.50")  # 1,500 credits over at $0.001


def test_sums_stay_exact_beyond_the_fast_path(billing):
    costs = ["0.0000000000001234", "1E-15", "12345678.123456789012"]
    store(billing.database, [event(cost=c, credits="0.0000001") for c in costs])
    inv = billing.invoice("cus_1", "2026-11", plan=PricePlan("p"))
    assert inv.cost_usd == sum(Decimal(c) for c in costs)
    assert inv.stages.metered.credits == Decimal("0.0000003")


def test_replay_prices_history_again_and_finds_the_hard_limit(billing):
    calls = store(billing.database, [event(customer=f"cus_{i % 3}", feature="support", credits=100, cost="0.002",
                                           tokens=(900, 100), at=NOV + timedelta(hours=i)) for i in range(90)])
    capped = PricePlan("capped", base_price="10", charges=[Charge("credits", included=2_000, limit=2_500,
                                                                  unit_price="0.01")])
    per_token = PricePlan("tokens", charges=[Charge("tokens", unit_price="0.000002")])
    replay = billing.replay("2026-11", [capped, per_token])
    # 30 calls each: 3,000 credits, capped at 2,500: 500 over the 2,000 included at $0.01 = $5 + $10.
    assert {c: r.paid for c, r in replay.results["capped"].items()} == {f"cus_{i}": Decimal("15.00") for i in range(3)}
    first_refused = [e for e in calls if e.customer_id == "cus_0"][25]  # its 26th call passes 2,500
    assert replay.results["capped"]["cus_0"].limit_hit_at == first_refused.timestamp
    assert replay.results["capped"]["cus_0"].refused == 500
    # 30 calls x 1,000 tokens x $0.000002 = $0.06; AI cost 30 x $0.002.
    r = replay.results["tokens"]["cus_1"]
    assert (r.paid, r.cost_usd, r.margin, r.limit_hit_at) == (Decimal("0.06"), Decimal("0.06"), Decimal(0), None)


def test_replay_re_rates_credits_like_the_credit_rules_would(billing):
    events = store(billing.database, [event(feature=("summarize" if i % 2 else "chat"), credits=1,
                                            cost=f"0.00{i:02d}37", tokens=(10 * i, i)) for i in range(1, 40)])
    rules = {"summarize": CreditRule(per_call=40),
             "*": CreditRule(credits_per_usd=1000, margin="1.5", quantum="0.01")}
    plan = PricePlan("credits", charges=[Charge("credits", unit_price="1")])
    replay = billing.replay("2026-11", plan, credit_rules=rules)
    expected = sum(rules.get(e.feature, rules["*"]).credits(input_tokens=e.input_tokens, output_tokens=e.output_tokens,
                                                            cost_usd=e.cost_usd) for e in events)
    assert replay.results["credits"]["cus_1"].invoice.charge("credits").used == expected
    for rounding in ("down", "nearest"):
        rule = {"*": CreditRule(per_token="0.015", per_output_token="0.05", quantum="0.1", rounding=rounding)}
        got = billing.replay("2026-11", plan, credit_rules=rule).results["credits"]["cus_1"].invoice.charge("credits").used
        assert got == sum(rule["*"].credits(input_tokens=e.input_tokens, output_tokens=e.output_tokens, cost_usd=None)
                          for e in events)


@pytest.mark.parametrize(("make", "message"), [
    (lambda: PricePlan("p", base_price=9.99), "never a float"),
    (lambda: PricePlan("p", currency="dollars"), "3-letter ISO 4217"),
    (lambda: Charge("credits", block_price="10"), "no block_size"),
    (lambda: Charge("credits", unit_price="1", block_price="10", block_size=10), "both unit_price= and block_price="),
    (lambda: Charge("", included=1), "needs a meter"),
    (lambda: Charge("credits", included=-1), "zero or more"),
])
def test_bad_plans_are_one_clear_sentence(make, message):
    with pytest.raises(ConfigurationError, match=message):
        make()


def test_bad_periods_and_unknown_plans(billing):
    with pytest.raises(ConfigurationError, match="Unknown billing period"):
        billing.invoice("cus_1", "November")
    with pytest.raises(ConfigurationError, match="has no price plan"):
        billing.invoice("cus_1", "2026-11")
    with pytest.raises(ConfigurationError, match="No price plan named 'gold'"):
        billing.subscribe("cus_1", "gold")


def test_plans_round_trip_through_the_store(billing):
    billing.plans.define(HYBRID)
    assert billing.plans["growth"] == HYBRID and [p.name for p in billing.plans] == ["growth"]
    assert PricePlan.from_json(HYBRID.to_json()) == HYBRID


def test_the_invoice_command_prints_the_stored_plan_and_json(billing, db_path):
    import json

    from click.testing import CliRunner

    from metricaos_sdk.cli import cli

    history(billing)
    billing.subscribe("cus_1", HYBRID, at=NOV)
    runner = CliRunner()
    text = runner.invoke(cli, ["invoice", "--db", str(db_path), "--customer", "cus_1", "--period", "2026-11"])
    assert text.exit_code == 0, text.output
    assert "total: 109.00" in text.output and "why: 17,500 credits: summarize 10,000" in text.output
    data = json.loads(runner.invoke(cli, ["invoice", "--db", str(db_path), "--customer", "cus_1", "--period",
                                          "2026-11", "--json"]).output)
    assert data["total"] == "109.00" and data["stages"]["billable"]["credits"] == "17500"
    bad = runner.invoke(cli, ["invoice", "--db", str(db_path), "--customer", "cus_9", "--period", "2026-11"])
    assert bad.exit_code != 0 and "has no price plan" in bad.output


def test_m008_upgrades_a_database_and_keeps_its_events(db_path):
    import sqlite_utils

    from metricaos_sdk.storage.database import Database
    from metricaos_sdk.storage.migrations import migrations

    old = sqlite_utils.Database(db_path)
    migrations.apply(old, stop_before="m008_billing")
    assert "billing_adjustments" not in old.table_names()
    old.conn.close()
    database = Database(db_path)
    [kept] = store(database, [event(feature="f", credits=5)])
    with Billing(database) as billing:
        assert billing.invoice("cus_1", "2026-11", plan=PricePlan("p")).stages.metered.credits == 5
        assert billing.events_of(billing.invoice("cus_1", "2026-11", plan=PricePlan(
            "q", charges=[Charge("credits")])).lines[0]) == [kept.id]


def test_a_replay_under_several_plans_equals_each_invoice_computed_alone(billing):
    # Mixed history: features, actions with calls inside, custom units, calls not billable, an exclusion, grants.
    events = store(billing.database,
                   [event(customer=f"cus_{i % 4}", feature=("summarize", "support", None)[i % 3], credits=10 + i % 7,
                          cost=f"0.000{i % 9 + 1}", tokens=(100 + i, 20 + i % 5), billable=i % 11 != 0,
                          action_name="digest" if i % 5 == 0 else None, at=NOV + timedelta(hours=i))
                    for i in range(240)]
                   + [event(customer=f"cus_{i % 4}", event_type="outcome", unit="resolved_ticket", quantity=1,
                            credits=5, feature="support", at=NOV + timedelta(hours=i, minutes=30)) for i in range(40)]
                   + [event(customer=f"cus_{i % 4}", event_type="action", action_name="digest", credits=50,
                            cost="0.0021", feature="summarize", at=NOV + timedelta(hours=i, minutes=45))
                      for i in range(20)])
    billing.ledger.exclude("cus_1", [e.id for e in events[1:40:4]], reason="bug", by="carol", key="ex1")
    billing.ledger.grant("cus_2", 300, reason="outage", by="alice", key="g1", applies_at=NOV + timedelta(days=1))
    billing.ledger.credit_note("cus_3", "2.50", reason="slow", by="bob", key="cn1", applies_at=NOV + timedelta(days=1))
    plans = [
        HYBRID,
        PricePlan("capped", base_price="49", charges=[Charge("credits", included=200, limit=600, unit_price="0.01")]),
        PricePlan("per-feature", seat_price="5", charges=[
            Charge("tokens", feature="summarize", included=1_000, unit_price="0.0001"),
            Charge("resolved_ticket", unit_price="0.50"), Charge("credits", block_price="3", block_size=100)]),
        PricePlan("flat", base_price="20"),  # no metered charge: revenue allocated by AI cost
    ]
    for c in range(4):
        billing.subscribe(f"cus_{c}", HYBRID, seats=1 + c, at=NOV)
    replay = billing.replay("2026-11", plans)
    assert list(replay.results) == [p.name for p in plans]
    for plan in plans:
        assert list(replay.results[plan.name]) == [f"cus_{c}" for c in range(4)]
        alone = billing.replay("2026-11", plan).results[plan.name]
        for customer, result in replay.results[plan.name].items():
            invoice = billing.invoice(customer, "2026-11", plan=plan, raw=False)
            assert result.invoice == invoice
            assert (result.paid, result.cost_usd, result.margin) == (invoice.total, invoice.cost_usd, invoice.margin)
            assert alone[customer] == result  # the same under one plan as under several
    assert any(r.limit_hit_at for r in replay.results["capped"].values())
