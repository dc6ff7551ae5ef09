"""metricaos_sdk.testing: the simulated providers, through the real SDK clients wrapped by a real meter.

Every expected number is computed here from the simulators' documented rules (a token is a word; a message
adds 3), never copied from what they answered.
"""

from __future__ import annotations

import asyncio
import base64
import doctest
import gc
import inspect
import json
import re
import struct
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx2
import openai
import pytest

import metricaos_sdk.testing
from metricaos_sdk import MemorySink, Meter
from metricaos_sdk.testing import LiveStream, SimulatedAnthropic, SimulatedOpenAI

ROOT = Path(__file__).resolve().parents[1]
REPLY = "Your order ships today and arrives within three days."
SYSTEM = "You are a helpful support agent."
QUESTION = "Where is my order 1042?"
MESSAGES = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": QUESTION}]
CACHED, REASONING, CACHE_WRITE = 4, 5, 3
MODES = ["sync", "async"]


def words(text: str) -> int:
    return len(text.split())


PROMPT = sum(words(m["content"]) + 3 for m in MESSAGES)  # chat and Anthropic: a message's words + 3
OUTPUT = words(REPLY)
DELTAS = [(" " if i else "") + w for i, w in enumerate(REPLY.split(" "))]


@pytest.fixture
def sink() -> MemorySink:
    return MemorySink()


@pytest.fixture
def meter(sink: MemorySink) -> Iterator[Meter]:
    m = Meter(sink=sink)
    yield m
    m.close()


def openai_sim(**kwargs: Any) -> SimulatedOpenAI:
    return SimulatedOpenAI(reply=REPLY, cached_tokens=CACHED, reasoning_tokens=REASONING, **kwargs)


def anthropic_sim(**kwargs: Any) -> SimulatedAnthropic:
    return SimulatedAnthropic(reply=REPLY, cached_tokens=CACHED, cache_write_tokens=CACHE_WRITE, **kwargs)


async def settle(value: Any) -> Any:
    """Await ``value`` if need be, then read a stream to the end (a list): one scenario, both clients."""
    if inspect.isawaitable(value):
        value = await value
    if hasattr(value, "__aiter__"):
        return [item async for item in value]
    if isinstance(value, (openai.Stream, anthropic.Stream)):
        return list(value)
    return value


def run(meter: Meter, sim: SimulatedOpenAI | SimulatedAnthropic, mode: str, scenario: Callable[[Any], Any],
        **client_options: Any) -> Any:
    client = sim.client(**client_options) if mode == "sync" else sim.async_client(**client_options)
    return asyncio.run(settle(scenario(meter.wrap(client))))


def only_event(meter: Meter) -> Any:
    meter.flush()
    [event] = meter.events()
    return event


def assert_recorded(event: Any, *, endpoint: str, input: int, output: int, cached: int = 0, reasoning: int = 0,
                    cache_write: int = 0, streamed: bool) -> None:
    assert (event.status, event.usage_status, event.usage_problem) == ("ok", "reported", None)
    assert (event.endpoint, event.streamed, event.attempts, event.http_status) == (endpoint, streamed, 1, 200)
    assert (event.input_tokens, event.output_tokens, event.cached_input_tokens, event.reasoning_tokens,
            event.cache_write_tokens) == (input, output, cached, reasoning, cache_write)
    assert event.total_tokens == input + output


# -- chat completions -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", MODES)
def test_chat_plain(meter: Meter, mode: str) -> None:
    r = run(meter, openai_sim(), mode, lambda c: c.chat.completions.create(model="gpt-4.1-mini", messages=MESSAGES))
    assert isinstance(r, openai.types.chat.ChatCompletion)
    assert r.choices[0].message.content == REPLY and r.choices[0].finish_reason == "stop"
    u = r.usage
    assert (u.prompt_tokens, u.completion_tokens, u.total_tokens) == (PROMPT, OUTPUT + REASONING, PROMPT + OUTPUT + REASONING)
    assert (u.prompt_tokens_details.cached_tokens, u.completion_tokens_details.reasoning_tokens) == (CACHED, REASONING)
    assert_recorded(only_event(meter), endpoint="/chat/completions", input=PROMPT, output=OUTPUT + REASONING,
                    cached=CACHED, reasoning=REASONING, streamed=False)


