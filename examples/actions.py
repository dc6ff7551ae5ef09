"""Actions, custom usage and billable rules: bill the product's work, not its LLM calls.

Runs as is (simulated provider, no key, no network): python examples/actions.py
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from metricaos_sdk import BillableRules, Meter, QuotaExceeded
from metricaos_sdk.testing import SimulatedOpenAI


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        meter = Meter(Path(folder) / "actions-demo.db", billable=BillableRules(environments=("production", "staging")))
        client = meter.wrap(SimulatedOpenAI().client())           # production: meter.wrap(openai.OpenAI())
        meter.plans.define("starter", credits=200)
        meter.customers.assign("cus_acme", "starter")
        meter.credits.set("support", per_unit={"resolved_ticket": 25})

        @meter.action("summarize_document", credits=50, customer_id="cus_acme")
        def summarize(text: str) -> str:
            outline = client.chat.completions.create(model="gpt-4.1-mini", max_tokens=50,
                                                     messages=[{"role": "user", "content": f"Outline: {text}"}])
            for _ in range(2):  # two more calls, same action: still 50 credits
                client.chat.completions.create(model="gpt-4.1-mini", max_tokens=50,
                                               messages=[{"role": "user", "content": "Expand the outline"}])
            return outline.choices[0].message.content or ""

        summarize("the quarterly report")
        meter.record_outcome("resolved_ticket", idempotency_key="T-1001", customer_id="cus_acme", feature="support")
        meter.record_outcome("resolved_ticket", idempotency_key="T-1001", customer_id="cus_acme", feature="support")
        for _ in range(3):
            try:
                summarize("another report")
            except QuotaExceeded as exc:
                print("refused before any call:", exc.remaining, "credits left")

        action = next(e for e in meter.events() if e.event_type == "action")
        print(f"action {action.action_name}: {action.action_calls} calls, {action.credits} credits, "
              f"cost ${action.cost_usd}")
        print("used", meter.usage("cus_acme").used, "of 200 credits")  # 50 + 50 + 25 + 50 = 175
        meter.close()


if __name__ == "__main__":
    main()
