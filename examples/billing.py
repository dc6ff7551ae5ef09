"""Every pricing model the SDK bills, end to end, against the simulated provider (no key, no network).

    python examples/billing.py [DB_PATH]

Seven customers, one per model — token-based, credit-based, request-based, outcome-based, seat plus usage,
plan-based limits, hybrid — metered with ``Meter``, invoiced with ``Billing`` for the current month, then a
pricing experiment replays the month under two candidate plans. Each ``INVOICE`` line is checked by
``tests/test_billing_examples.py`` against numbers worked out from the recorded events.
"""

from __future__ import annotations

import sys
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

from metricaos_sdk import Billing, Charge, CreditPack, Meter, PricePlan, QuotaExceeded
from metricaos_sdk.testing import SimulatedOpenAI

ASK = {"model": "gpt-4.1-mini", "max_tokens": 40, "messages": [{"role": "user", "content": "Where is my order?"}]}


def main(db: Path) -> None:
    meter = Meter(db)
    client = meter.wrap(SimulatedOpenAI().client())
    now = datetime.now(timezone.utc)
    month = f"{now:%Y-%m}"
    start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)

    def ask(customer_id: str, feature: str, times: int) -> None:
        with meter.context(customer_id=customer_id, feature=feature):
            for _ in range(times):
                client.chat.completions.create(**ASK)

    # -- token-based: $4 per million tokens ------------------------------------------------------------
    ask("cus_tokens", "chat", 20)
    tokens = PricePlan("tokens", charges=[Charge("tokens", unit_price="0.000004")])

    # -- credit-based: every call priced in credits, bought in packs; $0.01 a credit beyond them ----------
    meter.credits.set("support_reply", credits_per_usd=1_000_000, margin="1.5", quantum="1")
    ask("cus_credits", "support_reply", 30)
    credits = PricePlan("credits", charges=[Charge("credits", unit_price="0.01")],
                        credit_packs=[CreditPack("1k", credits=1_000, price="8")])

    # -- request-based: 10 requests included, 5 cents each beyond ---------------------------------------
    ask("cus_requests", "search", 25)
    requests = PricePlan("requests", charges=[Charge("requests", included=10, unit_price="0.05")])

    # -- outcome-based: $0.50 per resolved ticket; a reopened ticket is reversed --------------------------
    tickets = [meter.record_outcome("resolved_ticket", idempotency_key=f"ticket-{i}", customer_id="cus_outcomes",
                                    feature="support") for i in range(8)]
    meter.record_outcome("resolved_ticket", idempotency_key="ticket-0", customer_id="cus_outcomes")  # counts once
    outcomes = PricePlan("outcomes", charges=[Charge("resolved_ticket", unit_price="0.50")])

    # -- seat plus usage: $20 a seat, 500 credits included per seat, 2 cents a credit beyond ------------
    meter.credits.set("draft_email", per_call=120)
    ask("cus_seats", "draft_email", 40)
    seats = PricePlan("seats", seat_price="20", charges=[Charge("credits", included_per_seat=500, unit_price="0.02")])

    # -- plan-based limits: 1,000 credits a month, refused beyond (the quota Plan), $29 flat -------------
    meter.plans.define("starter", credits=1_000)
    meter.customers.assign("cus_limited", "starter")
    meter.credits.set("summarize_document", per_call=50)
    refused = 0
    for _ in range(25):
        try:
            ask("cus_limited", "summarize_document", 1)
        except QuotaExceeded:
            refused += 1
    limited = PricePlan("starter", base_price="29", charges=[Charge("credits", included=1_000, limit=1_000)])

    # -- hybrid: $99 a month, 10,000 credits included, $10 per started 10,000 beyond --------------------
    for _ in range(250):
        with meter.action("summarize", credits=50, customer_id="cus_hybrid", feature="documents"):
            client.chat.completions.create(**ASK)
            client.chat.completions.create(**ASK)   # two calls, one action: 50 credits
    hybrid = PricePlan("hybrid", base_price="99", charges=[Charge("credits", included=10_000, block_price="10",
                                                                  block_size=10_000)])
    meter.flush()
    meter.close()

    billing = Billing(db)
    for customer, plan in [("cus_tokens", tokens), ("cus_credits", credits), ("cus_requests", requests),
                           ("cus_outcomes", outcomes), ("cus_limited", limited), ("cus_hybrid", hybrid)]:
        billing.subscribe(customer, plan, at=start)
    billing.subscribe("cus_seats", seats, seats=5, at=start)
    billing.subscribe("cus_seats", seats, seats=8, at=start + timedelta(days=10))   # prorated by the day
    billing.buy_pack("cus_credits", "1k", by="checkout", key="pay_001", applies_at=now)
    billing.ledger.reverse_outcome("cus_outcomes", tickets[2].id, reason="ticket reopened", by="support-bot",
                                   key="reopen-2")

    for model, customer in [("token-based", "cus_tokens"), ("credit-based", "cus_credits"),
                            ("request-based", "cus_requests"), ("outcome-based", "cus_outcomes"),
                            ("seat-plus-usage", "cus_seats"), ("plan-limits", "cus_limited"), ("hybrid", "cus_hybrid")]:
        invoice = billing.invoice(customer, month)
        print(invoice)
        if invoice.charges:
            print("  why:", invoice.explain())
        print(f"INVOICE {model} {customer} total={invoice.total} cost={invoice.cost_usd} seats={invoice.seats}")
    print(f"refused before sending: {refused}")

    # -- a pricing experiment: the same month under two candidate plans ---------------------------------
    candidates = [PricePlan("flat-49", base_price="49", charges=[Charge("credits", included=5_000, limit=5_000)]),
                  PricePlan("usage-only", charges=[Charge("credits", unit_price="0.012")])]
    replay = billing.replay(month, candidates, customers=["cus_credits", "cus_seats", "cus_hybrid"])
    print(replay)
    for plan, rows in replay.results.items():
        for customer, row in rows.items():
            print(f"REPLAY {plan} {customer} paid={row.paid} limit_hit={row.limit_hit_at is not None}")
    billing.close()


if __name__ == "__main__":
    if len(sys.argv) > 1:
        main(Path(sys.argv[1]))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            main(Path(tmp) / "metricaos.db")
