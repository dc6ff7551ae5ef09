"""Actions reach billing engines without their cost counted twice.

An action's event carries the sum of its calls' ``cost_usd`` (and the credits it charged); its calls are delivered
too, each with its own cost and 0 credits. A meter that sums cost over everything delivered must see each call's
cost once, and a credits meter the action's credits once."""

from __future__ import annotations

from decimal import Decimal

from metricaos_sdk import Meter
from metricaos_sdk.delivery.lago import properties
from metricaos_sdk.delivery.openmeter import encode_cloudevents
from metricaos_sdk.delivery.otel import OpenTelemetry
from metricaos_sdk.delivery.stripe import dimension_value
from metricaos_sdk.testing import SimulatedOpenAI

ASK = {"model": "gpt-4.1-mini", "messages": [{"role": "user", "content": "Summarize this"}], "max_tokens": 20}


def recorded(db_path):
    meter = Meter(db_path)
    meter.credits.set("*", credits_per_usd=1000, quantum="0.001")
    client = meter.wrap(SimulatedOpenAI().client())
    with meter.action("summarize_document", credits=50, customer_id="cus_1"):
        for _ in range(3):
            client.chat.completions.create(**ASK)
    with meter.context(customer_id="cus_1"):
        client.chat.completions.create(**ASK)  # a call of its own, outside any action
    meter.flush()
    events = list(meter.events())
    meter.close()
    return events


def test_each_call_s_cost_is_sent_once_and_the_action_s_credits_once(db_path):
    events = recorded(db_path)
    calls = [e for e in events if e.event_type == "chat_completion"]
    [action] = [e for e in events if e.event_type == "action"]
    cost = sum(c.cost_usd for c in calls)
    assert action.cost_usd == sum(c.cost_usd for c in calls if c.action_id == action.id) > 0  # the event keeps it
    credits = sum(e.credits for e in events)  # the action's 50 and the lone call's own

    data = [ce["data"] for ce in encode_cloudevents(events)]
    assert sum(d.get("cost_usd_micros", 0) for d in data) == sum(round(c.cost_usd * 10**6) for c in calls)
    assert sum(d.get("credits_micros", 0) for d in data) == credits * 10**6

    stripe_cost = [dimension_value(e, "cost_usd") for e in events]
    assert sum(v for v in stripe_cost if v) == sum(round(c.cost_usd * 10**6) for c in calls)
    assert sum(dimension_value(e, "credits", credit_scale=3) or 0 for e in events) == credits * 1000

    lago = [properties(e, ("cost_usd", "cost_usd_micros", "credits")) for e in events]
    assert sum(Decimal(p.get("cost_usd", "0")) for p in lago) == cost
    assert sum(Decimal(p.get("credits", "0")) for p in lago) == credits


def test_the_genai_metrics_record_model_calls_only(db_path):
    events = recorded(db_path)
    destination = OpenTelemetry("http://127.0.0.1:9/v1/metrics")  # never exported here
    try:
        skipped = {e.event_type for e in events if destination.accepts(e) is not None}
        taken = {e.event_type for e in events if destination.accepts(e) is None}
    finally:
        destination.close()
    assert skipped == {"action"} and taken == {"chat_completion"}
