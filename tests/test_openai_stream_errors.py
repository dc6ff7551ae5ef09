"""A provider error inside a 200 stream: the call is an error event, whatever the caller's SDK does with it.

Chat streams carry it as a chunk ``{"error": ...}`` (the SDK raises APIError there); Responses streams end on
an ``error`` event (yielded to the caller) or on ``response.failed``, which may still report usage.
"""

from __future__ import annotations

import httpx
import openai
import pytest

from metricaos_sdk.testing import chat_chunk, sse
from tests.fake_openai import EventByEvent, response_object

MESSAGES = [{"role": "user", "content": "Where is my order?"}]
SSE = {"content-type": "text/event-stream; charset=utf-8"}


def serve(router, path, data):
    router.post(f"https://api.openai.com/v1/{path}").mock(
        side_effect=lambda request: httpx.Response(200, stream=EventByEvent(data), headers=SSE))


def test_an_error_chunk_in_a_chat_stream_is_an_error_event(meter, router):
    chunks = [chat_chunk(model="gpt-4.1-mini", delta={"role": "assistant", "content": ""}),
              chat_chunk(model="gpt-4.1-mini", delta={"content": "Your order"}),
              {"error": {"message": "The server had an error", "type": "server_error", "param": None, "code": None}}]
    serve(router, "chat/completions", sse(chunks))
    client = meter.wrap(openai.OpenAI(api_key="sk-test"))
    with pytest.raises(openai.APIError, match="The server had an error"):
        for _ in client.chat.completions.create(model="gpt-4.1-mini", messages=MESSAGES, stream=True):
            pass
    [event] = meter.events()
    assert (event.status, event.error_type, event.usage_status) == ("error", "server_error", "estimated")


def responses_events(last):
    started = response_object(model="gpt-5-mini", text="", usage=None, status="in_progress")
    events = [{"type": "response.created", "response": started},
              {"type": "response.output_text.delta", "item_id": "msg_1", "output_index": 0, "content_index": 0,
               "delta": "Hello there", "logprobs": []},
              last]
    for i, event in enumerate(events):
        event["sequence_number"] = i
    return sse(events, event_names=[e["type"] for e in events])


@pytest.mark.tiktoken
def test_a_responses_stream_ending_on_an_error_event_is_an_error_event(meter, router):
    serve(router, "responses", responses_events({"type": "error", "code": "server_error", "message": "boom", "param": None}))
    client = meter.wrap(openai.OpenAI(api_key="sk-test"))
    seen = [e.type for e in client.responses.create(model="gpt-5-mini", input="hi", stream=True)]
    assert seen[-1] == "error"  # the SDK hands it to the caller as an event
    [event] = meter.events()
    assert (event.status, event.error_type, event.usage_status) == ("error", "server_error", "estimated")
    assert event.output_tokens == 2  # "Hello there", counted over the text received


def test_a_failed_response_is_an_error_event_that_keeps_its_reported_usage(meter, router):
    failed = response_object(model="gpt-5-mini", text="Hello there", status="failed",
                             usage={"input_tokens": 50, "output_tokens": 3, "total_tokens": 53})
    failed["error"] = {"code": "server_error", "message": "boom"}
    serve(router, "responses", responses_events({"type": "response.failed", "response": failed}))
    client = meter.wrap(openai.OpenAI(api_key="sk-test"))
    assert [e.type for e in client.responses.create(model="gpt-5-mini", input="hi", stream=True)][-1] == "response.failed"
    [event] = meter.events()
    assert (event.status, event.error_type, event.usage_status) == ("error", "server_error", "reported")
    assert (event.input_tokens, event.output_tokens, event.billable) == (50, 3, True)
