"""AnthropicBedrock and AnthropicVertex (sync and async): providers ``bedrock`` and ``vertex``, their own URL
shapes, Bedrock's AWS event-stream frames read without touching the bytes, Bedrock priced as invoked."""

from __future__ import annotations

import asyncio
import gc
from decimal import Decimal

import anthropic
import pytest

from metricaos_sdk import RateTable, Usage
from tests.fake_anthropic import CACHED, INPUT, MESSAGES, MODEL, OUTPUT, FakeAnthropic, stream_events

BEDROCK_ID = "global.anthropic.claude-sonnet-4-6"
VERTEX_MODEL = "claude-sonnet-4-6"


def bedrock(meter, cls=anthropic.AnthropicBedrock, **kwargs):
    # api_key= is Bedrock's bearer-token auth: no AWS credentials or signing needed offline.
    return meter.wrap(cls(api_key="bedrock-key", aws_region="us-east-1", **kwargs))


def vertex(meter, cls=anthropic.AnthropicVertex, **kwargs):
    return meter.wrap(cls(region="us-east5", project_id="proj-1", access_token="ya29.token", **kwargs))


def assert_reported(event, provider, *, streamed):
    assert (event.provider, event.status, event.usage_status, event.streamed) == (provider, "ok", "reported", streamed)
    assert (event.input_tokens, event.cached_input_tokens, event.output_tokens) == (INPUT, CACHED, OUTPUT)
    assert event.model == MODEL and event.request_id == "msg_01XYZ" and event.cost_usd is not None


def test_bedrock_invoke_and_stream_sync(meter, router):
    fake = FakeAnthropic().mount(router)
    c = bedrock(meter)
    assert c.messages.create(model=BEDROCK_ID, max_tokens=1024, messages=MESSAGES).usage.input_tokens == 42
    events = list(c.messages.create(model=BEDROCK_ID, max_tokens=1024, messages=MESSAGES, stream=True))
    with c.messages.stream(model=BEDROCK_ID, max_tokens=1024, messages=MESSAGES) as s:
        s.until_done()
    assert events[-1].type == "message_stop"
    assert [path for path, _ in fake.requests] == [f"/model/{BEDROCK_ID}/invoke",
                                                  *[f"/model/{BEDROCK_ID}/invoke-with-response-stream"] * 2]
    plain, streamed, helper = meter.events()
    assert_reported(plain, "bedrock", streamed=False)
    assert_reported(streamed, "bedrock", streamed=True)
    assert_reported(helper, "bedrock", streamed=True)
    assert plain.requested_model == BEDROCK_ID and plain.endpoint == "/v1/messages"


def test_bedrock_async(meter, router):
    FakeAnthropic().mount(router)
    c = bedrock(meter, anthropic.AsyncAnthropicBedrock)

    async def run():
        await c.messages.create(model=BEDROCK_ID, max_tokens=1024, messages=MESSAGES)
        return [e async for e in await c.messages.create(model=BEDROCK_ID, max_tokens=1024, messages=MESSAGES,
                                                          stream=True)]

    assert len(asyncio.run(run())) > 0
    plain, streamed = meter.events()
    assert_reported(plain, "bedrock", streamed=False)
    assert_reported(streamed, "bedrock", streamed=True)


def test_bedrock_is_priced_as_the_invoked_profile(meter, router):
    """Global and regional inference profiles have different prices; the response only names the model."""
    FakeAnthropic().mount(router)
    regional = "us.anthropic.claude-sonnet-4-6"
    for model in (BEDROCK_ID, regional):
        bedrock(meter).messages.create(model=model, max_tokens=1024, messages=MESSAGES)
    global_event, regional_event = meter.events()
    rates = RateTable.coerce(None)
    usage = Usage(input_tokens=INPUT, output_tokens=OUTPUT, cached_input_tokens=CACHED, cache_write_tokens=1500,
                  cache_write_5m_tokens=1000, cache_write_1h_tokens=500, reasoning_tokens=120, web_search_requests=2)
    assert global_event.cost_usd == rates.price("bedrock", BEDROCK_ID, usage).cost_usd
    assert regional_event.cost_usd == rates.price("bedrock", regional, usage).cost_usd
    assert regional_event.cost_usd > global_event.cost_usd


