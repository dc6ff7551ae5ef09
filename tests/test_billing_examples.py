"""examples/billing.py — one customer per pricing model — prints invoices whose numbers equal the ones worked
out here by hand from the events it recorded (read back from its SQLite file)."""

from __future__ import annotations

import calendar
import re
import sqlite3
import subprocess
import sys
from datetime import datetime, timezone
from decimal import ROUND_CEILING, ROUND_HALF_UP, Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CENT = Decimal("0.01")


def cents(value: Decimal) -> Decimal:
    return value.quantize(CENT, ROUND_HALF_UP)


def test_every_pricing_model_of_the_example_invoices_what_its_events_say(tmp_path):
    db = tmp_path / "billing.db"
    result = subprocess.run([sys.executable, str(ROOT / "examples" / "billing.py"), str(db)], capture_output=True,
                            text=True, timeout=120, check=False, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    printed = {m[0]: (m[1], Decimal(m[2]), Decimal(m[3]))
               for m in re.findall(r"^INVOICE (\S+) (\S+) total=(\S+) cost=(\S+) seats=\S+$", result.stdout, re.M)}
    conn = sqlite3.connect(db)
    rows = conn.execute("SELECT customer_id, event_type, total_tokens, credits, cost_usd, billable, id FROM events").fetchall()

    def calls(customer):
        return [r for r in rows if r[0] == customer and r[1] not in ("action", "usage", "outcome")]

    def credits(customer):
        return sum((Decimal(r[3]) for r in rows if r[0] == customer and r[3] is not None and r[5]), Decimal(0))

    def total(model):
        return printed[model][1]

    for model, (customer, _, cost) in printed.items():
        assert cost == sum((Decimal(r[4]) for r in calls(customer) if r[4] is not None), Decimal(0)), model

    assert total("token-based") == cents(sum(r[2] for r in calls("cus_tokens")) * Decimal("0.000004"))
    assert total("credit-based") == cents(max(Decimal(0), credits("cus_credits") - 1_000) * CENT) + 8
    assert total("request-based") == cents(max(0, len(calls("cus_requests")) - 10) * Decimal("0.05"))
    outcomes = [r for r in rows if r[0] == "cus_outcomes" and r[1] == "outcome"]
    assert len(outcomes) == 8  # recorded twice under one idempotency key: counted once
    assert total("outcome-based") == cents((len(outcomes) - 1) * Decimal("0.50"))  # one reopened

    now = datetime.now(timezone.utc)
    days = calendar.monthrange(now.year, now.month)[1]
    seat_days = 10 * 5 + (days - 10) * 8  # 5 seats for 10 days, then 8
    included = (Decimal(500) * seat_days / days).to_integral_value(ROUND_CEILING)
    assert total("seat-plus-usage") == (cents(Decimal(20) * seat_days / days)
                                        + cents(max(Decimal(0), credits("cus_seats") - included) * Decimal("0.02")))

    assert credits("cus_limited") == 1_000  # the quota plan refused what did not fit, before sending
    assert "refused before sending: 5" in result.stdout
    assert total("plan-limits") == Decimal("29.00")

    hybrid = credits("cus_hybrid")
    assert hybrid == 250 * 50  # 250 actions of two calls each: 50 credits per action, not per call
    blocks = (max(Decimal(0), hybrid - 10_000) / 10_000).to_integral_value(ROUND_CEILING)
    assert total("hybrid") == Decimal(99) + blocks * 10
    assert "by action: summarize 12,500" in result.stdout

    replay = dict(((m[0], m[1]), Decimal(m[2])) for m in re.findall(r"^REPLAY (\S+) (\S+) paid=(\S+)", result.stdout, re.M))
    assert replay[("usage-only", "cus_hybrid")] == cents(hybrid * Decimal("0.012"))
    assert replay[("flat-49", "cus_hybrid")] == Decimal("49.00")  # capped at 5,000 credits, which it hits
    assert re.search(r"^REPLAY flat-49 cus_hybrid paid=49.00 limit_hit=True$", result.stdout, re.M)
