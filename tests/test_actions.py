"""Actions (issue 13): billed once for all their calls, reserved before they start, settled when they end.

Real SQLite files and the real openai / anthropic clients against the SDK's simulated providers."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from decimal import Decimal

import pytest

from metricaos_sdk import ConfigurationError, CreditRule, Meter, QuotaExceeded
from metricaos_sdk.testing import SimulatedAnthropic, SimulatedOpenAI
from tests.anthropic_models import current_claude

ASK = {"model": "gpt-4.1-mini", "messages": [{"role": "user", "content": "Summarize this"}], "max_tokens": 20}


@pytest.fixture
def setup(db_path):
    meter = Meter(db_path)
    meter.plans.define("starter", credits=120)
    meter.customers.assign("cus_1", "starter")
    meter.credits.set("*", credits_per_usd=1000, quantum="0.001")  # what a call would cost on its own
    yield meter, meter.wrap(SimulatedOpenAI().client())
    meter.close()


def by_type(meter, kind):
    return [e for e in meter.events() if e.event_type == kind]


def test_three_calls_cost_the_action_once(setup):
    meter, client = setup
    with meter.action("summarize_document", credits=50, customer_id="cus_1") as run:
        for _ in range(3):
            client.chat.completions.create(**ASK)
    [action] = by_type(meter, "action")
    calls = by_type(meter, "chat_completion")
    assert action.id == run.id == action.action_id and action.action_name == "summarize_document"
    assert action.credits == 50 and action.action_calls == 3 and action.status == "ok" and action.billable
    assert action.cost_usd == sum(c.cost_usd for c in calls) > 0
    assert action.total_tokens == 0 and action.provider == "metricaos" and action.feature == "summarize_document"
    assert [c.credits for c in calls] == [0, 0, 0] and {c.action_id for c in calls} == {run.id}
    assert {c.credit_rule for c in calls} == {"charged by action summarize_document"}
    assert meter.usage("cus_1").used == 50  # not 150
    assert meter.quota_store.open_reservations() == 0


def test_refused_before_the_first_call_when_it_does_not_fit(setup):
    meter, client = setup
    sim_calls = []
    for _ in range(2):
        with meter.action("summarize_document", credits=50, customer_id="cus_1"):
            client.chat.completions.create(**ASK)
    with pytest.raises(QuotaExceeded) as refused:
        with meter.action("summarize_document", credits=50, customer_id="cus_1"):
            sim_calls.append("ran")  # never: refused on entry
    assert sim_calls == [] and (refused.value.limit, refused.value.used, refused.value.requested) == (120, 100, 50)
    assert len(by_type(meter, "action")) == 2 and len(by_type(meter, "chat_completion")) == 2
    assert meter.quota_store.open_reservations() == 0


def test_concurrent_actions_hold_their_credits_while_running(setup):
    meter, _ = setup
    def another_request():  # a new context: not nested in "a", a concurrent action of the same customer
        with meter.action("b", credits=50, customer_id="cus_1"):
            pass

    with meter.action("a", credits=100, customer_id="cus_1"):
        assert meter.usage("cus_1").reserved == 100
        with pytest.raises(QuotaExceeded):
            contextvars.Context().run(another_request)
    assert meter.usage("cus_1").used == 100


@pytest.mark.parametrize(("on_failure", "credits"), [("free", 0), ("charge", 50), ("at_cost", None)])
def test_failure_rules(setup, on_failure, credits):
    meter, client = setup
    with pytest.raises(RuntimeError):
        with meter.action("summarize_document", credits=50, customer_id="cus_1", on_failure=on_failure):
            client.chat.completions.create(**ASK)
            client.chat.completions.create(**ASK)
            raise RuntimeError("the product failed")
    [action] = by_type(meter, "action")
    calls = by_type(meter, "chat_completion")
    assert action.status == "error" and action.error_type == "RuntimeError"
    rule = meter.credits.get("*")[0]  # what each call would have paid on its own
    at_cost = sum((rule.credits(input_tokens=0, output_tokens=0, cost_usd=c.cost_usd) for c in calls), Decimal(0))
    expected = at_cost if credits is None else credits
    assert action.credits == expected and meter.usage("cus_1").used == expected
    assert action.billable == (on_failure != "free")
    assert action.billable_rule == ("on_failure free" if on_failure == "free" else None)
    assert meter.quota_store.open_reservations() == 0


def test_fail_marks_the_action_failed_without_raising(setup):
    meter, client = setup
    with meter.action("summarize_document", credits=50, customer_id="cus_1") as run:
        client.chat.completions.create(**ASK)
        run.fail("empty_document")
    [action] = by_type(meter, "action")
    assert (action.status, action.error_type, action.credits) == ("error", "empty_document", 0)


def test_nested_actions_the_outermost_charges(setup):
    meter, client = setup
    with meter.action("workflow", credits=80, customer_id="cus_1") as outer:
        client.chat.completions.create(**ASK)
        with meter.action("summarize_document", credits=50) as inner:
            client.chat.completions.create(**ASK)
            client.chat.completions.create(**ASK)
    actions = {e.action_name: e for e in by_type(meter, "action")}
    assert actions["workflow"].credits == 80 and actions["workflow"].action_calls == 3
    assert actions["summarize_document"].credits == 0 and actions["summarize_document"].action_calls == 2
    assert actions["summarize_document"].parent_action_id == outer.id
    assert actions["summarize_document"].credit_rule == "charged by action workflow"
    calls = by_type(meter, "chat_completion")
    assert [c.action_id for c in calls] == [outer.id, inner.id, inner.id]
    assert [c.parent_action_id for c in calls] == [None, outer.id, outer.id]
    assert actions["workflow"].cost_usd == sum(c.cost_usd for c in calls)
    assert meter.usage("cus_1").used == 80


def test_an_inner_priced_action_charges_when_the_outer_has_no_price(db_path):
    with Meter(db_path) as meter:
        client = meter.wrap(SimulatedOpenAI().client())
        with meter.action("session", customer_id="cus_1"):  # no price, no rule: groups, charges nothing
            with meter.action("summarize_document", credits=50):
                client.chat.completions.create(**ASK)
        actions = {e.action_name: e for e in by_type(meter, "action")}
        assert actions["session"].credits is None and actions["summarize_document"].credits == 50


def test_the_credit_rule_of_the_action_name_prices_it(db_path):
    with Meter(db_path) as meter:
        meter.credits.set("summarize_document", per_call=50)  # per action, inside one
        client = meter.wrap(SimulatedOpenAI().client())
        with meter.action("summarize_document", customer_id="cus_1"):
            client.chat.completions.create(**ASK)
            client.chat.completions.create(**ASK)
        [action] = by_type(meter, "action")
        assert action.credits == 50 and action.credit_rule == "action summarize_document: 50 per action"


def test_a_cost_rule_prices_the_sum_of_its_calls(db_path):
    with Meter(db_path) as meter:
        client = meter.wrap(SimulatedAnthropic().client())
        rule = CreditRule(credits_per_usd=1000, margin=2, quantum="0.01")
        with meter.action("agent", credits=rule, customer_id="cus_1", reserve=10):
            for _ in range(2):
                client.messages.create(model=current_claude(), max_tokens=20,
                                       messages=[{"role": "user", "content": "hi"}])
        [action] = by_type(meter, "action")
        assert action.credits == rule.credits(input_tokens=0, output_tokens=0, cost_usd=action.cost_usd)
        assert action.credits > 0 and action.action_calls == 2


def test_threads_and_tasks_carry_the_action(setup):
    meter, client = setup
    async_client = meter.wrap(SimulatedOpenAI().async_client())

    async def two_tasks():
        await asyncio.gather(*(async_client.chat.completions.create(**ASK) for _ in range(2)))

    with meter.action("fan_out", credits=50, customer_id="cus_1") as run:
        threads = [threading.Thread(target=contextvars.copy_context().run,
                                    args=(client.chat.completions.create,), kwargs=ASK) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        asyncio.run(two_tasks())
    [action] = by_type(meter, "action")
    calls = by_type(meter, "chat_completion")
    assert action.action_calls == 5 and {c.action_id for c in calls} == {run.id} and len(calls) == 5
    assert {c.customer_id for c in calls} == {"cus_1"} and meter.usage("cus_1").used == 50


def test_decorators_sync_and_async(setup):
    meter, client = setup
    async_client = meter.wrap(SimulatedOpenAI().async_client())

    @meter.action("summarize_document", credits=20, customer_id="cus_1")
    def summarize():
        client.chat.completions.create(**ASK)
        return "done"

    @meter.action("summarize_async", credits=30, customer_id="cus_1")
    async def summarize_async():
        await async_client.chat.completions.create(**ASK)
        return "done async"

    assert summarize() == "done"
    assert asyncio.run(summarize_async()) == "done async"
    assert sorted(e.credits for e in by_type(meter, "action")) == [20, 30]
    assert meter.usage("cus_1").used == 50 and meter.quota_store.open_reservations() == 0


def test_async_with_cancelled_mid_way_releases(setup):
    meter, _ = setup
    started = asyncio.Event

    async def main():
        ready = started()

        async def work():
            async with meter.action("long", credits=50, customer_id="cus_1"):
                ready.set()
                await asyncio.sleep(3600)

        task = asyncio.create_task(work())
        await ready.wait()
        assert meter.quota_store.open_reservations() == 1
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    [action] = by_type(meter, "action")
    assert action.status == "cancelled" and action.credits == 0 and not action.billable
    assert meter.quota_store.open_reservations() == 0 and meter.usage("cus_1").used == 0


def test_bad_arguments_are_one_clear_sentence(meter):
    with pytest.raises(ConfigurationError, match=r"on_failure='later'\) is not a rule"):
        meter.action("x", on_failure="later")
    with pytest.raises(ConfigurationError, match="never a float"):
        meter.action("x", credits=0.5)
    with pytest.raises(ConfigurationError, match="needs a name"):
        meter.action("")
    with pytest.raises(TypeError, match="generator"):
        meter.action("x")(lambda: (yield))  # noqa: B901


def test_an_action_in_a_test_environment_draws_nothing(setup):
    meter, client = setup
    with meter.action("summarize_document", credits=50, customer_id="cus_1", environment="test"):
        client.chat.completions.create(**ASK)
    [action] = by_type(meter, "action")
    assert not action.billable and action.billable_rule == "environment test" and action.credits == 0
    assert meter.usage("cus_1").used == 0
