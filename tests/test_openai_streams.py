"""Streamed chat completions: usage requested for the caller, hidden from them, recorded exactly once."""

from __future__ import annotations

import asyncio
import contextlib
import gc
from decimal import Decimal

import httpx
import openai
import pytest

from metricaos_sdk.testing import chat_completion
from tests.fake_openai import USAGE, EventByEvent, FakeOpenAI, InPieces, stream_reset_error

MESSAGES = [{"role": "user", "content": "Where is my order?"}]


def chunks_of(client, **kwargs):
    return [c.model_dump() for c in client.chat.completions.create(model="gpt-4.1-mini", messages=MESSAGES, stream=True, **kwargs)]


def test_stream_gets_usage_injected_and_caller_sees_the_bare_chunks(meter, router):
    fake = FakeOpenAI()
    fake.mount(router)
    bare = chunks_of(openai.OpenAI(api_key="sk-test"))
    assert "stream_options" not in fake.requests[-1]
    wrapped = chunks_of(meter.wrap(openai.OpenAI(api_key="sk-test")))
    assert fake.requests[-1]["stream_options"] == {"include_usage": True}
    # The server sent a usage chunk because we asked; the caller does not see it.
    assert [c["choices"] for c in wrapped] == [c["choices"] for c in bare]
    assert len(wrapped) == len(bare) == 7
    assert all(c["usage"] is None for c in wrapped)
    [event] = meter.events()
    assert event.streamed and event.status == "ok" and event.usage_status == "reported"
    assert (event.input_tokens, event.output_tokens, event.cached_input_tokens, event.reasoning_tokens) == (1200, 300, 1024, 64)
    assert event.cost_usd == Decimal("0.0006528")
    assert event.request_id == "chatcmpl-sim"


@pytest.mark.parametrize("size", [1, 2, 7], ids=lambda n: f"{n}-byte reads")
def test_a_stream_read_in_small_pieces_is_observed_and_filtered_as_in_one(meter, router, size):
    # Events cut anywhere, down to one byte a read: a one-byte read must not pass for a whole event.
    fake = FakeOpenAI()
    fake.piece_size = size
    fake.mount(router)
    bare = chunks_of(openai.OpenAI(api_key="sk-test"))
    wrapped = chunks_of(meter.wrap(openai.OpenAI(api_key="sk-test")))
    assert wrapped == bare and len(wrapped) == 7
    [event] = meter.events()
    assert (event.status, event.usage_status, event.input_tokens, event.output_tokens) == ("ok", "reported", 1200, 300)


@pytest.mark.parametrize("content_type", ["application/json", "text/plain", None])
def test_a_stream_not_labelled_as_sse_is_read_as_the_sdk_reads_it(meter, router, content_type):
    # The SDK parses a streamed call's body as SSE whatever a proxy labels it; so must the tap, or the
    # injected usage chunk would reach the caller and the usage would be lost.
    fake = FakeOpenAI()

    def relabelled(request):
        response = fake(request)
        headers = {"content-type": content_type} if content_type else {}
        return httpx.Response(200, content=response.content, headers=headers)

    router.post("https://api.openai.com/v1/chat/completions").mock(side_effect=relabelled)
    bare = chunks_of(openai.OpenAI(api_key="sk-test"))
    wrapped = chunks_of(meter.wrap(openai.OpenAI(api_key="sk-test")))
    assert wrapped == bare and len(wrapped) == 7
    [event] = meter.events()
    assert (event.status, event.usage_status, event.input_tokens, event.output_tokens) == ("ok", "reported", 1200, 300)


def test_a_streamed_call_answered_with_one_json_body_keeps_its_usage(meter, router):
    # Some OpenAI-compatible servers ignore stream=True: the SDK yields no chunks, but the answer was
    # generated and its usage is in the body.
    fake = FakeOpenAI()
    router.post("https://api.openai.com/v1/chat/completions").mock(
        side_effect=lambda request: fake._json(chat_completion(model="gpt-4.1-mini", content="hi", usage=USAGE)))
    assert chunks_of(openai.OpenAI(api_key="sk-test")) == []
    assert chunks_of(meter.wrap(openai.OpenAI(api_key="sk-test"))) == []
    [event] = meter.events()
    assert (event.status, event.usage_status, event.input_tokens, event.output_tokens) == ("ok", "reported", 1200, 300)


