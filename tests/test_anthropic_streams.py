"""Anthropic streams cut short — broken out of, closed, collected, cancelled, failed by an ``error`` event
or a dropped connection — are recorded exactly once, keeping what the provider reported."""

from __future__ import annotations

import asyncio
import gc
import tracemalloc

import anthropic
import httpx
import pytest

from tests.fake_anthropic import CACHED, INPUT, MESSAGES, MODEL, OUTPUT, FakeAnthropic, stream_events


def client(meter, **kwargs):
    return meter.wrap(anthropic.Anthropic(api_key="sk-ant-test", **kwargs))


def stream(c):
    return c.messages.create(model=MODEL, max_tokens=1024, messages=MESSAGES, stream=True)


def assert_cut_short(event, status, *, deltas):
    """Input as message_start reported it; output estimated from the content deltas the caller received."""
    assert event.status == status and event.usage_status == "estimated"
    assert (event.input_tokens, event.cached_input_tokens) == (INPUT, CACHED)
    assert event.output_tokens == deltas
    assert "input as reported when the stream started" in event.usage_problem
    assert event.billable and event.cost_usd is not None


def test_break_then_close_is_cancelled_once(meter, router):
    FakeAnthropic().mount(router)
    s = stream(client(meter))
    for event in s:
        if event.type == "content_block_delta":
            break
    s.close()
    s.close()
    [event] = meter.events()
    assert_cut_short(event, "cancelled", deltas=1)


def test_abandoned_stream_is_recorded_when_collected(meter, router):
    FakeAnthropic().mount(router)
    c = client(meter)

    def read_two():
        for i, event in enumerate(stream(c)):
            if i == 3:
                return event

    read_two()
    gc.collect()
    [event] = meter.events()
    assert_cut_short(event, "cancelled", deltas=2)


def test_stream_helper_left_early_is_cancelled_on_exit(meter, router):
    FakeAnthropic().mount(router)
    with client(meter).messages.stream(model=MODEL, max_tokens=1024, messages=MESSAGES) as s:
        next(iter(s.text_stream))
    [event] = meter.events()
    assert_cut_short(event, "cancelled", deltas=1)


def test_async_stream_cancelled_in_a_task_is_recorded(meter, router):
    FakeAnthropic().mount(router)
    c = meter.wrap(anthropic.AsyncAnthropic(api_key="sk-ant-test"))

    async def consume(started):
        async with c.messages.stream(model=MODEL, max_tokens=1024, messages=MESSAGES) as s:
            async for _ in s.text_stream:
                started.set()
                await asyncio.sleep(10)

    async def main():
        started = asyncio.Event()
        task = asyncio.create_task(consume(started))
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    [event] = meter.events()
    assert_cut_short(event, "cancelled", deltas=1)


def test_error_event_midway_is_an_error_event_with_the_reported_input(meter, router):
    events = [*stream_events()[:5], {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}]
    FakeAnthropic(events=events).mount(router)
    received = []
    with pytest.raises(anthropic.APIStatusError):
        for event in stream(client(meter)):
            received.append(event.type)
    assert received.count("content_block_delta") == 2
    [event] = meter.events()
    assert event.error_type == "overloaded_error"
    assert_cut_short(event, "error", deltas=2)


def test_connection_dropped_midway_is_an_error_event(meter, router):
    FakeAnthropic(fail_after=5).mount(router)
    with pytest.raises(httpx.ReadError):  # the SDK lets a read error inside a stream through as it is
        for _ in stream(client(meter, max_retries=0)):
            pass
    [event] = meter.events()
    assert event.error_type == "ReadError"
    assert_cut_short(event, "error", deltas=2)


def test_stream_without_any_usage_is_estimated_by_the_documented_heuristic(meter, router):
    events = stream_events(delta_usage={"output_tokens": 3})[1:]  # no message_start, no usage anywhere
    del events[-2]["usage"]
    FakeAnthropic(events=events).mount(router)
    list(stream(client(meter)))
    [event] = meter.events()
    assert event.usage_status == "estimated" and event.status == "ok"
    assert event.input_tokens == (len(MESSAGES[0]["content"]) + 3) // 4
    assert "4 characters per token" in event.usage_problem


def test_open_stream_is_recorded_at_close_of_the_meter(db_path, router):
    from metricaos_sdk import Meter

    FakeAnthropic().mount(router)
    meter = Meter(db_path)
    s = stream(client(meter))
    next(iter(s))
    meter.close()
    assert [e.status for e in Meter(db_path).events()] == ["cancelled"]
    del s


def peak_while_streaming(c, router, words: int) -> int:
    FakeAnthropic(events=stream_events(words=["w"] * words, delta_usage={"output_tokens": OUTPUT})).mount(router)
    gc.collect()
    tracemalloc.start()
    try:
        for _ in stream(c):
            pass
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_does_not_grow_with_the_number_of_events(meter, router):
    # The simulated server holds its ~300 kB body in memory either way: compare with the bare client.
    bare = peak_while_streaming(anthropic.Anthropic(api_key="sk-ant-test"), router, 2000)
    wrapped = peak_while_streaming(client(meter), router, 2000)
    assert wrapped - bare < 64 * 1024, (bare, wrapped)
    [event] = meter.events()
    assert event.output_tokens == OUTPUT and event.usage_status == "reported"
