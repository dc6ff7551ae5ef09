"""The Anthropic Messages API emulated under respx, built from realistic payloads.

One side effect serves the first-party API (``/v1/messages``, ``/v1/messages/count_tokens``), Bedrock
(``/model/{id}/invoke`` and ``invoke-with-response-stream``, AWS event-stream frames) and Vertex
(``…/models/{model}:rawPredict`` and ``:streamRawPredict``, SSE), like the real services do.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import httpx
import respx

from metricaos_sdk.testing import anthropic_message, anthropic_stream_events, aws_event_stream, sse
from tests.fake_openai import EventByEvent

ANTHROPIC_BASE = "https://api.anthropic.com"
BEDROCK_BASE = "https://bedrock-runtime.us-east-1.amazonaws.com"
VERTEX_BASE = "https://us-east5-aiplatform.googleapis.com/v1"
MODEL = "claude-sonnet-4-6"
MESSAGES = [{"role": "user", "content": "Where is my order?"}]

# A real-shaped usage object: a prompt-cache hit, writes at both TTLs, adaptive thinking and two web
# searches, as the API sends it. Anthropic's input_tokens EXCLUDES the cache reads and writes.
USAGE: dict[str, Any] = {
    "input_tokens": 42,
    "cache_creation_input_tokens": 1500,
    "cache_read_input_tokens": 12000,
    "cache_creation": {"ephemeral_5m_input_tokens": 1000, "ephemeral_1h_input_tokens": 500},
    "output_tokens": 380,
    "output_tokens_details": {"thinking_tokens": 120},
    "server_tool_use": {"web_search_requests": 2, "web_fetch_requests": 0},
    "service_tier": "standard",
    "inference_geo": "us",
}
# The same call in our inclusive buckets.
INPUT, CACHED, CACHE_WRITE, OUTPUT, THINKING = 13542, 12000, 1500, 380, 120
# claude-sonnet-4-6 at $3 / $15 per MTok, cache reads $0.30, 5-minute writes $3.75, 1-hour writes $6, web
# search $10 per 1,000: 42×3 + 12000×0.3 + 1000×3.75 + 500×6 + 380×15 = 16,176 µ$, + 2 searches = 20,000 µ$.
COST = "0.036176"
WORDS = ["Your", " order", " ships", " today", "."]


def stream_events(usage: Mapping[str, Any] = USAGE, *, delta_usage: Mapping[str, Any] | None = None,
                  words: list[str] | None = None, model: str = MODEL) -> list[dict[str, Any]]:
    """The events of a streamed message. By default ``message_delta`` carries what the API sends: every
    cumulative count (input and cache counts included), thinking and the server tool uses."""
    if delta_usage is None:
        delta_usage = {k: usage[k] for k in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens",
                                             "output_tokens", "output_tokens_details", "server_tool_use") if k in usage}
    return anthropic_stream_events(model=model, words=words or WORDS, usage=usage, id="msg_01XYZ",
                                   delta_usage=delta_usage)


def sse_body(events: list[dict[str, Any]]) -> bytes:
    return sse(events, event_names=[e["type"] for e in events])


class FakeAnthropic:
    """respx side effect. ``requests`` keeps (path, body) of each request; ``statuses`` are answered first."""

    chunked = True
    """Deliver a stream one event per network read (as a real server does), not in one piece."""

    def __init__(self, *, usage: Mapping[str, Any] | None = USAGE, model: str = MODEL,
                 events: list[dict[str, Any]] | None = None, fail_after: int | None = None) -> None:
        self.usage = usage
        self.model = model
        self.events = events
        self.fail_after = fail_after
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.statuses: list[int] = []

    def mount(self, router: respx.Router) -> FakeAnthropic:
        router.post(url__regex=r"^https://(api\.anthropic\.com|bedrock-runtime\.|[a-z0-9-]+aiplatform\.googleapis\.com)") \
            .mock(side_effect=self)
        return self

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        body = json.loads(request.content)
        self.requests.append((path, body))
        headers = {"request-id": "req_011CAnthropic"}
        if self.statuses:
            status = self.statuses.pop(0)
            kind = "overloaded_error" if status == 529 else "invalid_request_error"
            return httpx.Response(status, json={"type": "error", "error": {"type": kind, "message": f"simulated {status}"}},
                                  headers=headers)
        if path.endswith("/count_tokens") or path.endswith("count-tokens:rawPredict"):
            return httpx.Response(200, json={"input_tokens": 13}, headers=headers)
        streamed = body.get("stream") or path.endswith("invoke-with-response-stream")
        if not streamed:
            return httpx.Response(200, json=anthropic_message(model=self.model, text="".join(WORDS), usage=self.usage,
                                                              id="msg_01XYZ"), headers=headers)
        events = self.events or stream_events(self.usage or {}, model=self.model)
        if path.endswith("invoke-with-response-stream"):
            frames = [aws_event_stream([e]) for e in events]
            if self.fail_after is not None:
                frames = frames[:self.fail_after] + [aws_event_stream([{"exception": "modelStreamErrorException"}])]
            return httpx.Response(200, stream=Frames(frames) if self.chunked else None,
                                  content=None if self.chunked else b"".join(frames),
                                  headers={**headers, "content-type": "application/vnd.amazon.eventstream"})
        data = sse_body(events)
        sse_headers = {**headers, "content-type": "text/event-stream; charset=utf-8"}
        if self.chunked or self.fail_after is not None:
            return httpx.Response(200, stream=EventByEvent(data, fail_after=self.fail_after), headers=sse_headers)
        return httpx.Response(200, content=data, headers=sse_headers)


class Frames(httpx.SyncByteStream, httpx.AsyncByteStream):
    """A body delivered one piece per read."""

    def __init__(self, pieces: list[bytes]) -> None:
        self.pieces = pieces

    def __iter__(self):
        yield from self.pieces

    async def __aiter__(self):
        for piece in self.pieces:
            yield piece