@pytest.mark.parametrize("include_usage", [False, True])
@pytest.mark.parametrize("mode", MODES)
def test_chat_stream(meter: Meter, mode: str, include_usage: bool) -> None:
    options = {"stream_options": {"include_usage": True}} if include_usage else {}
    chunks = run(meter, openai_sim(), mode, lambda c: c.chat.completions.create(
        model="gpt-4.1-mini", messages=MESSAGES, stream=True, **options))
    assert all(isinstance(c, openai.types.chat.ChatCompletionChunk) for c in chunks)
    content = [c for c in chunks if c.choices]
    assert "".join(c.choices[0].delta.content or "" for c in content) == REPLY
    assert content[0].choices[0].delta.role == "assistant" and content[-1].choices[0].finish_reason == "stop"
    assert all(c.usage is None for c in content)
    if include_usage:  # asked for: the usage-only chunk, last
        assert len(chunks) == len(content) + 1 and chunks[-1].choices == []
        assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (PROMPT, OUTPUT + REASONING)
    else:  # the meter asked for it on the wire and hid the chunk: the caller sees what it would have
        assert len(chunks) == len(content) == len(DELTAS) + 2
    assert_recorded(only_event(meter), endpoint="/chat/completions", input=PROMPT, output=OUTPUT + REASONING,
                    cached=CACHED, reasoning=REASONING, streamed=True)


def test_chat_stream_carries_usage_exactly_when_asked() -> None:
    # On the wire, as the API does: asked, every chunk has "usage": null and a usage-only chunk comes last;
    # not asked, no chunk mentions usage.
    sim = openai_sim()
    for asked in (False, True):
        body = {"model": "gpt-4.1-mini", "messages": MESSAGES, "stream": True,
                **({"stream_options": {"include_usage": True}} if asked else {})}
        data = [json.loads(p[len(b"data: "):]) for p in served(sim, "/chat/completions", body)[:-1]]
        if asked:
            *content, last = data
            assert last["choices"] == [] and last["usage"]["prompt_tokens"] == PROMPT
            assert all("usage" in c and c["usage"] is None for c in content)
        else:
            assert all("usage" not in c for c in data)
        assert len([c for c in data if c["choices"]]) == len(DELTAS) + 2


# -- Responses ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", MODES)
def test_responses_plain(meter: Meter, mode: str) -> None:
    r = run(meter, openai_sim(), mode, lambda c: c.responses.create(model="gpt-4.1-mini", input=QUESTION))
    assert isinstance(r, openai.types.responses.Response)
    assert r.output_text == REPLY and r.status == "completed"
    prompt = words(QUESTION) + 3  # a string input is one message
    u = r.usage
    assert (u.input_tokens, u.output_tokens, u.total_tokens) == (prompt, OUTPUT + REASONING, prompt + OUTPUT + REASONING)
    assert (u.input_tokens_details.cached_tokens, u.output_tokens_details.reasoning_tokens) == (CACHED, REASONING)
    assert_recorded(only_event(meter), endpoint="/responses", input=prompt, output=OUTPUT + REASONING, cached=CACHED,
                    reasoning=REASONING, streamed=False)


