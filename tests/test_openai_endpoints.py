"""Every metered OpenAI method, sync and async, streamed and not, plain / with_raw_response /
with_streaming_response, through the real SDK client against respx-mocked HTTP with realistic payloads."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import openai
import pytest

from tests.fake_openai import (
    COMPLETIONS_USAGE,
    EMBEDDINGS_USAGE,
    IMAGE_EDIT_USAGE,
    IMAGE_USAGE,
    PNG,
    RESPONSES_USAGE,
    TRANSCRIPTION_USAGE,
    USAGE,
    FakeOpenAI,
    settle,
    within,
)

MESSAGES = [{"role": "user", "content": "Where is my order?"}]
AUDIO = ("where.wav", b"RIFF\x24\x00\x00\x00WAVEfmt \x10\x00\x00\x00", "audio/wav")
IMAGE = ("parcel.png", base64.b64decode(PNG), "image/png")


@dataclass
class Case:
    id: str
    resource: Callable[[Any], Any]
    method: str
    kwargs: dict[str, Any]
    usage: dict[str, Any]
    answers_as: str  # the model the server names in its answer (images and audio name none: the requested one)
    event_type: str
    counts: tuple[int, int, int, int]  # input, output, cached input, reasoning
    streamed: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def _case(id, resource, method, kwargs, usage, answers_as, event_type, counts, stream_kwargs=None):
    plain = Case(id, resource, method, kwargs, usage, answers_as, event_type, counts)
    if stream_kwargs is None:
        return [plain]
    return [plain, Case(f"{id}-stream", resource, method, {**kwargs, "stream": True, **stream_kwargs}, usage, answers_as,
                        event_type, counts, streamed=True)]


CASES = [
    *_case("chat", lambda c: c.chat.completions, "create", {"model": "gpt-4.1-mini", "messages": MESSAGES}, USAGE,
           "gpt-4.1-mini-2025-04-14", "chat_completion", (1200, 300, 1024, 64), {}),
    *_case("completions", lambda c: c.completions, "create",
           {"model": "gpt-3.5-turbo-instruct", "prompt": "Say where my order is", "max_tokens": 16},
           COMPLETIONS_USAGE, "gpt-3.5-turbo-instruct", "completion", (7, 5, 0, 0), {}),
    *_case("responses", lambda c: c.responses, "create", {"model": "gpt-5-mini", "input": "Where is my order?"},
           RESPONSES_USAGE, "gpt-5-mini-2025-08-07", "response", (2048, 410, 1536, 384), {}),
    *_case("beta-responses", lambda c: c.beta.responses, "create", {"model": "gpt-5-mini", "input": "Where is my order?"},
           RESPONSES_USAGE, "gpt-5-mini-2025-08-07", "response", (2048, 410, 1536, 384), {}),
    *_case("responses-compact", lambda c: c.responses, "compact",
           {"model": "gpt-5-mini", "input": [{"role": "user", "content": "Where is my order?"}]},
           RESPONSES_USAGE, "gpt-5-mini", "response_compaction", (2048, 410, 1536, 384)),  # names no model
    *_case("embeddings", lambda c: c.embeddings, "create",
           {"model": "text-embedding-3-small", "input": ["Where is my order?", "How do returns work?"]},
           EMBEDDINGS_USAGE, "text-embedding-3-small", "embedding", (8, 0, 0, 0)),
    *_case("images-generate", lambda c: c.images, "generate",
           {"model": "gpt-image-1", "prompt": "A parcel on a doorstep", "quality": "high", "size": "1024x1024"},
           IMAGE_USAGE, "gpt-image-1", "image_generation", (50, 4160, 0, 0), {"partial_images": 2}),
    *_case("images-edit", lambda c: c.images, "edit", {"model": "gpt-image-1", "image": IMAGE, "prompt": "Add a red bow"},
           IMAGE_EDIT_USAGE, "gpt-image-1", "image_edit", (350, 4160, 0, 0), {"partial_images": 2}),
    *_case("transcriptions", lambda c: c.audio.transcriptions, "create", {"model": "gpt-4o-transcribe", "file": AUDIO},
           TRANSCRIPTION_USAGE, "gpt-4o-transcribe", "transcription", (14, 45, 0, 0), {}),
]


def make(aio: bool, **kwargs: Any) -> Any:
    return (openai.AsyncOpenAI if aio else openai.OpenAI)(api_key="sk-test", **kwargs)


async def run_case(client: Any, case: Case, mode: str) -> Any:
    """Call the case's method the way ``mode`` says and read the answer completely."""
    resource = case.resource(client)
    if mode == "plain":
        return await settle(getattr(resource, case.method)(**case.kwargs))
    if mode == "raw":
        raw = await settle(getattr(resource.with_raw_response, case.method)(**case.kwargs))
        assert raw.headers["x-request-id"] in ("req_123", "req_stream")
        return await settle(raw.parse())
    manager = getattr(resource.with_streaming_response, case.method)(**case.kwargs)
    return await within(manager, lambda r: r.iter_lines() if case.streamed else r.parse())


