"""The real anthropic client, wrapped, against respx-mocked HTTP: every billable Messages method is metered
exactly once — plain, streamed, helper, beta, raw, streaming-response, sync and async — and nothing else."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import anthropic
import httpx
import httpx2
import pytest

from metricaos_sdk import QuotaExceeded
from tests.fake_anthropic import (
    CACHE_WRITE,
    CACHED,
    COST,
    INPUT,
    MESSAGES,
    MODEL,
    OUTPUT,
    THINKING,
    WORDS,
    FakeAnthropic,
)
from tests.fake_openai import body_cut_first

TEXT = "".join(WORDS)


def client(meter, **kwargs):
    return meter.wrap(anthropic.Anthropic(api_key="sk-ant-test", **kwargs))


def aclient(meter, **kwargs):
    return meter.wrap(anthropic.AsyncAnthropic(api_key="sk-ant-test", **kwargs))


def create(c, **kwargs):
    return c.messages.create(model=MODEL, max_tokens=1024, messages=MESSAGES, **kwargs)


def assert_full_usage(event, *, streamed):
    assert (event.provider, event.event_type, event.endpoint) == ("anthropic", "message", "/v1/messages")
    assert (event.status, event.usage_status, event.billable, event.streamed) == ("ok", "reported", True, streamed)
    assert (event.input_tokens, event.output_tokens, event.total_tokens) == (INPUT, OUTPUT, INPUT + OUTPUT)
    assert (event.cached_input_tokens, event.cache_write_tokens) == (CACHED, CACHE_WRITE)
    assert (event.cache_write_5m_tokens, event.cache_write_1h_tokens) == (1000, 500)
    assert (event.reasoning_tokens, event.web_search_requests) == (THINKING, 2)
    assert event.cost_usd == Decimal(COST)
    assert (event.model, event.requested_model, event.request_id) == (MODEL, MODEL, "msg_01XYZ")
    assert event.service_tier == "standard" and event.attempts == 1


def test_wrap_keeps_the_client_and_rejects_what_is_not_one(meter):
    bare = anthropic.Anthropic(api_key="sk-ant-test")
    assert meter.wrap(bare) is bare and isinstance(bare, anthropic.Anthropic)
    # The other platform clients are metered under their own names (tests/test_anthropic_platforms_more.py).
    with pytest.raises(TypeError, match="anthropic.AnthropicFoundry"):
        meter.wrap(bare.messages)


def test_create_is_counted_priced_and_attributed(meter, router):
    fake = FakeAnthropic().mount(router)
    with meter.context(customer_id="cus_1", feature="support"):
        message = create(client(meter))
    assert message.content[0].text == TEXT and message.usage.input_tokens == 42  # the caller sees Anthropic's own
    [event] = meter.events()
    assert_full_usage(event, streamed=False)
    assert (event.customer_id, event.feature) == ("cus_1", "support")
    assert fake.requests[0][0] == "/v1/messages"


def test_async_create_is_metered(meter, router):
    FakeAnthropic().mount(router)
    message = asyncio.run(create(aclient(meter)))
    assert message.content[0].text == TEXT
    assert_full_usage(meter.events()[0], streamed=False)


def test_create_stream_is_metered_when_consumed(meter, router):
    FakeAnthropic().mount(router)
    events = list(create(client(meter), stream=True))
    assert [e.type for e in events][0] == "message_start" and events[-1].type == "message_stop"
    [event] = meter.events()
    assert_full_usage(event, streamed=True)


def test_async_create_stream_is_metered(meter, router):
    FakeAnthropic().mount(router)

    async def run():
        return [e async for e in await create(aclient(meter), stream=True)]

    assert len(asyncio.run(run())) == len(WORDS) + 5  # the ping is not yielded
    assert_full_usage(meter.events()[0], streamed=True)


def test_stream_helper_text_stream_and_final_message(meter, router):
    FakeAnthropic().mount(router)
    c = client(meter)
    with c.messages.stream(model=MODEL, max_tokens=1024, messages=MESSAGES) as stream:
        assert "".join(stream.text_stream) == TEXT
    with c.messages.stream(model=MODEL, max_tokens=1024, messages=MESSAGES) as stream:
        final = stream.get_final_message()
    assert final.usage.output_tokens == OUTPUT
    events = meter.events()
    assert len(events) == 2
    for event in events:
        assert_full_usage(event, streamed=True)


def test_async_stream_helper_finishes_on_exit(meter, router):
    FakeAnthropic().mount(router)

    async def run():
        async with aclient(meter).messages.stream(model=MODEL, max_tokens=1024, messages=MESSAGES) as stream:
            return "".join([t async for t in stream.text_stream])

    assert asyncio.run(run()) == TEXT
    assert_full_usage(meter.events()[0], streamed=True)


def test_beta_messages_create_stream_and_parse(meter, router):
    FakeAnthropic().mount(router)
    c = client(meter)
    assert c.beta.messages.create(model=MODEL, max_tokens=1024, messages=MESSAGES).usage.output_tokens == OUTPUT
    assert len(list(c.beta.messages.create(model=MODEL, max_tokens=1024, messages=MESSAGES, stream=True))) > 0
    with c.beta.messages.stream(model=MODEL, max_tokens=1024, messages=MESSAGES) as stream:
        stream.until_done()
    events = meter.events()
    assert len(events) == 3
    for event in events:
        assert event.input_tokens == INPUT and event.output_tokens == OUTPUT and event.cost_usd == Decimal(COST)
        assert event.endpoint == "/v1/messages"  # the path alone (anthropic 2.0 posts beta calls to ?beta=true)


def test_parse_is_metered(meter, router):
    FakeAnthropic().mount(router)
    c = client(meter)
    assert c.messages.parse(model=MODEL, max_tokens=1024, messages=MESSAGES).content[0].text == TEXT
    assert c.beta.messages.parse(model=MODEL, max_tokens=1024, messages=MESSAGES).usage.output_tokens == OUTPUT
    assert [e.input_tokens for e in meter.events()] == [INPUT, INPUT]


def test_with_raw_response_is_metered_and_unchanged(meter, router):
    FakeAnthropic().mount(router)
    raw = client(meter).messages.with_raw_response.create(model=MODEL, max_tokens=1024, messages=MESSAGES)
    assert raw.headers["request-id"] == "req_011CAnthropic" and raw.http_request.url.path == "/v1/messages"
    assert raw.parse().usage.input_tokens == 42
    assert_full_usage(meter.events()[0], streamed=False)


def test_with_streaming_response_lines_are_metered(meter, router):
    FakeAnthropic().mount(router)
    c = client(meter)
    with c.messages.with_streaming_response.create(model=MODEL, max_tokens=1024, messages=MESSAGES, stream=True) as r:
        lines = list(r.iter_lines())
    assert lines[0] == "event: message_start"
    with c.messages.with_streaming_response.create(model=MODEL, max_tokens=1024, messages=MESSAGES) as r:
        assert r.parse().usage.output_tokens == OUTPUT
    events = meter.events()
    assert [e.streamed for e in events] == [True, False]
    for event in events:
        assert event.input_tokens == INPUT and event.output_tokens == OUTPUT and event.usage_status == "reported"


def test_count_tokens_is_not_recorded(meter, router):
    fake = FakeAnthropic().mount(router)
    c = client(meter)
    assert c.messages.count_tokens(model=MODEL, messages=MESSAGES).input_tokens == 13
    assert c.beta.messages.count_tokens(model=MODEL, messages=MESSAGES).input_tokens == 13
    assert len(fake.requests) == 2 and meter.events() == []


def test_copies_are_metered(meter, router):
    FakeAnthropic().mount(router)
    c = client(meter)
    create(c.with_options(timeout=5.0, max_retries=0))
    create(c.copy(default_headers={"x-team": "a"}))
    assert len(meter.events()) == 2


def test_sdk_retries_are_counted_once(meter, router):
    fake = FakeAnthropic().mount(router)
    fake.statuses = [529, 500]
    create(client(meter, max_retries=2))
    [event] = meter.events()
    assert event.attempts == 3 and event.status == "ok" and event.input_tokens == INPUT


def test_a_2xx_whose_body_breaks_off_is_retried_by_the_sdk_and_counted_once(meter, router):
    fake = FakeAnthropic()
    router.post("https://api.anthropic.com/v1/messages").mock(side_effect=body_cut_first(fake))
    message = create(client(meter, max_retries=2))
    assert message.usage.output_tokens == OUTPUT
    [event] = meter.events()
    assert (event.status, event.usage_status, event.attempts) == ("ok", "reported", 2)
    assert (event.input_tokens, event.output_tokens, event.cost_usd) == (INPUT, OUTPUT, Decimal(COST))


def test_provider_error_is_reraised_unchanged_and_not_billable(meter, router):
    fake = FakeAnthropic().mount(router)
    fake.statuses = [400]
    with pytest.raises(anthropic.BadRequestError) as info:
        create(client(meter))
    assert info.value.body["error"]["type"] == "invalid_request_error"
    [event] = meter.events()
    assert (event.status, event.billable, event.http_status, event.error_type) == ("error", False, 400, "BadRequestError")
    assert (event.usage_status, event.total_tokens, event.cost_usd) == ("none", 0, Decimal(0))


def test_timeout_and_connection_error_are_error_events_with_no_tokens(meter, router):
    route = router.post("https://api.anthropic.com/v1/messages")
    route.mock(side_effect=httpx2.ReadTimeout("timed out"))  # raised as the SDK's HTTP stack would
    with pytest.raises(anthropic.APITimeoutError):
        create(client(meter, max_retries=1))
    route.mock(side_effect=httpx.ConnectError("refused"))
    with pytest.raises(anthropic.APIConnectionError):
        create(client(meter, max_retries=0))
    timeout, refused = meter.events()
    assert (timeout.status, timeout.error_type, timeout.attempts) == ("error", "APITimeoutError", 2)
    assert refused.error_type == "APIConnectionError"
    for event in (timeout, refused):
        assert not event.billable and event.total_tokens == 0 and event.usage_status == "none"


def test_quota_refusal_sends_nothing_and_is_not_wrapped_by_the_sdk(meter, router):
    import anthropic

    fake = FakeAnthropic().mount(router)
    meter.set_quota("cus_q", tokens=100)  # below what one call reserves (its input + max_tokens=1024)
    c = client(meter)
    with meter.context(customer_id="cus_q"):
        with pytest.raises(QuotaExceeded) as info:
            create(c)
        assert not isinstance(info.value, anthropic.AnthropicError)  # raised above the SDK: not wrapped, not retried
        with pytest.raises(QuotaExceeded):
            c.messages.stream(model=MODEL, max_tokens=1024, messages=MESSAGES).__enter__()
    assert len(fake.requests) == 0
    assert meter.events() == []


def test_malformed_usage_is_flagged_never_raised(meter, router):
    FakeAnthropic(usage={"input_tokens": 10, "output_tokens": 3, "cache_read_input_tokens": -5}).mount(router)
    assert create(client(meter)).content[0].text == TEXT
    [event] = meter.events()
    assert event.usage_status == "invalid" and "cache_read_input_tokens=-5" in event.usage_problem
    assert event.cost_usd is None and event.total_tokens == 0


def test_malformed_stream_usage_is_flagged_never_raised(meter, router):
    FakeAnthropic(usage={"input_tokens": "lots", "output_tokens": 3}).mount(router)
    assert len(list(create(client(meter), stream=True))) > 0
    [event] = meter.events()
    assert event.usage_status == "invalid" and "input_tokens=<text of 4 characters>" in event.usage_problem
