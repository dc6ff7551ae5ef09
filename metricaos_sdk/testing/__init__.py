"""Helpers for your own tests and demos: simulated OpenAI and Anthropic providers, in process.

``SimulatedOpenAI`` answers chat completions, Responses and embeddings; ``SimulatedAnthropic`` the Messages
API. Both answer plain and streamed requests with deterministic content and usage (tokens are words, so the
expected numbers are easy to compute), and stream the way a server does: a live body, one event per read,
that the client and the meter see as it is read — a caller who stops early has received only part of it.
Their ``client()`` and ``async_client()`` are the real SDK clients, talking to them through an
``httpx2.MockTransport``; no key, no network. It is also what ``metricaos demo`` and ``benchmarks/`` run
against.

>>> from metricaos_sdk import MemorySink, Meter
>>> from metricaos_sdk.testing import SimulatedAnthropic, SimulatedOpenAI
>>> meter = Meter(sink=MemorySink())
>>> openai_client = meter.wrap(SimulatedOpenAI(reply="Your order ships today.").client())
>>> r = openai_client.chat.completions.create(
...     model="gpt-4.1-mini", messages=[{"role": "user", "content": "Where is my order?"}])
>>> r.choices[0].message.content, r.usage.prompt_tokens, r.usage.completion_tokens  # 4 words + 3; 4 words
('Your order ships today.', 7, 4)
>>> stream = openai_client.responses.create(model="gpt-4.1-mini", input="Where is my order?", stream=True)
>>> [e.delta for e in stream if e.type == "response.output_text.delta"]
['Your', ' order', ' ships', ' today.']
>>> anthropic_client = meter.wrap(SimulatedAnthropic(reply="On its way.").client())  # needs anthropic
>>> m = anthropic_client.messages.create(model="claude-sonnet-4-6", max_tokens=100,
...                                      messages=[{"role": "user", "content": "Where is my order?"}])
>>> m.content[0].text, m.usage.input_tokens, m.usage.output_tokens
('On its way.', 7, 3)
>>> [(e.endpoint, e.input_tokens, e.output_tokens, e.streamed) for e in meter.events()]
[('/chat/completions', 7, 4, False), ('/responses', 7, 4, True), ('/v1/messages', 7, 3, False)]
>>> meter.close()

Builders for your own mocks (respx side effects, ``MockTransport`` handlers): :func:`chat_completion`,
:func:`chat_chunk`, :func:`response_object`, :func:`response_stream_events`, :func:`anthropic_message`,
:func:`anthropic_stream_events`, framed with :func:`sse` or :func:`aws_event_stream`, and streamed in pieces
with :class:`LiveStream`. See docs/testing.md.
"""

from __future__ import annotations

from .anthropic import SimulatedAnthropic
from .bodies import (
    anthropic_message,
    anthropic_stream_events,
    aws_event_stream,
    chat_chunk,
    chat_completion,
    response_object,
    response_stream_events,
    sse,
)
from .openai import SimulatedOpenAI
from .streams import LiveStream

__all__ = ["LiveStream", "SimulatedAnthropic", "SimulatedOpenAI", "anthropic_message", "anthropic_stream_events",
           "aws_event_stream", "chat_chunk", "chat_completion", "response_object", "response_stream_events", "sse"]
