"""Bad arguments get one clear sentence at the boundary, and nothing is half-written (issue 11, point 6); the
decorator works with and without parentheses; a closed meter says so; meters leave no hooks behind (point 8)."""

from __future__ import annotations

import asyncio
import atexit
import gc
import logging

import openai
import pytest

from metricaos_sdk import ConfigurationError, MemorySink, Meter, _fork, current_attribution
from tests.fake_openai import FakeOpenAI

MESSAGES = [{"role": "user", "content": "Where is my order?"}]


@pytest.mark.parametrize(("kwargs", "says"), [
    ({"cost_usd": "ten"}, "not a number"),
    ({"cost_usd": 1.5}, "never a float"),
    ({"tokens": -5}, "non-negative"),
    ({"tokens": 10, "period": "week"}, "'day', 'month' or 'year'"),
    ({}, "at least one of"),
])
def test_set_quota_refuses_what_is_not_a_limit_and_writes_nothing(kwargs, says):
    meter = Meter(sink=MemorySink())
    with pytest.raises(ConfigurationError) as info:
        meter.set_quota("cus_1", **kwargs)
    assert says in str(info.value) and str(info.value).count(". ") <= 1
    assert meter.customers.limits_of("cus_1") == []


@pytest.mark.parametrize("customer", [None, "", 42])
def test_a_customer_id_must_be_a_string(customer):
    meter = Meter(sink=MemorySink())
    for call in (lambda: meter.set_quota(customer, tokens=100), lambda: meter.usage(customer),
                 lambda: meter.remove_quota(customer)):
        with pytest.raises(ConfigurationError, match="needs a customer id"):
            call()


def test_usage_refuses_a_period_it_does_not_know():
    meter = Meter(sink=MemorySink())
    with pytest.raises(ConfigurationError, match="'week' is not a period"):
        meter.usage("cus_1", period="week")
    assert meter.usage("cus_1", period="day").period == "day"


def test_track_without_parentheses_names_the_feature_after_the_function():
    meter = Meter(sink=MemorySink())

    @meter.track
    def summarize(text: str) -> str | None:
        return current_attribution().feature

    @meter.track
    async def draft() -> str | None:
        return current_attribution().feature

    @meter.track(feature="named")
    def named() -> str | None:
        return current_attribution().feature

    assert summarize("x") == "summarize" and summarize.__name__ == "summarize"
    assert asyncio.run(draft()) == "draft"
    assert named() == "named"
    assert current_attribution().feature is None


def test_a_closed_meters_clients_work_unmetered_and_say_so_once(router, sdk_log):
    FakeOpenAI().mount(router)
    sink = MemorySink()
    meter = Meter(sink=sink)
    client = meter.wrap(openai.OpenAI(api_key="sk-test"))
    client.chat.completions.create(model="gpt-4.1-mini", messages=MESSAGES)
    meter.close()
    for _ in range(3):
        assert client.chat.completions.create(model="gpt-4.1-mini", messages=MESSAGES).usage.total_tokens == 1500
    assert len(sink) == 1
    warnings = [r for r in sdk_log.records if r.levelno == logging.WARNING and "closed meter" in r.getMessage()]
    assert len(warnings) == 1


def test_meters_register_no_exit_or_fork_hook_of_their_own():
    before = atexit._ncallbacks()  # type: ignore[attr-defined]
    meters = [Meter(sink=MemorySink()) for _ in range(20)]
    assert atexit._ncallbacks() == before  # type: ignore[attr-defined]
    closing = {id(m) for m in meters}
    assert closing <= {id(o) for o in _fork._AT_EXIT}
    for m in meters[:10]:
        m.close()
    assert not {id(m) for m in meters[:10]} & {id(o) for o in _fork._AT_EXIT}
    del meters, m
    gc.collect()
    assert not closing & {id(o) for o in _fork._AT_EXIT}  # held weakly: a dropped meter is forgotten
