"""Surface preservation: the same scenarios through the bare and the wrapped client, sync and async.

What the caller sees must be identical: return types, every chunk and helper event (as ``to_dict()``, so even
fields the server merely sent as null count), exceptions (type, status, body, message), headers through
``with_raw_response``, bytes through ``with_streaming_response``, and ``with_options()`` / ``copy()``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import openai
import pytest
from pydantic import BaseModel

from tests.fake_openai import (
    COMPLETIONS_USAGE,
    EMBEDDINGS_USAGE,
    IMAGE_USAGE,
    RESPONSES_USAGE,
    TRANSCRIPTION_USAGE,
    FakeOpenAI,
    settle,
    within,
)

MESSAGES = [{"role": "user", "content": "Where is my order?"}]
AUDIO = ("where.wav", b"RIFF\x24\x00\x00\x00WAVEfmt \x10\x00\x00\x00", "audio/wav")


class Eta(BaseModel):
    eta: str


def view(value: Any) -> Any:
    """What the caller sees, in a comparable form: the type and every field the SDK set."""
    if isinstance(value, (list, tuple)):
        return [view(v) for v in value]
    if isinstance(value, BaseModel):
        # warnings=False: the SDK's parsed generics (``parsed: Eta``) warn when dumped, in both clients alike.
        dump = value.to_dict(warnings=False) if hasattr(value, "to_dict") else value.model_dump(warnings=False)
        return type(value).__qualname__, dump, sorted(value.model_fields_set)
    return type(value).__qualname__, value


def raised(exc: openai.APIError) -> tuple[Any, ...]:
    return ("raised", type(exc).__qualname__, getattr(exc, "status_code", None), exc.body, str(exc),
            getattr(exc, "request_id", None))


async def caught(scenario: Any, client: Any) -> Any:
    try:
        return view(await scenario(client))
    except openai.APIError as exc:
        return raised(exc)


def chat(c, **kw):
    return c.chat.completions.create(model="gpt-4.1-mini", messages=MESSAGES, **kw)


async def raw_headers(c, stream: bool):
    raw = await settle(c.chat.completions.with_raw_response.create(model="gpt-4.1-mini", messages=MESSAGES, stream=stream))
    # Servers stream chat with chunked encoding; our mock sends a content-length, which differs with the body.
    headers = {k: v for k, v in raw.headers.items() if k != "content-length"}
    return raw.status_code, headers, type(raw).__qualname__, view(await settle(raw.parse()))


async def helper_events(manager, final):
    async def read(stream):
        events = await settle(stream)
        return view(events), view(await settle(getattr(stream, final)()))

    return await within(manager, read)


# name -> (fake settings, scenario). Each scenario returns what the caller saw.
SCENARIOS: dict[str, tuple[dict[str, Any], Any]] = {
    "chat": ({}, lambda c: settle(chat(c))),
    "chat-stream": ({}, lambda c: settle(chat(c, stream=True))),
    # One event per network read, as servers send them: the tap's per-event path, not its splitting one.
    "chat-stream-event-by-event": ({"chunked": True}, lambda c: settle(chat(c, stream=True))),
    "chat-stream-caller-asked-usage": ({}, lambda c: settle(chat(c, stream=True, stream_options={"include_usage": True}))),
    "chat-stream-caller-refused-usage": ({}, lambda c: settle(chat(c, stream=True, stream_options={"include_usage": False}))),
    "chat-parse": ({"words": ['{"eta":', '"today"}']}, lambda c: settle(c.chat.completions.parse(
        model="gpt-4.1-mini", messages=MESSAGES, response_format=Eta))),
    "chat-stream-helper": ({"words": ['{"eta":', '"today"}']}, lambda c: helper_events(c.chat.completions.stream(
        model="gpt-4.1-mini", messages=MESSAGES, response_format=Eta), "get_final_completion")),
    "completions-stream": ({"usage": COMPLETIONS_USAGE, "model": "gpt-3.5-turbo-instruct"}, lambda c: settle(
        c.completions.create(model="gpt-3.5-turbo-instruct", prompt="Say where my order is", stream=True))),
    "responses": ({"usage": RESPONSES_USAGE}, lambda c: settle(c.responses.create(model="gpt-5-mini", input="Hi"))),
    "responses-stream": ({"usage": RESPONSES_USAGE}, lambda c: settle(
        c.responses.create(model="gpt-5-mini", input="Hi", stream=True))),
    "responses-parse": ({"usage": RESPONSES_USAGE, "words": ['{"eta":', '"today"}']}, lambda c: settle(
        c.responses.parse(model="gpt-5-mini", input="Hi", text_format=Eta))),
    "responses-stream-helper": ({"usage": RESPONSES_USAGE, "words": ['{"eta":', '"today"}']}, lambda c: helper_events(
        c.responses.stream(model="gpt-5-mini", input="Hi", text_format=Eta), "get_final_response")),
    "embeddings": ({"usage": EMBEDDINGS_USAGE}, lambda c: settle(
        c.embeddings.create(model="text-embedding-3-small", input=["Where is my order?", "Returns?"]))),
    "images-stream": ({"usage": IMAGE_USAGE}, lambda c: settle(
        c.images.generate(model="gpt-image-1", prompt="A parcel", stream=True, partial_images=2))),
    "transcription": ({"usage": TRANSCRIPTION_USAGE}, lambda c: settle(
        c.audio.transcriptions.create(model="gpt-4o-transcribe", file=AUDIO))),
    "transcription-text": ({"usage": TRANSCRIPTION_USAGE}, lambda c: settle(
        c.audio.transcriptions.create(model="gpt-4o-transcribe", file=AUDIO, response_format="text"))),
    "raw-response": ({}, lambda c: raw_headers(c, stream=False)),
    "raw-response-stream": ({}, lambda c: raw_headers(c, stream=True)),
    "streaming-response-lines": ({}, lambda c: within(
        c.chat.completions.with_streaming_response.create(model="gpt-4.1-mini", messages=MESSAGES, stream=True),
        lambda r: r.iter_lines())),
    "streaming-response-lines-event-by-event": ({"chunked": True}, lambda c: within(
        c.chat.completions.with_streaming_response.create(model="gpt-4.1-mini", messages=MESSAGES, stream=True),
        lambda r: r.iter_lines())),
    "responses-stream-event-by-event": ({"usage": RESPONSES_USAGE, "chunked": True}, lambda c: settle(
        c.responses.create(model="gpt-5-mini", input="Hi", stream=True))),
    # CRLF line endings: events split on \r\n\r\n, in one piece and one event per read.
    "chat-stream-crlf": ({"crlf": True}, lambda c: settle(chat(c, stream=True))),
    "chat-stream-crlf-event-by-event": ({"crlf": True, "chunked": True}, lambda c: settle(chat(c, stream=True))),
    "responses-stream-crlf-event-by-event": ({"usage": RESPONSES_USAGE, "crlf": True, "chunked": True}, lambda c: settle(
        c.responses.create(model="gpt-5-mini", input="Hi", stream=True))),
    "bad-request": ({"statuses": [400]}, lambda c: settle(chat(c))),
    "retried-then-ok": ({"statuses": [500, 503]}, lambda c: settle(chat(c))),
    "retries-exhausted": ({"statuses": [503, 503, 503]}, lambda c: settle(chat(c, stream=True))),
}


def make(aio: bool) -> Any:
    client = (openai.AsyncOpenAI if aio else openai.OpenAI)(api_key="sk-test", max_retries=2)
    client._calculate_retry_timeout = lambda *a, **k: 0.0  # no sleeping between retries in tests
    return client


def fake_for(settings: dict[str, Any], router: Any) -> FakeOpenAI:
    fake = FakeOpenAI(**{k: v for k, v in settings.items() if k not in ("statuses", "chunked", "crlf")})
    fake.chunked = settings.get("chunked", False)
    fake.crlf = settings.get("crlf", False)
    fake.mount_all(router)
    return fake


@pytest.mark.parametrize("aio", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize("name", list(SCENARIOS))
def test_the_caller_sees_exactly_what_the_bare_client_shows(meter, router, name, aio):
    settings, scenario = SCENARIOS[name]
    fake = fake_for(settings, router)
    fake.statuses = list(settings.get("statuses", []))
    bare = asyncio.run(caught(scenario, make(aio)))
    fake.statuses = list(settings.get("statuses", []))
    wrapped = asyncio.run(caught(scenario, meter.wrap(make(aio))))
    assert wrapped == bare
    events = meter.events()
    assert len(events) == 1  # and the wrapped one was metered, once
    if settings.get("chunked") or settings.get("crlf"):
        assert events[0].usage_status == "reported" and events[0].output_tokens > 0


@pytest.mark.parametrize("aio", [False, True], ids=["sync", "async"])
def test_connection_errors_and_timeouts_are_raised_as_by_the_bare_client(meter, router, aio):
    route = router.post("https://api.openai.com/v1/chat/completions")

    def run(client, error):
        route.mock(side_effect=error)
        return asyncio.run(caught(lambda c: settle(chat(c)), client))

    for error in (httpx.ConnectError("connection refused"), httpx.ReadTimeout("timed out")):
        assert run(meter.wrap(make(aio)), error) == run(make(aio), error)
    events = meter.events()
    assert [(e.status, e.error_type, e.attempts, e.total_tokens) for e in events] == [
        ("error", "APIConnectionError", 3, 0), ("error", "APITimeoutError", 3, 0)]


@pytest.mark.parametrize("aio", [False, True], ids=["sync", "async"])
def test_copies_are_the_bare_clients_copies_and_stay_metered(meter, router, aio):
    fake_for({}, router)
    bare, wrapped = make(aio), meter.wrap(make(aio))
    for copy in (lambda c: c.with_options(timeout=5.0, max_retries=0), lambda c: c.copy(default_headers={"x-team": "a"})):
        bare_copy, wrapped_copy = copy(bare), copy(wrapped)
        assert type(wrapped_copy) is type(bare_copy) and wrapped_copy is not wrapped
        assert (wrapped_copy.timeout, wrapped_copy.max_retries) == (bare_copy.timeout, bare_copy.max_retries)
        assert asyncio.run(caught(lambda c: settle(chat(c, stream=True)), wrapped_copy)) == \
            asyncio.run(caught(lambda c: settle(chat(c, stream=True)), bare_copy))
        # A copy of a copy, too.
        asyncio.run(settle(chat(wrapped_copy.with_options(max_retries=1))))
    assert [e.streamed for e in meter.events()] == [True, False, True, False]