@pytest.mark.parametrize("aio", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize("mode", ["plain", "raw", "streaming_response"])
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_every_method_is_metered_once_with_the_providers_counts(meter, router, case, mode, aio):
    fake = FakeOpenAI(usage=case.usage, model=case.answers_as)
    fake.mount_all(router)
    client = meter.wrap(make(aio))
    answer = asyncio.run(run_case(client, case, mode))
    assert answer  # the caller got their answer (checked against the bare client in test_openai_parity.py)
    [event] = meter.events()
    assert (event.input_tokens, event.output_tokens, event.cached_input_tokens, event.reasoning_tokens) == case.counts
    assert event.event_type == case.event_type and event.provider == "openai"
    assert event.model == case.answers_as and event.requested_model == case.kwargs["model"]
    assert event.usage_status == "reported" and event.status == "ok" and event.billable
    assert event.streamed is case.streamed and event.attempts == 1
    assert isinstance(event.cost_usd, Decimal) and event.cost_usd > 0 and event.price_status == "priced"
    # Only chat and legacy completions streams need (and get) the usage request.
    injected = case.streamed and case.event_type in ("chat_completion", "completion")
    assert ("stream_options" in fake.requests[-1]) is injected


# -- counting rules, priced by hand ------------------------------------------------------------------------------
def test_responses_cached_and_reasoning_tokens_are_inside_input_and_output(meter, router):
    FakeOpenAI(usage=RESPONSES_USAGE, model="gpt-5-mini-2025-08-07").mount_all(router)
    meter.wrap(make(False)).responses.create(model="gpt-5-mini", input="Where is my order?")
    [event] = meter.events()
    assert event.total_tokens == 2458  # 2048 + 410: cached and reasoning are not added again
    # gpt-5-mini: $0.25/M input, $0.025/M cached input, $2.00/M output (reasoning is output).
    assert event.cost_usd == (Decimal(512) * Decimal("0.25") + Decimal(1536) * Decimal("0.025")
                              + Decimal(410) * Decimal(2)) / 10**6 == Decimal("0.0009864")


def test_image_tokens_are_priced_at_the_models_token_rates(meter, router):
    FakeOpenAI(usage=IMAGE_EDIT_USAGE, model="gpt-image-1").mount_all(router)
    meter.wrap(make(False)).images.edit(model="gpt-image-1", image=IMAGE, prompt="Add a red bow")
    [event] = meter.events()
    # gpt-image-1: $5/M input, $40/M output. The table has no separate image-input rate (docs/providers.md).
    assert event.cost_usd == (Decimal(350) * 5 + Decimal(4160) * 40) / 10**6


def test_whisper_duration_usage_is_recorded_without_tokens_or_a_made_up_cost(meter, router):
    FakeOpenAI(usage={"type": "duration", "seconds": 3.2}, model="whisper-1").mount_all(router)
    text = meter.wrap(make(False)).audio.transcriptions.create(model="whisper-1", file=AUDIO)
    assert text.usage.seconds == 3.2
    [event] = meter.events()
    assert event.usage_status == "reported" and event.total_tokens == 0
    assert event.cost_usd is None and event.price_status == "unpriced"


def test_plain_text_transcription_has_no_usage_and_no_invented_cost(meter, router, sdk_log):
    FakeOpenAI(usage=TRANSCRIPTION_USAGE).mount_all(router)
    text = meter.wrap(make(False)).audio.transcriptions.create(model="gpt-4o-transcribe", file=AUDIO,
                                                              response_format="text")
    assert text.startswith("Your order ships today.")
    [event] = meter.events()
    assert event.usage_status == "estimated" and event.total_tokens == 0
    assert event.cost_usd is None and event.billable
    assert meter.faults == 0 and not [r for r in sdk_log.records if r.levelname == "ERROR"]


BAD_USAGE = [
    ("responses", {**RESPONSES_USAGE, "input_tokens": 1000}, "exceeds input_tokens"),
    ("responses", {**RESPONSES_USAGE, "output_tokens": -3}, "output_tokens=-3"),
    ("responses", {**RESPONSES_USAGE, "output_tokens_details": {"reasoning_tokens": "384"}}, "reasoning_tokens=<text of 3 characters>"),
    ("responses", {**RESPONSES_USAGE, "output_tokens": 100}, "reasoning_tokens exceeds output_tokens"),
    ("embeddings", {"prompt_tokens": -8, "total_tokens": -8}, "prompt_tokens=-8"),
    ("images", {**IMAGE_USAGE, "input_tokens": 50.0}, "input_tokens=50.0"),
    ("transcriptions", {**TRANSCRIPTION_USAGE, "output_tokens": "45"}, "output_tokens=<text of 2 characters>"),
    ("chat", {**USAGE, "prompt_tokens_details": "1024"}, "prompt_tokens_details=<text of 4 characters>"),
]
CALLS = {
    "responses": lambda c, **kw: c.responses.create(model="gpt-5-mini", input="Where is my order?", **kw),
    "embeddings": lambda c, **kw: c.embeddings.create(model="text-embedding-3-small", input="Where is my order?", **kw),
    "images": lambda c, **kw: c.images.generate(model="gpt-image-1", prompt="A parcel", **kw),
    "transcriptions": lambda c, **kw: c.audio.transcriptions.create(model="gpt-4o-transcribe", file=AUDIO, **kw),
    "chat": lambda c, **kw: c.chat.completions.create(model="gpt-4.1-mini", messages=MESSAGES, **kw),
}


BAD_CASES = [(*bad, streamed) for bad in BAD_USAGE for streamed in (False, True) if not (streamed and bad[0] == "embeddings")]


@pytest.mark.parametrize(("kind", "usage", "problem", "streamed"), BAD_CASES,
                         ids=[f"{b[0]}-{b[2][:24]}-{'stream' if b[3] else 'body'}" for b in BAD_CASES])
def test_impossible_usage_is_flagged_with_what_was_received_never_raised(meter, router, kind, usage, problem, streamed):
    FakeOpenAI(usage=usage).mount_all(router)
    answer = asyncio.run(settle(CALLS[kind](meter.wrap(make(False)), **({"stream": True} if streamed else {}))))
    assert answer  # the caller's call succeeded
    [event] = meter.events()
    assert event.usage_status == "invalid" and problem in event.usage_problem
    assert event.total_tokens == 0 and event.cost_usd is None and event.status == "ok"
    assert meter.faults == 0


# -- SDK helpers -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("aio", [False, True], ids=["sync", "async"])
def test_chat_parse_and_stream_helpers(meter, router, aio):
    from pydantic import BaseModel

    class Eta(BaseModel):
        eta: str

    fake = FakeOpenAI(words=['{"eta"', ':"', "today", '"}'])
    fake.mount_all(router)
    client = meter.wrap(make(aio))

    async def scenario():
        parsed = await settle(client.chat.completions.parse(model="gpt-4.1-mini", messages=MESSAGES, response_format=Eta))
        manager = client.chat.completions.stream(model="gpt-4.1-mini", messages=MESSAGES, response_format=Eta)
        events = await within(manager, lambda s: s)
        return parsed, events

    parsed, events = asyncio.run(scenario())
    assert parsed.choices[0].message.parsed == Eta(eta="today")
    assert events[-1].type == "content.done" and events[-1].parsed == Eta(eta="today")
    assert fake.requests[-1]["stream_options"] == {"include_usage": True}
    assert [(e.event_type, e.streamed, e.input_tokens, e.reasoning_tokens) for e in meter.events()] == [
        ("chat_completion", False, 1200, 64), ("chat_completion", True, 1200, 64)]


@pytest.mark.parametrize("aio", [False, True], ids=["sync", "async"])
def test_responses_parse_and_stream_helpers_never_send_stream_options(meter, router, aio):
    from pydantic import BaseModel

    class Eta(BaseModel):
        eta: str

    fake = FakeOpenAI(usage=RESPONSES_USAGE, model="gpt-5-mini-2025-08-07", words=['{"eta"', ':"', "today", '"}'])
    fake.mount_all(router)
    client = meter.wrap(make(aio))

    async def scenario():
        parsed = await settle(client.responses.parse(model="gpt-5-mini", input="Where is my order?", text_format=Eta))
        manager = client.responses.stream(model="gpt-5-mini", input="Where is my order?", text_format=Eta)

        async def read(stream):
            events = await settle(stream)
            final = await settle(stream.get_final_response())
            return events, final

        return parsed, await within(manager, read)

    parsed, (events, final) = asyncio.run(scenario())
    assert parsed.output_parsed == Eta(eta="today") and final.output_parsed == Eta(eta="today")
    assert events[-1].type == "response.completed" and final.usage.output_tokens_details.reasoning_tokens == 384
    assert all("stream_options" not in body for body in fake.requests)
    assert [(e.event_type, e.streamed, e.status, e.output_tokens, e.reasoning_tokens) for e in meter.events()] == [
        ("response", False, "ok", 410, 384), ("response", True, "ok", 410, 384)]


# -- what is not metered, and what cannot be wrapped -------------------------------------------------------------
def test_free_and_usage_less_endpoints_pass_through_without_events(meter, router):
    import httpx

    router.post("https://api.openai.com/v1/moderations").mock(return_value=httpx.Response(200, json={
        "id": "modr-970d409ef3bef3b70c73d8232df86e7d", "model": "omni-moderation-latest", "results": []}))
    router.post("https://api.openai.com/v1/audio/speech").mock(return_value=httpx.Response(
        200, content=b"ID3\x04\x00" + b"\x00" * 32, headers={"content-type": "audio/mpeg"}))
    client = meter.wrap(make(False))
    assert client.moderations.create(input="hello").model == "omni-moderation-latest"
    assert client.audio.speech.create(model="gpt-4o-mini-tts", voice="alloy", input="Hello").content.startswith(b"ID3")
    assert meter.events() == []


@pytest.mark.parametrize("thing", [
    lambda: openai.OpenAI(api_key="sk-test").chat.completions,  # a resource, not the client
    lambda: openai.OpenAI,  # the class
    lambda: __import__("httpx2").Client(),
], ids=["resource", "class", "http-client"])
def test_wrapping_anything_else_is_a_clear_type_error(meter, thing):
    obj = thing()
    with pytest.raises(TypeError) as info:
        meter.wrap(obj)
    message = str(info.value)
    assert "openai.OpenAI" in message and "openai.AsyncAzureOpenAI" in message  # names what is supported
    assert (type(obj).__qualname__ if not isinstance(obj, type) else "type") in message  # and what it got


def test_cumulative_usage_on_every_chunk_is_read_to_the_last_and_no_choice_is_hidden(meter, router):
    """vLLM with ``continuous_usage_stats``: every chunk carries the running usage, choices included."""
    import httpx

    from metricaos_sdk.testing import chat_chunk, sse

    model = "meta-llama/Llama-3.1-8B-Instruct"
    words = ["Your", " order", " ships"]
    chunks = [chat_chunk(model=model, delta={"content": w}, usage={"prompt_tokens": 12, "completion_tokens": i + 1,
                                                                   "total_tokens": 13 + i}) for i, w in enumerate(words)]
    chunks.append(chat_chunk(model=model, delta=None, usage={"prompt_tokens": 12, "completion_tokens": 4, "total_tokens": 16}))
    base = "http://vllm.internal:8000/v1"
    router.post(f"{base}/chat/completions").mock(return_value=httpx.Response(
        200, content=sse([*chunks, "[DONE]"]), headers={"content-type": "text/event-stream"}))
    client = meter.wrap(openai.OpenAI(api_key="EMPTY", base_url=base))
    received = list(client.chat.completions.create(model=model, messages=MESSAGES, stream=True))
    assert ["".join(c.delta.content for c in chunk.choices) for chunk in received] == words  # usage-only chunk cut
    assert [chunk.usage.completion_tokens for chunk in received] == [1, 2, 3]  # as the server sent them
    [event] = meter.events()
    assert (event.input_tokens, event.output_tokens, event.usage_status) == (12, 4, "reported")


def test_stream_options_in_extra_body_count_as_set(meter, router):
    fake = FakeOpenAI()
    fake.mount(router)
    client = meter.wrap(make(False))
    chunks = list(client.chat.completions.create(model="gpt-4.1-mini", messages=MESSAGES, stream=True,
                                                 extra_body={"stream_options": {"include_usage": True}}))
    assert fake.requests[-1]["stream_options"] == {"include_usage": True}
    assert chunks[-1].usage.prompt_tokens == 1200  # the caller asked: they see the usage chunk
    assert meter.events()[0].usage_status == "reported"
