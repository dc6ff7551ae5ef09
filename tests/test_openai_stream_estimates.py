"""Streams whose usage never arrives (abandoned, failed, or usage refused): output counted with tiktoken over
the text received, with running state only — memory does not grow with the number of chunks."""

from __future__ import annotations

import asyncio
import json
import tracemalloc

import httpx
import httpx2
import openai
import pytest

from metricaos_sdk import Meter, MeterConfig
from metricaos_sdk.testing import chat_chunk, sse
from tests.fake_openai import RESPONSES_USAGE, USAGE, EventByEvent, FakeOpenAI, stream_reset_error
from tests.tiktoken_support import o200k

MESSAGES = [{"role": "user", "content": "Where is my order?"}]


def failing_chat(router, words, *, fail_after, model="gpt-4.1-mini-2025-04-14", base="https://api.openai.com/v1"):
    """A chat stream whose connection resets after ``fail_after`` events (before the usage chunk)."""
    body = FakeOpenAI(words=words, model=model).stream_bytes(include_usage=True)
    router.post(f"{base}/chat/completions").mock(side_effect=lambda request: httpx.Response(
        200, stream=EventByEvent(body, fail_after=fail_after), headers={"content-type": "text/event-stream"}))


def read_until_failure(client, model="gpt-4.1-mini"):
    received = []
    with pytest.raises(stream_reset_error()):  # what the bare SDK raises, untouched
        for chunk in client.chat.completions.create(model=model, messages=MESSAGES, stream=True):
            received.append(chunk)
    return received


@pytest.mark.tiktoken
def test_failed_chat_stream_counts_the_text_received_with_tiktoken(meter, router):
    failing_chat(router, ["Your", " order", " ships", " today", "."], fail_after=4)  # role chunk + 3 words
    received = read_until_failure(meter.wrap(openai.OpenAI(api_key="sk-test", max_retries=0)))
    assert "".join(c.choices[0].delta.content for c in received) == "Your order ships"
    [event] = meter.events()
    assert event.status == "error" and event.usage_status == "estimated"
    assert event.output_tokens == len(o200k().encode("Your order ships"))
    assert "input counted with tiktoken o200k_base" in event.usage_problem
    assert "output counted with tiktoken o200k_base over the text received" in event.usage_problem


@pytest.mark.tiktoken
def test_escapes_unicode_and_tool_arguments_are_counted_as_the_caller_read_them(meter, router):
    words = ['He said "ships\\today"', "\n\n- Tracking: ", "1Z999AA10123456784 ✅ ", "Größe: M — 東京 🚚"]
    failing_chat(router, words, fail_after=len(words) + 1)
    received = read_until_failure(meter.wrap(openai.OpenAI(api_key="sk-test", max_retries=0)))
    text = "".join(c.choices[0].delta.content for c in received)
    assert text == "".join(words)
    [event] = meter.events()
    assert event.output_tokens == len(o200k().encode(text))


@pytest.mark.tiktoken
def test_a_long_stream_is_counted_in_slices_to_within_a_token_per_slice(meter, router):
    words = [f" parcel{i % 97} ships" for i in range(6000)]  # ~80 kB of text: five 16 kB slices
    failing_chat(router, words, fail_after=len(words) + 1)
    read_until_failure(meter.wrap(openai.OpenAI(api_key="sk-test", max_retries=0)))
    expected = len(o200k().encode("".join(words)))
    [event] = meter.events()
    assert expected - 6 <= event.output_tokens <= expected + 6


def test_without_a_tokenizer_output_is_four_characters_per_token_and_says_so(router, db_path, tmp_path):
    failing_chat(router, ["Your", " order", " ships", " today", "."], fail_after=4)
    meter = Meter(config=MeterConfig(database=str(db_path), tiktoken_cache_dir=str(tmp_path)))
    read_until_failure(meter.wrap(openai.OpenAI(api_key="sk-test", max_retries=0)))
    [event] = meter.events()
    assert event.output_tokens == (len("Your order ships") + 3) // 4
    assert "output estimated at 4 characters per token of the text received" in event.usage_problem
    assert "tiktoken o200k_base not available offline" in event.usage_problem
    meter.close()


def test_a_model_no_tokenizer_fits_uses_the_character_heuristic(meter, router):
    base = "http://vllm.internal:8000/v1"
    failing_chat(router, ["Your", " order", " ships"], fail_after=3, model="meta-llama/Llama-3.1-8B-Instruct", base=base)
    client = meter.wrap(openai.OpenAI(api_key="EMPTY", base_url=base, max_retries=0))
    read_until_failure(client, model="meta-llama/Llama-3.1-8B-Instruct")
    [event] = meter.events()
    assert event.output_tokens == (len("Your order") + 3) // 4 and "no tokenizer for this model" in event.usage_problem


