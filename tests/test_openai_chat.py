"""Non-streamed chat completions through a wrapped openai client: counting, pricing, attribution, errors."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import httpx
import openai
import pytest

from metricaos_sdk import MemorySink, Meter, UsageEvent
from tests.fake_openai import USAGE, FakeOpenAI, body_cut_first

MESSAGES = [{"role": "user", "content": "Where is my order?"}]


def make_client(**kwargs):
    return openai.OpenAI(api_key="sk-test-secret-key", **kwargs)


def test_wrap_returns_the_same_client_and_isinstance_holds(meter):
    client = openai.OpenAI(api_key="sk-test")
    wrapped = meter.wrap(client)
    assert wrapped is client
    assert isinstance(wrapped, openai.OpenAI)
    assert type(wrapped) is openai.OpenAI
    async_client = meter.wrap(openai.AsyncOpenAI(api_key="sk-test"))
    assert isinstance(async_client, openai.AsyncOpenAI)


def test_wrap_rejects_unsupported_objects(meter):
    with pytest.raises(TypeError, match="openai.OpenAI"):
        meter.wrap(object())


def test_plain_call_is_counted_priced_and_attributed(meter, router):
    fake = FakeOpenAI()
    fake.mount(router)
    client = meter.wrap(make_client())
    with meter.context(customer_id="cus_1", user_id="u_1", workspace_id="ws_1", environment="production", tags={"plan": "pro"}):
        with meter.context(feature="support"):
            response = client.chat.completions.create(model="gpt-4.1-mini", messages=MESSAGES)
    assert response.choices[0].message.content == "Your order ships today."
    [event] = meter.events()
    assert (event.customer_id, event.user_id, event.workspace_id, event.feature, event.environment) == (
        "cus_1", "u_1", "ws_1", "support", "production")
    assert event.tags == {"plan": "pro"}
    assert event.provider == "openai"
    assert event.model == "gpt-4.1-mini-2025-04-14"
    assert event.requested_model == "gpt-4.1-mini"
    assert event.event_type == "chat_completion"
    assert (event.input_tokens, event.output_tokens, event.cached_input_tokens, event.reasoning_tokens) == (1200, 300, 1024, 64)
    assert event.total_tokens == 1500
    assert event.usage_status == "reported"
    # gpt-4.1-mini: $0.40/M input, $0.10/M cached input, $1.60/M output — computed by hand.
    expected = Decimal(176) * Decimal("0.40") / 10**6 + Decimal(1024) * Decimal("0.10") / 10**6 + Decimal(300) * Decimal("1.60") / 10**6
    assert isinstance(event.cost_usd, Decimal)
    assert event.cost_usd == expected == Decimal("0.0006528")
    assert event.price_status == "priced" and event.price_id
    assert event.billable is True and event.status == "ok" and event.streamed is False
    assert event.request_id == "chatcmpl-abc123"
    assert event.duration_ms > 0 and event.attempts == 1
    assert event.timestamp.tzinfo is not None and event.timestamp.utcoffset().total_seconds() == 0


def test_no_prompt_text_or_key_is_stored(meter, router, db_path):
    FakeOpenAI().mount(router)
    client = meter.wrap(make_client())
    client.chat.completions.create(model="gpt-4.1-mini", messages=[{"role": "user", "content": "my secret question"}])
    raw = db_path.read_bytes() + (db_path.with_name(db_path.name + "-wal").read_bytes()
                                  if db_path.with_name(db_path.name + "-wal").exists() else b"")
    assert b"my secret question" not in raw
    assert b"Your order ships" not in raw
    assert b"sk-test-secret-key" not in raw


def test_async_plain_call_is_metered(meter, router):
    FakeOpenAI().mount(router)
    client = meter.wrap(openai.AsyncOpenAI(api_key="sk-test"))

    @meter.track(feature="async_feature", customer_id="cus_async")
    async def ask():
        r = await client.chat.completions.create(model="gpt-4.1-mini", messages=MESSAGES)
        return r.choices[0].message.content

    assert asyncio.run(ask()) == "Your order ships today."
    [event] = meter.events()
    assert event.feature == "async_feature" and event.customer_id == "cus_async"
    assert event.input_tokens == 1200 and event.cost_usd == Decimal("0.0006528")


def test_with_options_copy_is_metered(meter, router):
    FakeOpenAI().mount(router)
    client = meter.wrap(make_client())
    copy = client.with_options(timeout=5.0, max_retries=0)
    assert isinstance(copy, openai.OpenAI) and copy is not client
    copy.chat.completions.create(model="gpt-4.1-mini", messages=MESSAGES)
    client.copy().chat.completions.create(model="gpt-4.1-mini", messages=MESSAGES)
    assert len(meter.events()) == 2


def test_with_raw_response_is_metered_and_unchanged(meter, router):
    FakeOpenAI().mount(router)
    client = meter.wrap(make_client())
    raw = client.chat.completions.with_raw_response.create(model="gpt-4.1-mini", messages=MESSAGES)
    assert raw.headers["x-request-id"] == "req_123"
    assert raw.parse().usage.prompt_tokens == 1200
    assert meter.events()[0].input_tokens == 1200


def test_unmetered_endpoints_pass_through_without_events(meter, router):
    router.get("https://api.openai.com/v1/models").mock(return_value=httpx.Response(200, json={"object": "list", "data": []}))
    client = meter.wrap(make_client())
    assert client.models.list().data == []
    assert meter.events() == []


def test_provider_error_is_reraised_unchanged_and_not_billable(meter, router):
    fake = FakeOpenAI()
    fake.statuses = [400]
    fake.mount(router)
    client = meter.wrap(make_client())
    with meter.context(customer_id="cus_err"):
        with pytest.raises(openai.BadRequestError) as info:
            client.chat.completions.create(model="gpt-4.1-mini", messages=MESSAGES)
    assert info.value.status_code == 400
    [event] = meter.events()
    assert event.status == "error" and event.billable is False and event.http_status == 400
    assert event.error_type == "BadRequestError"
    assert event.total_tokens == 0 and event.usage_status == "none"
    assert meter.usage("cus_err").totals.requests == 0


def test_sdk_retries_are_counted_once(meter, router):
    fake = FakeOpenAI()
    fake.statuses = [500, 503]
    route = fake.mount(router)
    client = meter.wrap(make_client(max_retries=2))
    client._calculate_retry_timeout = lambda *a, **k: 0.0  # no sleeping between retries in tests
    client.chat.completions.create(model="gpt-4.1-mini", messages=MESSAGES)
    assert route.call_count == 3
    [event] = meter.events()
    assert event.attempts == 3 and event.billable and event.status == "ok" and event.input_tokens == 1200


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_a_2xx_whose_body_breaks_off_is_retried_by_the_sdk_and_counted_once_with_the_retrys_usage(meter, router, is_async):
    # httpx2 reads a plain body inside the SDK's request(); a reset mid-body is retried like a dropped
    # connection, so the call's one event is the retry's answer, not an error with estimated usage.
    router.post("https://api.openai.com/v1/chat/completions").mock(side_effect=body_cut_first(FakeOpenAI()))
    if is_async:
        client = meter.wrap(openai.AsyncOpenAI(api_key="sk-test", max_retries=2))
        client._calculate_retry_timeout = lambda *a, **k: 0.0
        response = asyncio.run(client.chat.completions.create(model="gpt-4.1-mini", messages=MESSAGES))
    else:
        client = meter.wrap(make_client(max_retries=2))
        client._calculate_retry_timeout = lambda *a, **k: 0.0
        response = client.chat.completions.create(model="gpt-4.1-mini", messages=MESSAGES)
    assert response.usage.prompt_tokens == 1200
    [event] = meter.events()
    assert (event.status, event.usage_status, event.attempts, event.http_status) == ("ok", "reported", 2, 200)
    assert (event.input_tokens, event.output_tokens, event.request_id) == (1200, 300, "chatcmpl-abc123")


def test_a_2xx_whose_body_breaks_off_with_no_retry_left_is_one_error_event(meter, router):
    router.post("https://api.openai.com/v1/chat/completions").mock(side_effect=body_cut_first(FakeOpenAI(), times=2))
    client = meter.wrap(make_client(max_retries=1))
    client._calculate_retry_timeout = lambda *a, **k: 0.0
    with pytest.raises(openai.APIConnectionError):
        client.chat.completions.create(model="gpt-4.1-mini", messages=MESSAGES)
    [event] = meter.events()
    assert (event.status, event.error_type, event.attempts, event.http_status) == ("error", "APIConnectionError", 2, 200)
    assert event.usage_status == "estimated" and event.input_tokens > 0  # answered: the provider bills the prompt


def test_connection_error_is_an_error_event_with_no_tokens(meter, router):
    router.post("https://api.openai.com/v1/chat/completions").mock(side_effect=httpx.ConnectError("refused"))
    client = meter.wrap(make_client(max_retries=1))
    client._calculate_retry_timeout = lambda *a, **k: 0.0
    with pytest.raises(openai.APIConnectionError):
        client.chat.completions.create(model="gpt-4.1-mini", messages=MESSAGES)
    [event] = meter.events()
    assert event.status == "error" and not event.billable and event.total_tokens == 0
    assert event.attempts == 2 and event.http_status is None


def test_malformed_usage_is_flagged_never_raised(meter, router):
    FakeOpenAI(usage={"prompt_tokens": "12", "completion_tokens": 5}).mount(router)
    client = meter.wrap(make_client())
    response = client.chat.completions.create(model="gpt-4.1-mini", messages=MESSAGES)
    assert response.choices[0].message.content  # the caller got their answer
    [event] = meter.events()
    assert event.usage_status == "invalid"
    assert event.usage_problem == "prompt_tokens=<text of 2 characters>"  # the provider's text is never kept
    assert event.cost_usd is None


def test_a_count_no_call_could_have_is_flagged_and_the_events_after_it_are_stored(meter, router):
    # 2**63 tokens passed as a count once, then jammed the SQLite writer: no later event was ever stored.
    fake = FakeOpenAI(usage={**USAGE, "prompt_tokens": 2**63})
    fake.mount(router)
    client = meter.wrap(make_client())
    client.chat.completions.create(model="gpt-4.1-mini", messages=MESSAGES)
    fake.usage = USAGE
    client.chat.completions.create(model="gpt-4.1-mini", messages=MESSAGES)
    flagged, normal = meter.events()
    assert flagged.usage_status == "invalid" and f"prompt_tokens={2**63}" in flagged.usage_problem
    assert normal.usage_status == "reported" and normal.input_tokens == 1200


def test_impossible_usage_is_flagged(meter, router):
    FakeOpenAI(usage={**USAGE, "prompt_tokens": 10}).mount(router)  # cached (1024) > input (10)
    client = meter.wrap(make_client())
    client.chat.completions.create(model="gpt-4.1-mini", messages=MESSAGES)
    [event] = meter.events()
    assert event.usage_status == "invalid" and "exceeds input_tokens" in event.usage_problem


def test_unknown_model_is_recorded_unpriced_with_one_warning(meter, router, sdk_log):
    FakeOpenAI(model="my-finetune-xyz").mount(router)
    client = meter.wrap(make_client())
    for _ in range(3):
        client.chat.completions.create(model="my-finetune-xyz", messages=MESSAGES)
    events = meter.events()
    assert [e.cost_usd for e in events] == [None, None, None]
    assert all(e.price_status == "unpriced" and e.input_tokens == 1200 for e in events)
    warnings = [r for r in sdk_log.records if "my-finetune-xyz" in r.getMessage()]
    assert len(warnings) == 1


class BrokenSink:
    def write(self, events):
        raise OSError("disk full")

    def flush(self):
        raise OSError("disk full")

    def close(self):
        pass


def test_sink_failure_never_reaches_the_caller(router, sdk_log):
    FakeOpenAI().mount(router)
    meter = Meter(sink=BrokenSink())
    client = meter.wrap(make_client())
    response = client.chat.completions.create(model="gpt-4.1-mini", messages=MESSAGES)
    assert response.usage.prompt_tokens == 1200
    meter.flush()
    assert meter.faults == 2
    assert any("disk full" in r.getMessage() for r in sdk_log.records)
    assert all("sk-test-secret-key" not in r.getMessage() + (r.exc_text or "") for r in sdk_log.records)


def test_memory_sink_receives_events(router):
    FakeOpenAI().mount(router)
    sink = MemorySink()
    meter = Meter(sink=sink)
    meter.wrap(make_client()).chat.completions.create(model="gpt-4.1-mini", messages=MESSAGES)
    assert len(sink) == 1 and meter.events()[0].input_tokens == 1200


def test_the_meters_events_equal_validated_ones_field_for_field_in_order(router):
    # The meter builds events without validation (once per call); they must be what validation gives, with
    # __dict__ in field order (the journal line is written from it in one pass).
    FakeOpenAI().mount(router)
    sink = MemorySink()
    meter = Meter(sink=sink)
    with meter.context(customer_id="cus_1", tags={"b": "2", "a": "1"}):
        meter.wrap(make_client()).chat.completions.create(model="gpt-4.1-mini", messages=MESSAGES)
    [event] = meter.events()
    validated = UsageEvent.model_validate(event.model_dump())
    assert event == validated and list(event.__dict__) == list(UsageEvent.model_fields)
    assert {k: type(v) for k, v in event.__dict__.items()} == {k: type(v) for k, v in validated.__dict__.items()}


def test_metering_can_be_disabled_by_config(router, db_path):
    from metricaos_sdk import MeterConfig

    FakeOpenAI().mount(router)
    meter = Meter(config=MeterConfig(database=str(db_path), enabled=False))
    client = meter.wrap(make_client())
    client.chat.completions.create(model="gpt-4.1-mini", messages=MESSAGES)
    assert meter.events() == []
    meter.close()


def test_attribution_follows_each_thread_and_task_through_one_shared_client(meter, router):
    import threading

    FakeOpenAI().mount(router)
    client = meter.wrap(make_client())
    async_client = meter.wrap(openai.AsyncOpenAI(api_key="sk-test"))
    barrier = threading.Barrier(6)

    def worker(i):
        with meter.context(customer_id=f"thread_{i}", feature="t"):
            barrier.wait()
            client.chat.completions.create(model="gpt-4.1-mini", messages=MESSAGES)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    async def task(i):
        async with meter.context(customer_id=f"task_{i}"):
            await asyncio.sleep(0.001 * (6 - i))
            await async_client.chat.completions.create(model="gpt-4.1-mini", messages=MESSAGES)

    async def main():
        await asyncio.gather(*(task(i) for i in range(6)))

    asyncio.run(main())
    customers = sorted(e.customer_id for e in meter.events())
    assert customers == sorted([f"thread_{i}" for i in range(6)] + [f"task_{i}" for i in range(6)])
    assert {e.feature for e in meter.events() if e.customer_id.startswith("thread_")} == {"t"}
