"""Billing benchmarks: an invoice for one customer-month and a replay over a whole store.

    python benchmarks/billing.py [--events 1000000] [--customers 1000] [--repeat 3] [--action-calls 600]
                                 [--redis-url URL] [--json]

1. A store of ``--events`` events in one month (generated in SQLite: LLM calls with cost-based and per-call
   credits, outermost actions with calls inside them, custom usage and outcomes, some not billable), a price
   plan and a few ledger entries.
2. ``invoice``: one customer's month (its events read through the (customer_id, timestamp) index), with and
   without the store-wide raw stage (one scan of the month).
3. ``replay``: every customer's month priced under two candidate plans, one with a hard limit that some
   customers hit, then again with every event re-rated under candidate credit rules.
4. ``action``: per quota store (in-memory, SQLite, Redis at ``--redis-url``, default
   ``$METRICAOS_TEST_REDIS_URL``; skipped with the reason when unset), in one run of interleaved rounds (medians):
   (a) a metered call for a customer no quota limits, (b) a call for a customer with a plan — the quota check
   costs b − a — and (c) the first call inside ``meter.action(...)`` for that customer, the action's start and
   end included — the action adds c − b. The provider is ``metricaos_sdk.testing.SimulatedOpenAI``.
5. ``write``: the write-side cost of the billing rollup (m009's trigger): events per second committed by the
   SQLite sink (``write`` in batches of 100, then ``flush``) into a fresh file, with the trigger and with it
   dropped.

Timings are the best of ``--repeat`` runs on a warm file (the OS page cache holds it).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from metricaos_sdk.billing import Billing, Charge, PricePlan  # noqa: E402
from metricaos_sdk.quota.credits import CreditRule  # noqa: E402
from metricaos_sdk.storage.rows import EVENT_COLUMNS  # noqa: E402

NOV = datetime(2026, 11, 1, tzinfo=timezone.utc)
FEATURES = ("summarize_document", "support_reply", "workflow", "search", "export")


def generate(billing: Billing, events: int, customers: int) -> None:
    """``events`` rows spread over the month and ``customers`` customers, made by SQLite itself."""
    defaults = {c: "NULL" for c in EVENT_COLUMNS}
    defaults.update({
        "id": "printf('%08x-0000-7000-8000-%012x', n / 1000, n)", "schema_version": "1",
        "timestamp": "strftime('%Y-%m-%dT%H:%M:%f', 1793491200 + (n * 2591) % 2592000, 'unixepoch') || '+00:00'",
        "event_type": "CASE WHEN n % 50 = 0 THEN 'action' WHEN n % 97 = 0 THEN 'usage' WHEN n % 89 = 0 "
                      "THEN 'outcome' ELSE 'chat_completion' END",
        "customer_id": f"'cus_' || (n % {customers})", "feature": f"'{FEATURES[0]}'",
        "tags": "'{}'", "provider": "'openai'", "model": "'gpt-4.1-mini'", "endpoint": "'/chat/completions'",
        "input_tokens": "300 + n % 200", "output_tokens": "100 + n % 150", "cached_input_tokens": "0",
        "cache_write_tokens": "0", "cache_write_5m_tokens": "0", "cache_write_1h_tokens": "0",
        "reasoning_tokens": "0", "total_tokens": "400 + n % 200 + n % 150", "web_search_requests": "0",
        "usage_status": "'reported'", "cost_usd": "printf('%.7f', (300 + n % 200) * 0.0000004 + (100 + n % 150) * 0.0000016)",
        "price_status": "'priced'", "billable": "n % 23 <> 0", "status": "'ok'", "streamed": "0", "duration_ms": "1.0",
        "attempts": "1", "sdk_version": "'bench'",
        "credits": "CASE WHEN n % 23 = 0 THEN '0' WHEN n % 5 = 0 THEN '50' ELSE printf('%.2f', "
                   "((300 + n % 200) * 0.0000004 + (100 + n % 150) * 0.0000016) * 1500) END",
        "action_id": "CASE WHEN n % 50 = 0 THEN printf('act-%d', n) WHEN n % 50 < 3 THEN printf('act-%d', n - n % 50) END",
        "action_name": "CASE WHEN n % 50 < 3 THEN 'summarize' END",
        "unit": "CASE WHEN n % 97 = 0 THEN 'page' WHEN n % 89 = 0 THEN 'resolved_ticket' END",
        "quantity": "CASE WHEN n % 97 = 0 THEN '3' WHEN n % 89 = 0 THEN '1' END",
    })
    features = " ".join(f"WHEN {i} THEN '{f}'" for i, f in enumerate(FEATURES))
    defaults["feature"] = f"CASE (n / 7) % {len(FEATURES)} {features} END"
    columns = [c for c in EVENT_COLUMNS if c in defaults]
    with billing.database.transaction() as conn:
        conn.execute(f"""
            WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < {events})
            INSERT INTO events ({', '.join(columns)}) SELECT {', '.join(defaults[c] for c in columns)} FROM seq""")
    conn.execute("ANALYZE")


def best(fn, repeat: int) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def quota_meter(store: str, tmp: Path, redis_url: str | None):  # type: ignore[no-untyped-def]
    """A meter writing to its own SQLite file whose quotas live in ``store`` (in-memory, sqlite or redis)."""
    from uuid import uuid4

    from metricaos_sdk import InMemoryQuotaStore, Meter, RedisQuotaStore

    path = tmp / f"action-{store}-{uuid4().hex[:6]}.db"
    if store == "in-memory":
        return Meter(path, quota_store=InMemoryQuotaStore())
    if store == "redis":
        return Meter(path, quota_store=RedisQuotaStore.from_url(redis_url, prefix=f"bench-{uuid4().hex[:6]}:"))
    return Meter(path)  # the SQLite quota store in the meter's own file


def action_overhead(tmp: Path, calls: int, store: str, redis_url: str | None) -> dict[str, float]:
    """Per-call µs on one quota store of (a) a metered call for a customer no quota limits, (b) a call for a
    customer with a plan (the quota check: b − a) and (c) the first call inside ``meter.action(...)`` for that
    customer, the action's start and end included (what the action adds: c − b). Interleaved rounds of 10 calls
    per arm, each arm first in turn; per round the median of each arm; the figures are medians over the rounds."""
    from metricaos_sdk.testing import SimulatedOpenAI

    meter = quota_meter(store, tmp, redis_url)
    client = meter.wrap(SimulatedOpenAI().client())
    meter.plans.define("bench", credits=10**12)
    meter.customers.assign("cus_plan", "bench")
    meter.credits.set("*", per_call=1)
    body = {"model": "gpt-4.1-mini", "messages": [{"role": "user", "content": "Summarize this."}], "max_tokens": 20}

    def plain() -> float:
        with meter.context(customer_id="cus_free", feature="f"):
            t0 = time.perf_counter()
            client.chat.completions.create(**body)
            return time.perf_counter() - t0

    def with_plan() -> float:
        with meter.context(customer_id="cus_plan", feature="f"):
            t0 = time.perf_counter()
            client.chat.completions.create(**body)
            return time.perf_counter() - t0

    def in_action() -> float:
        with meter.context(customer_id="cus_plan", feature="f"):
            t0 = time.perf_counter()
            with meter.action("summarize", credits=1):
                client.chat.completions.create(**body)
            return time.perf_counter() - t0

    arms = {"plain": plain, "plan": with_plan, "action": in_action}
    for _ in range(30):
        for arm in arms.values():
            arm()
    rounds: dict[str, list[float]] = {name: [] for name in arms}
    names = list(arms)
    for round_ in range(max(1, calls // 10)):
        for name in names[round_ % 3:] + names[:round_ % 3]:  # each arm first in turn
            rounds[name].append(statistics.median(arms[name]() for _ in range(10)))
    meter.close()
    a, b, c = (statistics.median(rounds[name]) * 1e6 for name in names)
    quota = [(p - q) * 1e6 for p, q in zip(rounds["plan"], rounds["plain"], strict=True)]
    action = [(p - q) * 1e6 for p, q in zip(rounds["action"], rounds["plan"], strict=True)]
    return {"plain_call_us": a, "plan_call_us": b, "call_in_action_us": c,
            "quota_check_us": statistics.median(quota), "action_adds_us": statistics.median(action)}


def action_stores(tmp: Path, calls: int, redis_url: str | None) -> dict[str, dict[str, float] | str]:
    """:func:`action_overhead` per quota store; a store that cannot be measured gives the reason instead."""
    out: dict[str, dict[str, float] | str] = {}
    for store in ("in-memory", "sqlite", "redis"):
        if store == "redis" and not redis_url:
            out[store] = "skipped: METRICAOS_TEST_REDIS_URL is not set (eval \"$(bash scripts/redis-server.sh)\")"
            continue
        try:
            out[store] = action_overhead(tmp, calls, store, redis_url)
        except Exception as exc:  # a Redis server that is down: say so, measure the others
            out[store] = f"skipped: {type(exc).__name__}: {exc}"
    return out


def write_rate(tmp: Path, events: int, *, trigger: bool) -> float:
    """Events per second the SQLite sink commits (written in batches of 100, timed to the end of ``flush``)."""
    from decimal import Decimal
    from uuid import uuid4

    from metricaos_sdk import SQLiteSink, UsageEvent

    path = tmp / f"write-{uuid4()}.db"
    sink = SQLiteSink(path)
    if not trigger:
        with sink.database.transaction() as conn:
            conn.execute("DROP TRIGGER events_billing_rollup")
    batch = [UsageEvent(id=str(uuid4()), timestamp=NOV.replace(day=1 + i % 28, hour=i % 24), event_type="chat_completion",
                        customer_id=f"cus_{i % 1000}", feature=FEATURES[i % len(FEATURES)], provider="openai",
                        model="gpt-4.1-mini", endpoint="/chat/completions", input_tokens=300 + i % 200,
                        output_tokens=100 + i % 150, total_tokens=400 + i % 200 + i % 150, billable=True,
                        credits=Decimal(50), cost_usd=Decimal("0.0004") + Decimal(i % 200) / 10**7,
                        price_status="priced") for i in range(events)]
    t0 = time.perf_counter()
    for at in range(0, events, 100):
        sink.write(batch[at:at + 100])
    sink.flush(timeout=600)
    elapsed = time.perf_counter() - t0
    sink.close()
    return events / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--customers", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--action-calls", type=int, default=600, help="calls per arm and quota store")
    parser.add_argument("--redis-url", default=os.environ.get("METRICAOS_TEST_REDIS_URL"))
    parser.add_argument("--write-events", type=int, default=50_000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    out: dict[str, object] = {"events": args.events, "customers": args.customers}
    with tempfile.TemporaryDirectory() as tmp:
        billing = Billing(Path(tmp) / "billing.db")
        t0 = time.perf_counter()
        generate(billing, args.events, args.customers)
        out["generate_s"] = time.perf_counter() - t0
        hybrid = PricePlan("hybrid", base_price="99", charges=[
            Charge("credits", included=10_000, block_price="10", block_size=10_000),
            Charge("resolved_ticket", unit_price="0.50")])
        capped = PricePlan("capped", base_price="49", charges=[Charge("credits", included=5_000, limit=12_000,
                                                                      unit_price="0.002")])
        for c in range(args.customers):
            billing.subscribe(f"cus_{c}", hybrid, seats=1 + c % 4, at=NOV)
        billing.ledger.grant("cus_1", 1000, reason="outage credit", by="bench", key="g1", applies_at=NOV)
        billing.ledger.credit_note("cus_1", "5", reason="goodwill", by="bench", key="c1", applies_at=NOV)
        invoice = billing.invoice("cus_1", "2026-11")
        out["customer_events"] = invoice.stages.metered.events
        out["invoice_total"] = str(invoice.total)
        out["invoice_s"] = best(lambda: billing.invoice("cus_1", "2026-11", raw=False), args.repeat)
        out["invoice_with_raw_s"] = best(lambda: billing.invoice("cus_1", "2026-11"), args.repeat)
        out["replay_2_plans_s"] = best(lambda: billing.replay("2026-11", [hybrid, capped]), args.repeat)
        rules = {"summarize_document": CreditRule(per_call=40),
                 "*": CreditRule(credits_per_usd=1000, margin="1.5", quantum="0.01", per_unit={"page": 2})}
        out["replay_2_plans_rerated_s"] = best(lambda: billing.replay("2026-11", [hybrid, capped], credit_rules=rules),
                                               args.repeat)
        replay = billing.replay("2026-11", [hybrid, capped])
        out["customers_hitting_limit"] = sum(1 for r in replay.results["capped"].values() if r.limit_hit_at)
        billing.close()
        out["action"] = action_stores(Path(tmp), args.action_calls, args.redis_url)
        rates = {trigger: max(write_rate(Path(tmp), args.write_events, trigger=trigger) for _ in range(args.repeat))
                 for trigger in (False, True)}
        out["write_events_per_s_without_rollup"], out["write_events_per_s_with_rollup"] = rates[False], rates[True]
    if args.json:
        print(json.dumps(out))
        return
    print(f"{args.events:,} events, {args.customers:,} customers (generated in {out['generate_s']:.1f} s)")
    print(f"invoice, one customer-month ({out['customer_events']:,} events): {out['invoice_s'] * 1000:.1f} ms; "
          f"with the store-wide raw stage: {out['invoice_with_raw_s'] * 1000:.0f} ms  (total {out['invoice_total']})")
    print(f"replay, every customer under 2 plans: {out['replay_2_plans_s'] * 1000:.0f} ms; re-rated under candidate "
          f"credit rules: {out['replay_2_plans_rerated_s'] * 1000:.0f} ms "
          f"({out['customers_hitting_limit']} customers hit the capped plan's limit)")
    stores = out["action"]
    assert isinstance(stores, dict)
    print("action, per quota store (median µs per call: a no quota, b a customer with a plan, c the first call "
          "inside meter.action() for them, its start and end included):")
    for store, figures in stores.items():
        if isinstance(figures, str):
            print(f"  {store}: {figures}")
            continue
        print(f"  {store}: a {figures['plain_call_us']:.0f}, b {figures['plan_call_us']:.0f}, "
              f"c {figures['call_in_action_us']:.0f}; quota check b − a {figures['quota_check_us']:+.0f}, "
              f"action adds c − b {figures['action_adds_us']:+.0f}")
    print(f"write: the SQLite sink commits {out['write_events_per_s_with_rollup']:,.0f} events/s with the billing rollup "
          f"trigger, {out['write_events_per_s_without_rollup']:,.0f} without it")


if __name__ == "__main__":
    main()