@pytest.mark.parametrize("mode", MODES)
def test_responses_stream(meter: Meter, mode: str) -> None:
    items = [{"role": "user", "content": QUESTION},
             {"role": "user", "content": [{"type": "input_text", "text": "It was due Monday."}]}]
    events = run(meter, openai_sim(), mode, lambda c: c.responses.create(
        model="gpt-4.1-mini", input=items, instructions=SYSTEM, stream=True))
    prompt = words(QUESTION) + 3 + words("It was due Monday.") + 3 + words(SYSTEM) + 3  # instructions: one more
    types = [e.type for e in events]
    assert types[:4] == ["response.created", "response.in_progress", "response.output_item.added",
                         "response.content_part.added"]
    assert types[-1] == "response.completed" and types.count("response.output_text.delta") == len(DELTAS)
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert [e.delta for e in events if e.type == "response.output_text.delta"] == DELTAS
    completed = events[-1].response
    assert completed.output_text == REPLY and (completed.usage.input_tokens, completed.usage.output_tokens) == (
        prompt, OUTPUT + REASONING)
    assert events[0].response.usage is None
    assert_recorded(only_event(meter), endpoint="/responses", input=prompt, output=OUTPUT + REASONING, cached=CACHED,
                    reasoning=REASONING, streamed=True)


def test_responses_stream_has_event_lines() -> None:
    body = {"model": "gpt-4.1-mini", "input": QUESTION, "stream": True}
    pieces = served(openai_sim(), "/responses", body)
    for piece in pieces:
        name, data = re.fullmatch(rb"event: (\S+)\ndata: (.*)\n\n", piece, re.S).groups()  # type: ignore[union-attr]
        assert json.loads(data)["type"] == name.decode()


# -- embeddings -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("encoding", ["default", "float"])
@pytest.mark.parametrize("mode", MODES)
def test_embeddings(meter: Meter, mode: str, encoding: str) -> None:
    inputs = [QUESTION, "Do you ship to Norway?"]
    sim = openai_sim()
    options = {"encoding_format": "float"} if encoding == "float" else {}
    r = run(meter, sim, mode, lambda c: c.embeddings.create(model="text-embedding-3-small", input=inputs,
                                                            dimensions=8, **options))
    assert sim.requests[-1]["encoding_format"] == ("float" if encoding == "float" else "base64")  # the SDK's default
    assert isinstance(r, openai.types.CreateEmbeddingResponse) and r.model == "text-embedding-3-small"
    assert [d.index for d in r.data] == [0, 1]
    assert all(len(d.embedding) == 8 and all(isinstance(x, float) for x in d.embedding) for d in r.data)
    assert r.data[0].embedding != r.data[1].embedding
    assert abs(sum(x * x for x in r.data[0].embedding) - 1) < 1e-5  # unit vectors, as the API returns
    tokens = sum(words(text) for text in inputs)  # no per-message overhead
    assert (r.usage.prompt_tokens, r.usage.total_tokens) == (tokens, tokens)
    assert_recorded(only_event(meter), endpoint="/embeddings", input=tokens, output=0, streamed=False)


def test_embeddings_are_the_same_vectors_in_both_encodings() -> None:
    sim = openai_sim()
    answers = {}
    for encoding in ("base64", "float"):
        body = {"model": "text-embedding-3-small", "input": QUESTION, "encoding_format": encoding}
        answers[encoding] = sim(httpx2.Request("POST", "https://sim.invalid/v1/embeddings", json=body)).json()
    raw = base64.b64decode(answers["base64"]["data"][0]["embedding"])
    assert list(struct.unpack(f"<{len(raw) // 4}f", raw)) == answers["float"]["data"][0]["embedding"]
    assert len(answers["float"]["data"][0]["embedding"]) == 1536  # the model's size unless dimensions= says
    assert answers["float"]["usage"] == {"prompt_tokens": words(QUESTION), "total_tokens": words(QUESTION)}


# -- Anthropic ------------------------------------------------------------------------------------------------
ANTHROPIC_MESSAGES = [{"role": "user", "content": QUESTION}]
ANTHROPIC_PROMPT = words(QUESTION) + 3 + words(SYSTEM) + 3  # the system prompt counts as one more message


def create_message(c: Any, **options: Any) -> Any:
    return c.messages.create(model="claude-sonnet-4-6", max_tokens=256, system=SYSTEM, messages=ANTHROPIC_MESSAGES,
                             **options)