def test_bedrock_stream_bytes_are_untouched(meter, router):
    FakeAnthropic().mount(router)
    bare = anthropic.AnthropicBedrock(api_key="bedrock-key", aws_region="us-east-1")
    with bare.messages.with_streaming_response.create(model=BEDROCK_ID, max_tokens=1024, messages=MESSAGES,
                                                      stream=True) as r:
        expected = r.read()
    with bedrock(meter).messages.with_streaming_response.create(model=BEDROCK_ID, max_tokens=1024, messages=MESSAGES,
                                                               stream=True) as r:
        assert r.read() == expected
    assert meter.events()[0].output_tokens == OUTPUT


def test_bedrock_exception_frame_is_an_error_event(meter, router):
    FakeAnthropic(fail_after=5).mount(router)
    with pytest.raises(anthropic.APIStatusError):
        for _ in bedrock(meter).messages.create(model=BEDROCK_ID, max_tokens=1024, messages=MESSAGES, stream=True):
            pass
    [event] = meter.events()
    assert (event.status, event.error_type, event.usage_status) == ("error", "modelStreamErrorException", "estimated")
    assert (event.input_tokens, event.output_tokens) == (INPUT, 2)


def test_bedrock_stream_abandoned_is_cancelled_once(meter, router):
    FakeAnthropic().mount(router)
    c = bedrock(meter)

    def read_some():
        for i, event in enumerate(c.messages.create(model=BEDROCK_ID, max_tokens=1024, messages=MESSAGES, stream=True)):
            if i == 3:
                return event

    read_some()
    gc.collect()
    [event] = meter.events()
    assert event.status == "cancelled" and event.input_tokens == INPUT and event.output_tokens == 2


def test_vertex_raw_predict_and_stream(meter, router):
    fake = FakeAnthropic().mount(router)
    c = vertex(meter)
    c.messages.create(model=VERTEX_MODEL, max_tokens=1024, messages=MESSAGES)
    with c.messages.stream(model=VERTEX_MODEL, max_tokens=1024, messages=MESSAGES) as s:
        assert "".join(s.text_stream)
    base = "/v1/projects/proj-1/locations/us-east5/publishers/anthropic/models/claude-sonnet-4-6"
    assert [path for path, _ in fake.requests] == [f"{base}:rawPredict", f"{base}:streamRawPredict"]
    plain, streamed = meter.events()
    assert_reported(plain, "vertex", streamed=False)
    assert_reported(streamed, "vertex", streamed=True)
    assert plain.cost_usd == Decimal("0.016176")  # Anthropic's rates; web search is not priced for Vertex


def test_vertex_async_and_copies(meter, router):
    FakeAnthropic().mount(router)
    c = vertex(meter, anthropic.AsyncAnthropicVertex)

    async def run():
        await c.with_options(timeout=5.0).messages.create(model=VERTEX_MODEL, max_tokens=1024, messages=MESSAGES)
        async with c.messages.stream(model=VERTEX_MODEL, max_tokens=1024, messages=MESSAGES) as s:
            await s.get_final_message()

    asyncio.run(run())
    assert [e.provider for e in meter.events()] == ["vertex", "vertex"]


def test_vertex_count_tokens_is_not_recorded(meter, router):
    FakeAnthropic().mount(router)
    assert vertex(meter).messages.count_tokens(model=VERTEX_MODEL, messages=MESSAGES).input_tokens == 13
    assert meter.events() == []


def test_stream_events_helper_matches_the_sdk_accumulation(router):
    """The simulated stream is accepted by the SDK's own accumulator with the same totals we record."""
    FakeAnthropic(events=stream_events()).mount(router)
    with anthropic.Anthropic(api_key="k").messages.stream(model=MODEL, max_tokens=1024, messages=MESSAGES) as s:
        usage = s.get_final_message().usage
    assert usage.input_tokens + usage.cache_read_input_tokens + usage.cache_creation_input_tokens == INPUT
    assert usage.output_tokens == OUTPUT