def test_a_stream_abandoned_after_its_usage_arrived_keeps_the_providers_usage(meter, router):
    fake = FakeOpenAI()
    fake.chunked = True
    fake.mount(router)
    client = meter.wrap(openai.OpenAI(api_key="sk-test"))
    with client.chat.completions.create(model="gpt-4.1-mini", messages=MESSAGES, stream=True,
                                        stream_options={"include_usage": True}) as stream:
        for chunk in stream:
            if chunk.usage is not None:
                break  # before [DONE]
    [event] = meter.events()
    assert event.status == "cancelled" and event.usage_status == "reported" and event.usage_problem is None
    assert (event.input_tokens, event.output_tokens, event.reasoning_tokens) == (1200, 300, 64)


@pytest.mark.tiktoken
@pytest.mark.parametrize("aio", [False, True], ids=["sync", "async"])
def test_abandoned_responses_stream_is_estimated_from_its_deltas(meter, router, aio):
    fake = FakeOpenAI(usage=RESPONSES_USAGE, model="gpt-5-mini-2025-08-07")
    fake.chunked = True
    fake.mount_all(router)
    client = meter.wrap((openai.AsyncOpenAI if aio else openai.OpenAI)(api_key="sk-test"))
    instructions = "You are the support assistant of a parcel company."

    def until_second_delta(events, event):
        events.append(event.type)
        return events.count("response.output_text.delta") == 2

    async def abandon_async():
        events = []
        stream = await client.responses.create(model="gpt-5-mini", input="Where is my order?",
                                               instructions=instructions, stream=True)
        async with stream:
            async for event in stream:
                if until_second_delta(events, event):
                    break

    def abandon_sync():
        events = []
        with client.responses.create(model="gpt-5-mini", input="Where is my order?", instructions=instructions,
                                     stream=True) as stream:
            for event in stream:
                if until_second_delta(events, event):
                    break

    asyncio.run(abandon_async()) if aio else abandon_sync()
    [event] = meter.events()
    assert event.status == "cancelled" and event.usage_status == "estimated" and event.billable
    assert event.model == "gpt-5-mini-2025-08-07" and event.request_id.startswith("resp_")  # from response.created
    assert event.input_tokens == len(o200k().encode("Where is my order?")) + len(o200k().encode(instructions))
    assert event.output_tokens == len(o200k().encode("Your order"))  # the two deltas received
    assert event.cost_usd is not None and event.cost_usd > 0


# -- memory: running totals only ---------------------------------------------------------------------------------
def _chat_stream(events: int):
    """A chat stream of ``events`` content chunks, generated lazily (the fake itself holds nothing)."""
    model = "gpt-4.1-mini-2025-04-14"

    def body():
        for i in range(events):
            yield sse([chat_chunk(model=model, delta={"content": f" parcel {i % 50} is on its way to you"},
                                  with_usage_field=True)])
        yield sse([chat_chunk(model=model, delta=None, usage=USAGE), "[DONE]"])

    def handler(request: httpx2.Request) -> httpx2.Response:
        assert json.loads(request.content)["stream_options"] == {"include_usage": True}
        return httpx2.Response(200, stream=_Gen(body()), headers={"content-type": "text/event-stream"})

    return handler


class _Gen(httpx2.SyncByteStream):
    def __init__(self, chunks):
        self.chunks = chunks

    def __iter__(self):
        yield from self.chunks


def _peak_bytes_reading(meter, events: int) -> int:
    client = meter.wrap(openai.OpenAI(api_key="sk-test", base_url="https://bench.invalid/v1",
                                      http_client=httpx2.Client(transport=httpx2.MockTransport(_chat_stream(events)))))
    tracemalloc.start()
    try:
        count = 0
        for _ in client.chat.completions.create(model="gpt-4.1-mini", messages=MESSAGES, stream=True):
            count += 1
        assert count == events
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.tiktoken
def test_stream_memory_does_not_grow_with_the_number_of_chunks(meter):
    _peak_bytes_reading(meter, 500)  # warm caches (regexes, tokenizer, SQLite statements)
    small = _peak_bytes_reading(meter, 1_000)
    large = _peak_bytes_reading(meter, 4_000)
    # 3,000 more chunks (~1 MB of SSE, ~100 kB of text) add less than 48 kB at peak: nothing is kept per chunk
    # (a bytes object each would be 100 kB), and the text awaiting the tokenizer is bounded (OutputText).
    assert large - small < 48 * 1024, (small, large)
    assert [e.output_tokens for e in meter.events()][-2:] == [300, 300]