@pytest.mark.parametrize("mode", MODES)
def test_anthropic_plain(meter: Meter, mode: str) -> None:
    m = run(meter, anthropic_sim(), mode, create_message)
    assert isinstance(m, anthropic.types.Message)
    assert m.content[0].text == REPLY and m.stop_reason == "end_turn"
    # Anthropic reports three disjoint input counts; the meter's input_tokens is their sum.
    assert (m.usage.input_tokens, m.usage.cache_read_input_tokens, m.usage.cache_creation_input_tokens) == (
        ANTHROPIC_PROMPT - CACHED - CACHE_WRITE, CACHED, CACHE_WRITE)
    assert m.usage.output_tokens == OUTPUT
    assert_recorded(only_event(meter), endpoint="/v1/messages", input=ANTHROPIC_PROMPT, output=OUTPUT, cached=CACHED,
                    cache_write=CACHE_WRITE, streamed=False)


@pytest.mark.parametrize("mode", MODES)
def test_anthropic_stream(meter: Meter, mode: str) -> None:
    events = run(meter, anthropic_sim(), mode, lambda c: create_message(c, stream=True))
    assert [e.type for e in events] == ["message_start", "content_block_start", *["content_block_delta"] * len(DELTAS),
                                        "content_block_stop", "message_delta", "message_stop"]  # the SDK skips pings
    start, delta = events[0].message.usage, events[-2].usage
    assert (start.input_tokens, start.cache_read_input_tokens, start.output_tokens) == (
        ANTHROPIC_PROMPT - CACHED - CACHE_WRITE, CACHED, 1)  # output: a placeholder
    assert delta.output_tokens == OUTPUT  # cumulative
    assert [e.delta.text for e in events if e.type == "content_block_delta"] == DELTAS
    assert_recorded(only_event(meter), endpoint="/v1/messages", input=ANTHROPIC_PROMPT, output=OUTPUT, cached=CACHED,
                    cache_write=CACHE_WRITE, streamed=True)


def test_anthropic_stream_helper(meter: Meter) -> None:
    client = meter.wrap(anthropic_sim().client())
    with client.messages.stream(model="claude-sonnet-4-6", max_tokens=256, messages=ANTHROPIC_MESSAGES) as stream:
        assert "".join(stream.text_stream) == REPLY
        final = stream.get_final_message()
    assert final.usage.output_tokens == OUTPUT
    assert only_event(meter).input_tokens == words(QUESTION) + 3


def test_anthropic_client_without_anthropic_installed_says_how_to_get_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "anthropic", None)  # import anthropic raises ImportError
    with pytest.raises(ImportError, match=re.escape("pip install 'metricaos-sdk[anthropic]'")):
        SimulatedAnthropic().client()
    with pytest.raises(ImportError, match=re.escape("pip install 'metricaos-sdk[anthropic]'")):
        SimulatedAnthropic().async_client()
    # The handler itself needs no anthropic package.
    assert SimulatedAnthropic()(httpx2.Request("POST", "https://sim.invalid/v1/messages", json={
        "model": "claude-sonnet-4-6", "max_tokens": 8, "messages": ANTHROPIC_MESSAGES})).status_code == 200


# -- streams arrive in pieces ---------------------------------------------------------------------------------
STREAMS: dict[str, Callable[[Any], Any]] = {
    "chat": lambda c: c.chat.completions.create(model="gpt-4.1-mini", messages=MESSAGES, stream=True),
    "responses": lambda c: c.responses.create(model="gpt-4.1-mini", input=QUESTION, stream=True),
    "anthropic": lambda c: create_message(c, stream=True),
}


def simulator(api: str, **kwargs: Any) -> SimulatedOpenAI | SimulatedAnthropic:
    return anthropic_sim(**kwargs) if api == "anthropic" else openai_sim(**kwargs)


