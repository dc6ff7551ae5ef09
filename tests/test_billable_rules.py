"""Billable rules (issue 13): each case decides ``billable`` and records the rule that decided it."""

from __future__ import annotations

import pytest

from metricaos_sdk import BillableRules, ConfigurationError, Meter
from metricaos_sdk.testing import SimulatedOpenAI

ASK = {"model": "gpt-4.1-mini", "messages": [{"role": "user", "content": "hello there"}], "max_tokens": 10}


def metered(db_path, rules, simulator=None):
    meter = Meter(db_path, billable=rules)
    meter.plans.define("paid", credits=1000)
    meter.plans.define("free_trial", credits=100)
    meter.credits.set("*", per_call=1)
    return meter, meter.wrap((simulator or SimulatedOpenAI()).client(max_retries=1))


def last(meter):
    return meter.events()[-1]


RULES = BillableRules(environments=("production", "staging"), failed=False, retries=False, cached=False,
                      plans={"free_trial": False}, event_types={"embedding": False, "moderation": False},
                      features={"health_check": False, "summarize": True}, background=False, tool_steps=False,
                      tags={"billing": {"internal": False}})


@pytest.mark.parametrize(("context", "billable", "rule"), [
    ({}, True, None),
    ({"environment": "staging"}, True, None),
    ({"environment": "internal"}, False, "environment internal"),
    ({"environment": "test"}, False, "environment test"),
    ({"environment": "admin"}, False, "environment admin"),
    ({"environment": "demo"}, False, "environment demo"),
    ({"feature": "health_check"}, False, "feature health_check"),
    ({"feature": "summarize"}, True, "feature summarize"),
    ({"tags": {"background": "true"}}, False, "tag background=true"),
    ({"tags": {"step": "tool"}}, False, "tag step=tool"),
    ({"tags": {"step": "agent"}}, False, "tag step=agent"),
    ({"tags": {"cache": "hit"}}, False, "tag cache=hit"),
    ({"tags": {"billing": "internal"}}, False, "tag billing=internal"),
])
def test_rules_known_before_the_call(db_path, context, billable, rule):
    meter, client = metered(db_path, RULES)
    meter.customers.assign("cus_1", "paid")
    with meter.context(customer_id="cus_1", **context):
        client.chat.completions.create(**ASK)
    event = last(meter)
    assert (event.billable, event.billable_rule) == (billable, rule)
    assert meter.usage("cus_1").used == (1 if billable else 0)  # not billable: draws nothing
    meter.close()


def test_failed_calls(db_path):
    simulator = SimulatedOpenAI()
    meter, client = metered(db_path, BillableRules(failed=True), simulator)
    simulator.fail_next(2, 500)
    with meter.context(customer_id="cus_1"), pytest.raises(Exception, match="simulated failure"):
        client.chat.completions.create(**ASK)
    assert (last(meter).billable, last(meter).billable_rule) == (True, "failed calls billable")
    meter.close()
    meter, client = metered(db_path, BillableRules(failed=None), simulator)
    simulator.fail_next(2, 500)
    with pytest.raises(Exception, match="simulated failure"):
        client.chat.completions.create(**ASK)
    assert (last(meter).billable, last(meter).billable_rule) == (False, None)  # the built-in rule
    meter.close()


def test_retries(db_path):
    simulator = SimulatedOpenAI()
    meter, client = metered(db_path, RULES, simulator)
    simulator.fail_next(1, 500)
    client.chat.completions.create(**ASK)
    event = last(meter)
    assert event.attempts == 2 and (event.billable, event.billable_rule) == (False, "retried")
    meter.close()


def test_cached_responses(db_path):
    meter, client = metered(db_path, RULES, SimulatedOpenAI(cached_tokens=10_000))
    client.chat.completions.create(**ASK)
    assert (last(meter).billable, last(meter).billable_rule) == (False, "cached input")
    meter.close()


def test_embeddings_and_event_types(db_path):
    meter, client = metered(db_path, RULES)
    client.embeddings.create(model="text-embedding-3-small", input="hello")
    assert (last(meter).billable, last(meter).billable_rule) == (False, "event_type embedding")
    meter.close()


def test_moderation_as_custom_usage_and_free_trial_plans(db_path):
    rules = BillableRules(plans={"free_trial": False}, event_types={"outcome": False})
    meter, client = metered(db_path, rules)
    meter.customers.assign("cus_trial", "free_trial")
    with meter.context(customer_id="cus_trial"):
        client.chat.completions.create(**ASK)
    event = last(meter)
    assert (event.billable, event.billable_rule) == (False, "plan free_trial")
    assert meter.usage("cus_trial").used == 1  # not billed, still limited by the trial's allowance
    outcome = meter.record_outcome("resolved_ticket", idempotency_key="t1", customer_id="cus_trial")
    assert (outcome.billable, outcome.billable_rule) == (False, "event_type outcome")
    meter.close()


def test_defaults_keep_the_old_behaviour(db_path):
    meter, client = metered(db_path, None)
    with meter.context(environment="test"):
        client.chat.completions.create(**ASK)
    client.chat.completions.create(**ASK)
    assert [(e.billable, e.billable_rule) for e in meter.events()] == [(False, "environment test"), (True, None)]
    assert meter.billable.environments == frozenset({"production"})
    meter.close()


def test_bad_rules_are_one_clear_sentence():
    with pytest.raises(ConfigurationError, match="maps names to True"):
        BillableRules(features={"x": "no"})
    with pytest.raises(ConfigurationError, match="lists the billable environments"):
        BillableRules(environments=(1,))
    with pytest.raises(ConfigurationError, match="takes a BillableRules"):
        Meter(billable={"failed": False})
