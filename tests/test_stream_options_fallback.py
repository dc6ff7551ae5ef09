"""An OpenAI-compatible server that refuses the ``stream_options`` we add: the call is sent once more as the
caller wrote it, the base URL is remembered, and usage is estimated (tiktoken over the text received)."""

from __future__ import annotations

import asyncio
import json

import openai
import pytest

from tests.fake_openai import FakeOpenAI, settle
from tests.tiktoken_support import o200k

MESSAGES = [{"role": "user", "content": "Where is my order?"}]
GATEWAY = "https://llm-gateway.internal.example/v1"
# What servers really answer (see the docstring of providers.openai.rejects_stream_options).
REFUSALS = {
    "gateway": {"error": {"message": "Unknown parameter: 'stream_options'. (request id: 20240806214436917505976hvsFC5y2)",
                          "type": "invalid_request_error", "param": "stream_options", "code": "unknown_parameter"}},
    "azure-2023": {"error": {"message": "Unrecognized request argument supplied: stream_options",
                             "type": "invalid_request_error", "param": None, "code": None}},
    "pydantic-server": {"object": "error", "type": "BadRequestError", "param": None, "code": 400,
                        "message": "[{'type': 'extra_forbidden', 'loc': ('body', 'stream_options'), "
                                   "'msg': 'Extra inputs are not permitted', 'input': {'include_usage': True}}]"},
}


def make(aio: bool, base_url: str = GATEWAY):
    return (openai.AsyncOpenAI if aio else openai.OpenAI)(api_key="sk-test", base_url=base_url, max_retries=0)


def stream(client):
    return client.chat.completions.create(model="gpt-4.1-mini", messages=MESSAGES, stream=True)


@pytest.mark.tiktoken
@pytest.mark.parametrize("aio", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize("refusal", list(REFUSALS), ids=list(REFUSALS))
def test_refused_stream_options_is_retried_once_without_and_remembered(meter, router, refusal, aio, sdk_log):
    fake = FakeOpenAI(usage=None)  # a server that never reports usage in streams
    fake.refuse_stream_options = REFUSALS[refusal]
    route = fake.mount(router, GATEWAY)
    bare = [c.to_dict() for c in asyncio.run(settle(stream(make(aio))))]
    client = meter.wrap(make(aio))

    async def twice():
        return [c.to_dict() for c in await settle(stream(client))], await settle(stream(client))

    first, _ = asyncio.run(twice())
    assert first == bare  # the caller sees what the bare client sees: no error, same chunks
    sent = fake.requests[1:]  # after the bare call
    assert [("stream_options" in body) for body in sent] == [True, False, False]  # refused once, then remembered
    assert route.call_count == 4
    events = meter.events()
    assert [e.attempts for e in events] == [2, 1]
    for event in events:
        assert event.status == "ok" and event.billable and event.usage_status == "estimated"
        assert event.http_status == 200 and event.error_type is None
        # Output: tiktoken over the text received ("Your order ships today."), not one token per event.
        assert event.output_tokens == len(o200k().encode("Your order ships today."))
        assert "output counted with tiktoken o200k_base" in event.usage_problem
    assert len([r for r in sdk_log.records if "refused stream_options" in r.getMessage()]) == 1


def test_other_servers_keep_getting_usage_requested(meter, router):
    refusing, other = FakeOpenAI(), FakeOpenAI()
    refusing.refuse_stream_options = REFUSALS["gateway"]
    refusing.mount(router, GATEWAY)
    other.mount(router)
    list(stream(meter.wrap(make(False))))
    list(stream(meter.wrap(openai.OpenAI(api_key="sk-test"))))
    assert other.requests[-1]["stream_options"] == {"include_usage": True}
    assert [e.usage_status for e in meter.events()] == ["estimated", "reported"]


def test_a_400_about_something_else_is_raised_untouched_and_not_retried(meter, router):
    fake = FakeOpenAI()
    route = fake.mount(router, GATEWAY)
    fake.statuses = [400]
    with pytest.raises(openai.BadRequestError) as info:
        list(stream(meter.wrap(make(False))))
    assert "simulated 400" in info.value.message  # openai 3.0 prefixes "Error code: 400 - {body}"
    assert route.call_count == 1
    [event] = meter.events()
    assert event.status == "error" and event.error_type == "BadRequestError" and not event.billable


def test_a_caller_who_set_stream_options_gets_the_servers_refusal(meter, router):
    fake = FakeOpenAI()
    fake.refuse_stream_options = REFUSALS["gateway"]
    route = fake.mount(router, GATEWAY)
    with pytest.raises(openai.BadRequestError) as info:
        list(meter.wrap(make(False)).chat.completions.create(
            model="gpt-4.1-mini", messages=MESSAGES, stream=True, stream_options={"include_usage": True}))
    assert info.value.body["param"] == "stream_options"  # exactly what the bare client would raise
    assert route.call_count == 1  # we did not add it, so we do not take it away
    assert meter.events()[0].status == "error"


def test_a_retry_that_fails_is_the_callers_error_without_our_400_in_its_chain(meter, router):
    fake = FakeOpenAI()
    fake.refuse_stream_options = REFUSALS["gateway"]
    route = fake.mount(router, GATEWAY)

    def refuse_then_fail(request):
        if len(fake.requests) == 1:
            fake.statuses = [503]
        return fake(request)

    route.mock(side_effect=refuse_then_fail)
    with pytest.raises(openai.InternalServerError) as info:
        list(stream(meter.wrap(make(False))))
    assert info.value.status_code == 503
    chain, exc = [], info.value
    while exc is not None:
        chain.append(exc)
        exc = exc.__context__
    assert not any(isinstance(e, openai.BadRequestError) for e in chain)  # the 400 we caused stays ours
    [event] = meter.events()
    assert (event.status, event.attempts, event.http_status) == ("error", 2, 503)


def test_openrouter_is_not_asked_for_stream_usage_it_sends_anyway(meter, router):
    """OpenRouter always ends a stream with usage: asking would only make the meter hide a chunk its users read."""
    fake = FakeOpenAI()
    route = fake.mount(router, "https://openrouter.ai/api/v1")

    def always_usage(request):
        body = json.loads(request.content)
        body["stream_options"] = {"include_usage": True}  # the server behaves as if asked, whatever it was sent
        fake.requests.append(json.loads(request.content))
        return fake._sse(fake.stream_bytes(True))

    route.mock(side_effect=always_usage)
    client = meter.wrap(openai.OpenAI(api_key="sk-or-test", base_url="https://openrouter.ai/api/v1"))
    chunks = list(client.chat.completions.create(model="openai/gpt-4.1-mini", messages=MESSAGES, stream=True))
    assert "stream_options" not in fake.requests[0]
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens == 1500  # the caller gets what OpenRouter sent
    [event] = meter.events()
    assert (event.usage_status, event.total_tokens) == ("reported", 1500)