def served(sim: SimulatedOpenAI | SimulatedAnthropic, path: str, body: dict[str, Any]) -> list[bytes]:
    """The pieces the simulator's answer to ``body`` arrives in, read as a client reads them."""
    base = "https://sim.invalid" if path.startswith("/v1/") else "https://sim.invalid/v1"
    response = sim(httpx2.Request("POST", base + path, json=body))
    assert isinstance(response.stream, LiveStream) and "_content" not in vars(response)
    assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
    return list(response.stream)


@pytest.mark.parametrize("api", list(STREAMS))
@pytest.mark.parametrize("mode", MODES)
def test_a_stream_left_after_one_chunk_is_recorded_once_as_cancelled(meter: Meter, sink: MemorySink, api: str,
                                                                     mode: str) -> None:
    sim = simulator(api)

    def leave_sync() -> None:
        stream = STREAMS[api](meter.wrap(sim.client()))
        assert "_content" not in vars(stream.response)  # a live body, not one handed over already read
        for _ in stream:
            break

    async def leave_async() -> None:
        stream = await STREAMS[api](meter.wrap(sim.async_client()))
        assert "_content" not in vars(stream.response)
        async for _ in stream:
            break

    if mode == "sync":
        leave_sync()
    else:
        asyncio.run(leave_async())
    gc.collect()
    meter.flush()
    [event] = meter.events()
    assert (event.status, event.streamed, event.http_status, event.billable) == ("cancelled", True, 200, True)
    assert event.usage_status == "estimated"  # the usage was never received
    meter.close()
    assert len(list(sink.events())) == 1  # and only once


@pytest.mark.parametrize("api", list(STREAMS))
def test_streams_cut_anywhere_read_the_same(meter: Meter, api: str) -> None:
    whole = run(meter, simulator(api), "sync", STREAMS[api])
    cut = run(meter, simulator(api, piece_size=5), "sync", STREAMS[api])
    assert [c.to_dict() for c in cut] == [c.to_dict() for c in whole]
    meter.flush()
    first, second = meter.events()
    assert (second.status, second.usage_status, second.input_tokens, second.output_tokens) == (
        first.status, first.usage_status, first.input_tokens, first.output_tokens) == ("ok", "reported", *(
            (ANTHROPIC_PROMPT, OUTPUT) if api == "anthropic" else (PROMPT if api == "chat" else words(QUESTION) + 3,
                                                                    OUTPUT + REASONING)))


@pytest.mark.parametrize("api", list(STREAMS))
def test_one_event_per_read_by_default_and_piece_size_cuts_anywhere(api: str) -> None:
    path, body = {
        "chat": ("/chat/completions", {"model": "gpt-4.1-mini", "messages": MESSAGES, "stream": True}),
        "responses": ("/responses", {"model": "gpt-4.1-mini", "input": QUESTION, "stream": True}),
        "anthropic": ("/v1/messages", {"model": "claude-sonnet-4-6", "max_tokens": 8, "messages": ANTHROPIC_MESSAGES,
                                       "stream": True}),
    }[api]
    events = served(simulator(api), path, body)
    assert len(events) > len(DELTAS) and all(e.endswith(b"\n\n") and e.count(b"\n\n") == 1 for e in events)
    pieces = served(simulator(api, piece_size=7), path, body)
    assert all(len(p) <= 7 for p in pieces) and b"".join(pieces) == b"".join(events)
    # A handler that wraps a simulator may still read the whole body from .content.
    sim = simulator(api)
    response = sim(httpx2.Request("POST", ("https://sim.invalid" if api == "anthropic" else "https://sim.invalid/v1")
                                  + path, json=body))
    assert response.content == b"".join(events)


# -- failures -------------------------------------------------------------------------------------------------
CALLS: dict[str, Callable[[Any], Any]] = {
    "chat": lambda c: c.chat.completions.create(model="gpt-4.1-mini", messages=MESSAGES),
    "responses": lambda c: c.responses.create(model="gpt-4.1-mini", input=QUESTION),
    "embeddings": lambda c: c.embeddings.create(model="text-embedding-3-small", input=QUESTION, dimensions=8),
    "anthropic": create_message,
}


