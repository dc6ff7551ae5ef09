"""An OpenAI chat endpoint emulated under respx, built from realistic payloads.

It behaves like the real API in the ways the meter depends on: streams carry a usage chunk only when the
request asks for ``stream_options.include_usage``, and then every chunk has ``"usage": null``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import httpx
import respx

from metricaos_sdk.testing import chat_chunk, chat_completion, sse

OPENAI_BASE = "https://api.openai.com/v1"

# A real-shaped usage payload (gpt-4.1-mini with a prompt-cache hit and reasoning, as the API sends it).
USAGE = {
    "prompt_tokens": 1200,
    "completion_tokens": 300,
    "total_tokens": 1500,
    "prompt_tokens_details": {"cached_tokens": 1024, "audio_tokens": 0},
    "completion_tokens_details": {"reasoning_tokens": 64, "audio_tokens": 0,
                                  "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0},
}
WORDS = ["Your", " order", " ships", " today", "."]


class FakeOpenAI:
    """respx side effect for POST /chat/completions. ``requests`` keeps each parsed request body."""

    def __init__(self, *, usage: Mapping[str, Any] | None = USAGE, model: str = "gpt-4.1-mini-2025-04-14",
                 words: list[str] | None = None) -> None:
        self.usage = usage
        self.model = model
        self.words = words or WORDS
        self.requests: list[dict[str, Any]] = []
        self.statuses: list[int] = []  # answer these statuses first, one per request

    def mount(self, router: respx.Router, base: str = OPENAI_BASE) -> respx.Route:
        return router.post(f"{base}/chat/completions").mock(side_effect=self)

    def stream_bytes(self, include_usage: bool) -> bytes:
        chunks = [chat_chunk(model=self.model, delta={"role": "assistant", "content": ""}, with_usage_field=include_usage)]
        chunks += [chat_chunk(model=self.model, delta={"content": w}, with_usage_field=include_usage) for w in self.words]
        chunks.append(chat_chunk(model=self.model, delta={}, finish_reason="stop", with_usage_field=include_usage))
        if include_usage:
            chunks.append(chat_chunk(model=self.model, delta=None, usage=self.usage))
        return sse([*chunks, "[DONE]"])

    chunked = False
    """Deliver a stream one SSE event per network read (as a real server does), not in one piece."""

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        self.requests.append(body)
        if self.statuses:
            status = self.statuses.pop(0)
            return httpx.Response(status, json={"error": {"message": f"simulated {status}", "type": "server_error",
                                                          "param": None, "code": None}},
                                  headers={"x-request-id": "req_err"})
        if body.get("stream"):
            include = bool((body.get("stream_options") or {}).get("include_usage"))
            data = self.stream_bytes(include)
            if self.chunked:
                return httpx.Response(200, stream=EventByEvent(data),
                                      headers={"content-type": "text/event-stream", "x-request-id": "req_stream"})
            return httpx.Response(200, content=data,
                                  headers={"content-type": "text/event-stream", "x-request-id": "req_stream"})
        return httpx.Response(200, json=chat_completion(model=self.model, content="".join(self.words), usage=self.usage,
                                                        id="chatcmpl-abc123"),
                              headers={"x-request-id": "req_123"})


class EventByEvent(httpx.SyncByteStream, httpx.AsyncByteStream):
    """A body delivered one SSE event per read; ``fail_after`` events, a reset connection."""

    def __init__(self, data: bytes, fail_after: int | None = None) -> None:
        self.events = [e + b"\n\n" for e in data.split(b"\n\n") if e]
        self.fail_after = fail_after

    def __iter__(self):
        for i, event in enumerate(self.events):
            if self.fail_after is not None and i == self.fail_after:
                raise httpx.ReadError("connection reset by peer")
            yield event

    async def __aiter__(self):
        for i, event in enumerate(self.events):
            if self.fail_after is not None and i == self.fail_after:
                raise httpx.ReadError("connection reset by peer")
            yield event
