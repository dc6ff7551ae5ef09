"""Quotas: refuse before sending once a limit is reached; shared through the SQLite file."""

from __future__ import annotations

import pickle
import subprocess
import sys
from datetime import datetime, timezone
from decimal import Decimal

import openai
import pytest

from metricaos_sdk import ConfigurationError, MemorySink, Meter, QuotaExceeded
from metricaos_sdk.quota import period_bounds
from tests.fake_openai import FakeOpenAI

MESSAGES = [{"role": "user", "content": "hi"}]


def ask(client):
    return client.chat.completions.create(model="gpt-4.1-mini", messages=MESSAGES)


@pytest.mark.parametrize("unit,limit", [("tokens", 2000), ("requests", 1), ("cost_usd", Decimal("0.0006"))])
def test_exhausted_limit_refuses_before_any_request(meter, router, unit, limit):
    route = FakeOpenAI().mount(router)  # each call: 1500 tokens, $0.0006528
    meter.set_quota("cus_1", **{unit: limit}, period="month")
    client = meter.wrap(openai.OpenAI(api_key="sk-test"))
    with meter.context(customer_id="cus_1"):
        ask(client)
        if unit == "tokens":
            ask(client)  # 1500 < 2000: allowed, and overshoots by its own size
        with pytest.raises(QuotaExceeded) as info:
            ask(client)
    sent = route.call_count
    assert sent == (2 if unit == "tokens" else 1)
    exc = info.value
    assert exc.customer_id == "cus_1" and exc.unit == unit and exc.limit == limit
    assert exc.used >= limit and exc.remaining == 0
    assert exc.resets_at == period_bounds("month", datetime.now(timezone.utc))[1]
    assert "cus_1" in str(exc) and "resets" in str(exc)
    # Other customers, and calls without a customer, are not limited.
    with meter.context(customer_id="cus_2"):
        ask(client)
    ask(client)
    assert route.call_count == sent + 2


def test_async_call_is_refused_too(meter, router):
    import asyncio

    route = FakeOpenAI().mount(router)
    meter.set_quota("cus_1", requests=0)
    client = meter.wrap(openai.AsyncOpenAI(api_key="sk-test"))

    async def go():
        async with meter.context(customer_id="cus_1"):
            await client.chat.completions.create(model="gpt-4.1-mini", messages=MESSAGES)

    with pytest.raises(QuotaExceeded):
        asyncio.run(go())
    assert route.call_count == 0


def test_failed_calls_do_not_use_quota(meter, router):
    fake = FakeOpenAI()
    fake.statuses = [400]
    fake.mount(router)
    meter.set_quota("cus_1", requests=1)
    client = meter.wrap(openai.OpenAI(api_key="sk-test"))
    with meter.context(customer_id="cus_1"):
        with pytest.raises(openai.BadRequestError):
            ask(client)
        ask(client)  # still allowed: the error was not billable
        with pytest.raises(QuotaExceeded):
            ask(client)


def test_usage_summary(meter, router):
    FakeOpenAI().mount(router)
    meter.set_quota("cus_1", tokens=50_000)
    client = meter.wrap(openai.OpenAI(api_key="sk-test"))
    with meter.context(customer_id="cus_1"):
        with meter.context(feature="a"):
            ask(client)
            ask(client)
        with meter.context(feature="b"):
            ask(client)
    summary = meter.usage("cus_1")
    assert summary.period == "month" and summary.limit == 50_000
    assert summary.used == 4500 and summary.remaining == 45_500
    assert summary.by_feature["a"].requests == 2 and summary.by_feature["b"].total_tokens == 1500
    assert summary.by_model["gpt-4.1-mini-2025-04-14"].requests == 3
    assert summary.cost_usd == Decimal("0.0006528") * 3
    assert "cus_1" in str(summary)


def test_quota_is_shared_between_processes(db_path, router):
    Meter(db_path).set_quota("cus_shared", requests=0)
    code = (
        "import sys, openai\n"
        "from metricaos_sdk import Meter, QuotaExceeded\n"
        f"meter = Meter({str(db_path)!r})\n"
        "client = meter.wrap(openai.OpenAI(api_key='sk-test', base_url='http://127.0.0.1:9/v1', max_retries=0))\n"
        "with meter.context(customer_id='cus_shared'):\n"
        "    try:\n"
        "        client.chat.completions.create(model='gpt-4.1-mini', messages=[{'role': 'user', 'content': 'hi'}])\n"
        "    except QuotaExceeded as exc:\n"
        "        print('refused', exc.limit, exc.used)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "refused 0 0", out.stderr


def test_in_memory_quota_store_with_a_custom_sink(router):
    FakeOpenAI().mount(router)
    meter = Meter(sink=MemorySink())
    meter.set_quota("cus_1", requests=1)
    client = meter.wrap(openai.OpenAI(api_key="sk-test"))
    with meter.context(customer_id="cus_1"):
        ask(client)
        with pytest.raises(QuotaExceeded):
            ask(client)


def test_bad_quota_input_is_a_clear_error(meter):
    with pytest.raises(ConfigurationError, match="at least one"):
        meter.set_quota("c")
    with pytest.raises(ConfigurationError, match="float"):
        meter.set_quota("c", cost_usd=1.5)
    with pytest.raises(ConfigurationError, match="period"):
        meter.set_quota("c", tokens=10, period="week")
    with pytest.raises(ConfigurationError, match="non-negative"):
        meter.set_quota("c", tokens=-1)


def test_period_bounds_across_year_end():
    start, end = period_bounds("month", datetime(2024, 12, 31, 23, 59, tzinfo=timezone.utc))
    assert (start, end) == (datetime(2024, 12, 1, tzinfo=timezone.utc), datetime(2025, 1, 1, tzinfo=timezone.utc))
    start, end = period_bounds("day", datetime(2024, 2, 29, 12, tzinfo=timezone.utc))
    assert end == datetime(2024, 3, 1, tzinfo=timezone.utc)


def test_quota_exceeded_pickles():
    exc = QuotaExceeded(customer_id="c", unit="tokens", limit=10, used=12, period="month",
                        resets_at=datetime(2026, 12, 1, tzinfo=timezone.utc))
    copy = pickle.loads(pickle.dumps(exc))
    assert (copy.customer_id, copy.limit, copy.used, str(copy)) == ("c", 10, 12, str(exc))


def test_a_customer_without_limits_costs_no_store_access(router, db_path):
    from metricaos_sdk import InMemoryQuotaStore, MeterConfig

    class CountingStore(InMemoryQuotaStore):
        calls = 0

        def __getattribute__(self, name):
            if not name.startswith("_") and name != "calls":
                type(self).calls += 1
            return super().__getattribute__(name)

    FakeOpenAI().mount(router)
    store = CountingStore()
    meter = Meter(sink=MemorySink(), quota_store=store, config=MeterConfig(quota_refresh_seconds=3600))
    client = meter.wrap(openai.OpenAI(api_key="sk-test"))
    with meter.context(customer_id="cus_free"):
        ask(client)  # first sight of the customer: one lookup, cached
        first = CountingStore.calls
        for _ in range(5):
            ask(client)
    assert first > 0 and CountingStore.calls == first  # afterwards: a dict hit per call
    meter.set_quota("cus_free", requests=6)  # a write here is seen at once
    with meter.context(customer_id="cus_free"), pytest.raises(QuotaExceeded):
        ask(client)