@pytest.mark.parametrize("api", list(CALLS))
@pytest.mark.parametrize("mode", MODES)
def test_fail_next_is_an_error_event_counting_the_sdk_retries(meter: Meter, api: str, mode: str) -> None:
    sim = simulator(api)
    sim.fail_next(3, 500)  # one more than the SDK's two retries
    errors = anthropic.InternalServerError if api == "anthropic" else openai.InternalServerError
    with pytest.raises(errors) as info:
        run(meter, sim, mode, CALLS[api], max_retries=2)
    if api == "anthropic":
        assert info.value.body == {"type": "error", "error": {"type": "api_error", "message": "simulated failure"}}
    else:
        assert info.value.body["message"] == "simulated failure"  # type: ignore[index]
    assert len(sim.requests) == 3
    event = only_event(meter)
    assert (event.status, event.attempts, event.http_status, event.billable) == ("error", 3, 500, False)
    assert (event.input_tokens, event.output_tokens) == (0, 0)


@pytest.mark.parametrize("api", ["chat", "anthropic"])
def test_fail_next_then_success_is_one_event(meter: Meter, api: str) -> None:
    sim = simulator(api)
    sim.fail_next(2, 529 if api == "anthropic" else 503)
    run(meter, sim, "sync", CALLS[api], max_retries=2)
    event = only_event(meter)
    assert (event.status, event.attempts, event.http_status) == ("ok", 3, 200)
    assert event.input_tokens == (ANTHROPIC_PROMPT if api == "anthropic" else PROMPT)
    assert len(sim.requests) == 3


def test_anthropic_error_types_follow_the_status() -> None:
    sim = SimulatedAnthropic()
    sim.fail_next(1, 429, retry_after=None)
    response = sim(httpx2.Request("POST", "https://sim.invalid/v1/messages", json={}))
    assert response.status_code == 429 and "retry-after-ms" not in response.headers
    assert response.json() == {"type": "error", "error": {"type": "rate_limit_error", "message": "simulated failure"}}
    sim.fail_next(1, 500)
    assert sim(httpx2.Request("POST", "https://sim.invalid/v1/messages", json={})).headers["retry-after-ms"] == "1"


def test_unknown_routes_are_404() -> None:
    for sim, url in [(SimulatedOpenAI(), "https://sim.invalid/v1/images/generations"),
                     (SimulatedAnthropic(), "https://sim.invalid/v1/complete")]:
        assert sim(httpx2.Request("POST", url, json={})).status_code == 404


# -- the documentation ----------------------------------------------------------------------------------------
def test_the_module_docstring_runs() -> None:
    result = doctest.testmod(metricaos_sdk.testing, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 5 and result.failed == 0


def test_every_python_block_of_the_testing_page_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "docs" / "testing.md").read_text(), re.S)
    assert len(blocks) >= 3
    namespace: dict[str, Any] = {"__name__": "docs_testing"}
    exec(compile("\n".join(blocks), "docs/testing.md", "exec"), namespace)


def test_public_names() -> None:
    names = ["SimulatedOpenAI", "SimulatedAnthropic", "sse", "chat_chunk", "chat_completion", "anthropic_message",
             "anthropic_stream_events", "aws_event_stream"]
    assert set(names) <= set(metricaos_sdk.testing.__all__)
    assert metricaos_sdk.testing.__all__ == sorted(metricaos_sdk.testing.__all__)
    for name in metricaos_sdk.testing.__all__:
        assert getattr(metricaos_sdk.testing, name).__doc__, name


def test_importing_the_helpers_needs_no_anthropic() -> None:
    code = ("import sys; sys.modules['anthropic'] = None\n"
            "from metricaos_sdk.testing import SimulatedAnthropic, SimulatedOpenAI\n"
            "SimulatedOpenAI().client().chat.completions.create(model='gpt-4.1-mini', messages=[])\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