def test_caller_who_asked_for_usage_sees_it_as_the_bare_client_shows_it(meter, router):
    fake = FakeOpenAI()
    fake.mount(router)
    bare = chunks_of(openai.OpenAI(api_key="sk-test"), stream_options={"include_usage": True})
    wrapped = chunks_of(meter.wrap(openai.OpenAI(api_key="sk-test")), stream_options={"include_usage": True})
    assert wrapped == bare
    assert wrapped[-1]["choices"] == [] and wrapped[-1]["usage"]["prompt_tokens"] == 1200
    assert meter.events()[0].input_tokens == 1200


def test_caller_who_refused_usage_is_respected(meter, router):
    fake = FakeOpenAI()
    fake.mount(router)
    chunks_of(meter.wrap(openai.OpenAI(api_key="sk-test")), stream_options={"include_usage": False})
    assert fake.requests[-1]["stream_options"] == {"include_usage": False}
    [event] = meter.events()
    assert event.usage_status == "estimated"  # no usage arrived: estimated, and flagged


def test_streaming_response_bytes_are_identical_to_bare(meter, router):
    fake = FakeOpenAI()
    fake.mount(router)
    with openai.OpenAI(api_key="sk-test").chat.completions.with_streaming_response.create(
            model="gpt-4.1-mini", messages=MESSAGES, stream=True) as r:
        bare = list(r.iter_lines())
    client = meter.wrap(openai.OpenAI(api_key="sk-test"))
    with client.chat.completions.with_streaming_response.create(model="gpt-4.1-mini", messages=MESSAGES, stream=True) as r:
        wrapped = list(r.iter_lines())
    # The server added "usage":null to every chunk because we asked for usage; the caller did not: it is cut.
    assert wrapped == bare
    assert not any('"usage":null' in line for line in wrapped)
    assert meter.events()[0].input_tokens == 1200


def test_async_stream_is_metered_and_hidden(meter, router):
    FakeOpenAI().mount(router)
    client = meter.wrap(openai.AsyncOpenAI(api_key="sk-test"))

    async def consume():
        stream = await client.chat.completions.create(model="gpt-4.1-mini", messages=MESSAGES, stream=True)
        return [c async for c in stream]

    chunks = asyncio.run(consume())
    assert len(chunks) == 7 and all(c.choices for c in chunks)
    [event] = meter.events()
    assert event.input_tokens == 1200 and event.output_tokens == 300 and event.status == "ok"


def test_stream_closed_early_is_recorded_once_as_cancelled_with_an_estimate(meter, router):
    fake = FakeOpenAI()
    fake.chunked = True
    fake.mount(router)
    client = meter.wrap(openai.OpenAI(api_key="sk-test"))
    stream = client.chat.completions.create(model="gpt-4.1-mini", messages=MESSAGES, stream=True)
    next(iter(stream))
    stream.close()
    stream.close()
    [event] = meter.events()
    assert event.status == "cancelled" and event.usage_status == "estimated"
    assert event.input_tokens > 0 and "input" in event.usage_problem  # says how input was counted
    assert event.billable  # tokens were generated and will be billed by the provider


@pytest.mark.tiktoken
@pytest.mark.parametrize("leave", ["close", "break", "raise"])
def test_stream_left_early_is_estimated_over_the_text_received_however_it_is_left(meter, router, leave):
    # break or an exception in the loop body leaves the stream to the garbage collector, which used to
    # finish the call before the tap's text could be counted: output 0 instead of the text received.
    fake = FakeOpenAI(words=[f" word{i}" for i in range(40)])
    fake.chunked = True
    fake.mount(router)
    client = meter.wrap(openai.OpenAI(api_key="sk-test"))

    def read_some():
        stream = client.chat.completions.create(model="gpt-4.1-mini", messages=MESSAGES, stream=True)
        for i, _ in enumerate(stream):
            if i == 20:
                if leave == "raise":
                    raise KeyError("the caller's own error")
                break
        if leave == "close":
            stream.close()

    with contextlib.suppress(KeyError):
        read_some()
    gc.collect()
    [event] = meter.events()
    assert (event.status, event.usage_status) == ("cancelled", "estimated")
    assert event.output_tokens == 40  # 20 words, two tokens each, counted over the text received
    assert "over the text received" in event.usage_problem


