"""Plans, credits and quotas end to end, against the SDK's simulated provider (no key, no network).

    python examples/quotas.py

Two plans, per-feature credit prices, a top-up, 32 threads racing for one customer's last credits, and
the usage page's numbers. In production, wrap ``openai.OpenAI()`` instead of the simulator's client.
"""

from __future__ import annotations

import tempfile
import threading
from pathlib import Path

from metricaos_sdk import Meter, QuotaExceeded
from metricaos_sdk.testing import SimulatedOpenAI

with tempfile.TemporaryDirectory() as tmp:
    meter = Meter(Path(tmp) / "metricaos.db")
    client = meter.wrap(SimulatedOpenAI().client())

    meter.plans.define("starter", credits=2_000, features={"summarize_document": 1_000})
    meter.plans.define("pro", credits=20_000, on_limit="overage", overage_price_usd="0.002")
    meter.credits.set("summarize_document", per_call=50)
    meter.credits.set("*", credits_per_usd=1_000, margin="1.5", quantum="0.01")

    @meter.plans.on_alert
    def warn(alert):
        print("ALERT:", alert.message)

    meter.customers.assign("acme", "starter")
    meter.customers.grant("acme", 300, kind="topup", grant_id="invoice-42")

    admitted, refused = [], []

    def summarize():
        with meter.context(customer_id="acme", user_id="u1", feature="summarize_document"):
            for _ in range(4):
                try:
                    client.chat.completions.create(model="gpt-4.1-mini", max_tokens=300,
                                                   messages=[{"role": "user", "content": "Summarize: ..."}])
                    admitted.append(1)
                except QuotaExceeded as exc:
                    refused.append(exc)

    threads = [threading.Thread(target=summarize) for _ in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # The feature may use 1,000 credits a month: exactly 20 calls of 50, however the 32 threads raced.
    print(f"{len(admitted)} admitted, {len(refused)} refused; first refusal: {refused[0]}")

    with meter.context(customer_id="acme", user_id="u2", feature="chat"):
        client.chat.completions.create(model="gpt-4.1-mini", messages=[{"role": "user", "content": "Hello"}])

    summary = meter.usage("acme")
    print(summary)
    print(f"allowance {summary.allowance}, used {summary.used}, remaining {summary.remaining}, "
          f"projected {summary.projected}, by user {sorted(summary.by_user)}")
    meter.close()