def test_open_stream_is_recorded_at_close_of_the_meter(db_path, router):
    from metricaos_sdk import Meter

    fake = FakeOpenAI()
    fake.chunked = True
    fake.mount(router)
    meter = Meter(db_path)
    client = meter.wrap(openai.OpenAI(api_key="sk-test"))
    stream = client.chat.completions.create(model="gpt-4.1-mini", messages=MESSAGES, stream=True)
    chunks = iter(stream)
    for _ in range(4):  # the role chunk and three words
        next(chunks)
    meter.close()
    [event] = Meter(db_path).events()
    assert event.status == "cancelled" and event.output_tokens > 0  # what was received, counted at exit
    del stream


def test_an_unread_plain_body_is_recorded_when_collected_and_at_close_of_the_meter(db_path, router):
    # with_streaming_response hands over a plain (non-streamed) body unread: left unread, it is cancelled.
    from metricaos_sdk import Meter

    fake = FakeOpenAI()
    router.post("https://api.openai.com/v1/chat/completions").mock(
        side_effect=lambda request: httpx.Response(200, stream=InPieces(fake(request).content, 64),
                                                   headers={"content-type": "application/json"}))
    meter = Meter(db_path)
    client = meter.wrap(openai.OpenAI(api_key="sk-test"))
    collected = client.chat.completions.with_streaming_response.create(model="gpt-4.1-mini", messages=MESSAGES)
    collected.__enter__()
    del collected
    gc.collect()
    kept = client.chat.completions.with_streaming_response.create(model="gpt-4.1-mini", messages=MESSAGES)
    kept.__enter__()
    meter.close()
    assert [(e.status, e.http_status) for e in Meter(db_path).events()] == [("cancelled", 200)] * 2
    del kept


def test_stream_failing_midway_is_an_error_event(meter, router):
    fake = FakeOpenAI()
    body = fake.stream_bytes(include_usage=True)
    router.post("https://api.openai.com/v1/chat/completions").mock(side_effect=lambda request: httpx.Response(
        200, stream=EventByEvent(body, fail_after=4), headers={"content-type": "text/event-stream"}))
    client = meter.wrap(openai.OpenAI(api_key="sk-test", max_retries=0))
    received = []
    with pytest.raises(stream_reset_error()):  # what the bare SDK raises, untouched
        for chunk in client.chat.completions.create(model="gpt-4.1-mini", messages=MESSAGES, stream=True):
            received.append(chunk)
    assert len(received) == 4
    [event] = meter.events()
    assert event.status == "error" and event.usage_status == "estimated" and event.output_tokens > 0
    assert event.billable


def test_stream_cancelled_while_waiting_for_the_next_chunk_is_recorded_as_cancelled(meter, router):
    # The task is cancelled inside the stream's read, not in the caller's loop body: still "cancelled".
    class SlowEvents(httpx.AsyncByteStream):
        def __init__(self, data):
            self.events = [e + b"\n\n" for e in data.split(b"\n\n") if e]

        async def __aiter__(self):
            for event in self.events:
                yield event
                await asyncio.sleep(10)

    fake = FakeOpenAI()
    router.post("https://api.openai.com/v1/chat/completions").mock(
        side_effect=lambda request: httpx.Response(200, stream=SlowEvents(fake(request).content),
                                                   headers={"content-type": "text/event-stream"}))
    client = meter.wrap(openai.AsyncOpenAI(api_key="sk-test"))

    async def consume(first_chunk):
        stream = await client.chat.completions.create(model="gpt-4.1-mini", messages=MESSAGES, stream=True)
        async for _ in stream:
            first_chunk.set()

    async def main():
        first_chunk = asyncio.Event()
        task = asyncio.create_task(consume(first_chunk))
        await first_chunk.wait()
        await asyncio.sleep(0)  # the task is back in the read, awaiting the next chunk
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    [event] = meter.events()
    assert (event.status, event.error_type, event.usage_status) == ("cancelled", "CancelledError", "estimated")


def test_stream_cancelled_in_a_task_is_recorded(meter, router):
    fake = FakeOpenAI()
    fake.chunked = True
    fake.mount(router)
    client = meter.wrap(openai.AsyncOpenAI(api_key="sk-test"))

    async def consume(first_chunk):
        stream = await client.chat.completions.create(model="gpt-4.1-mini", messages=MESSAGES, stream=True)
        async with stream:
            async for _ in stream:
                first_chunk.set()
                await asyncio.sleep(10)

    async def main():
        first_chunk = asyncio.Event()
        task = asyncio.create_task(consume(first_chunk))
        await first_chunk.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    [event] = meter.events()
    assert event.status == "cancelled" and event.usage_status == "estimated"
