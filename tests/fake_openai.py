"""The OpenAI API emulated under respx, built from realistic payloads.

It behaves like the real API in the ways the meter depends on: chat and legacy-completion streams carry a
usage chunk only when the request asks for ``stream_options.include_usage``, and then every chunk has
``"usage": null``; Responses streams report usage in ``response.completed`` unasked; image and
transcription streams on their terminal event. Payload shapes follow the SDK's types (openai 3.57) and the
API reference; multipart requests (image edits, transcriptions) are read like the server reads them.
"""

from __future__ import annotations

import base64
import email
import functools
import json
import struct
from collections.abc import Mapping
from typing import Any

import httpx
import httpx2
import openai
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

# Responses API usage of a reasoning model with a cache hit (gpt-5-mini).
RESPONSES_USAGE = {
    "input_tokens": 2048, "input_tokens_details": {"cached_tokens": 1536, "cache_write_tokens": 0},
    "output_tokens": 410, "output_tokens_details": {"reasoning_tokens": 384}, "total_tokens": 2458,
}
COMPLETIONS_USAGE = {"prompt_tokens": 7, "completion_tokens": 5, "total_tokens": 12}
EMBEDDINGS_USAGE = {"prompt_tokens": 8, "total_tokens": 8}
# gpt-image-1, 1024x1024 high quality: 4160 image tokens out; an edit reads the input image as tokens too.
IMAGE_USAGE = {"input_tokens": 50, "input_tokens_details": {"image_tokens": 0, "text_tokens": 50},
               "output_tokens": 4160, "output_tokens_details": {"image_tokens": 4160, "text_tokens": 0},
               "total_tokens": 4210}
IMAGE_EDIT_USAGE = {"input_tokens": 350, "input_tokens_details": {"image_tokens": 323, "text_tokens": 27},
                    "output_tokens": 4160, "output_tokens_details": {"image_tokens": 4160, "text_tokens": 0},
                    "total_tokens": 4510}
TRANSCRIPTION_USAGE = {"type": "tokens", "input_tokens": 14, "input_token_details": {"text_tokens": 0, "audio_tokens": 14},
                       "output_tokens": 45, "total_tokens": 59}
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64).decode()


def request_fields(request: httpx.Request) -> dict[str, Any]:
    """The request's parameters: its JSON body, or its multipart form fields (files as bytes)."""
    ctype = request.headers.get("content-type", "")
    if not ctype.startswith("multipart/form-data"):
        return json.loads(request.content)
    message = email.message_from_bytes(b"Content-Type: " + ctype.encode() + b"\r\n\r\n" + request.content)
    fields: dict[str, Any] = {}
    for part in message.get_payload():
        value = part.get_payload(decode=True)
        name = part.get_param("name", header="content-disposition")
        fields[name] = value if part.get_filename() else {"true": True, "false": False}.get(value.decode(), value.decode())
    return fields


# -- bodies -------------------------------------------------------------------------------------------------
def response_object(*, model: str, text: str, usage: Mapping[str, Any] | None, status: str = "completed",
                    id: str = "resp_68af4030592c81938ec0a5fbab4a3e9f") -> dict[str, Any]:
    """A Responses API ``response`` object (reasoning item + message), as ``create`` and ``response.completed`` carry it."""
    output = [] if status == "in_progress" else [
        {"id": "rs_68af40311e048193", "type": "reasoning", "summary": []},
        {"id": "msg_68af4031c9a88193", "type": "message", "status": "completed", "role": "assistant",
         "content": [{"type": "output_text", "annotations": [], "logprobs": [], "text": text}]},
    ]
    return {
        "id": id, "object": "response", "created_at": 1756315696, "status": status, "background": False,
        "error": None, "incomplete_details": None, "instructions": None, "max_output_tokens": None, "model": model,
        "output": output, "parallel_tool_calls": True, "previous_response_id": None,
        "reasoning": {"effort": "medium", "summary": None}, "service_tier": "default", "store": True,
        "temperature": 1.0, "text": {"format": {"type": "text"}, "verbosity": "medium"}, "tool_choice": "auto",
        "tools": [], "top_p": 1.0, "truncation": "disabled", "usage": usage, "user": None, "metadata": {},
    }


def responses_stream(*, model: str, words: list[str], usage: Mapping[str, Any] | None) -> bytes:
    """The event sequence of a streamed response, ``event:`` lines included, ending in ``response.completed``."""
    text = "".join(words)
    msg = {"id": "msg_68af4031c9a88193", "type": "message", "status": "in_progress", "content": [], "role": "assistant"}
    part = {"type": "output_text", "annotations": [], "logprobs": [], "text": ""}
    where = {"item_id": msg["id"], "output_index": 1, "content_index": 0}
    events: list[dict[str, Any]] = [
        {"type": "response.created", "response": response_object(model=model, text="", usage=None, status="in_progress")},
        {"type": "response.in_progress", "response": response_object(model=model, text="", usage=None, status="in_progress")},
        {"type": "response.output_item.added", "output_index": 0, "item": {"id": "rs_68af40311e048193", "type": "reasoning", "summary": []}},
        {"type": "response.output_item.done", "output_index": 0, "item": {"id": "rs_68af40311e048193", "type": "reasoning", "summary": []}},
        {"type": "response.output_item.added", "output_index": 1, "item": msg},
        {"type": "response.content_part.added", **where, "part": part},
        *({"type": "response.output_text.delta", **where, "delta": w, "logprobs": []} for w in words),
        {"type": "response.output_text.done", **where, "text": text, "logprobs": []},
        {"type": "response.content_part.done", **where, "part": {**part, "text": text}},
        {"type": "response.output_item.done", "output_index": 1,
         "item": {**msg, "status": "completed", "content": [{**part, "text": text}]}},
        {"type": "response.completed", "response": response_object(model=model, text=text, usage=usage)},
    ]
    for i, event in enumerate(events):
        event["sequence_number"] = i
    return sse(events, event_names=[e["type"] for e in events])


def completion_chunk(*, model: str, text: str | None, usage: Mapping[str, Any] | None = None,
                     with_usage_field: bool = False, finish_reason: str | None = None) -> dict[str, Any]:
    """A legacy ``text_completion`` body or chunk; ``text=None`` makes the usage-only chunk."""
    chunk: dict[str, Any] = {"id": "cmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT", "object": "text_completion",
                             "created": 1741569952, "model": model, "system_fingerprint": None, "choices": []}
    if text is not None:
        chunk["choices"] = [{"text": text, "index": 0, "logprobs": None, "finish_reason": finish_reason}]
    if usage is not None or with_usage_field:
        chunk["usage"] = usage
    return chunk


def embedding_body(*, inputs: int, dims: int = 1536, usage: Mapping[str, Any] = EMBEDDINGS_USAGE) -> dict[str, Any]:
    """Embeddings as the SDK asks for them by default (``encoding_format="base64"``)."""
    vector = base64.b64encode(struct.pack(f"<{dims}f", *(0.001 * (i % 97) for i in range(dims)))).decode()
    return {"object": "list", "model": "text-embedding-3-small", "usage": dict(usage),
            "data": [{"object": "embedding", "index": i, "embedding": vector} for i in range(inputs)]}


def image_body(usage: Mapping[str, Any] | None) -> dict[str, Any]:
    return {"created": 1713833628, "background": "opaque", "output_format": "png", "quality": "high",
            "size": "1024x1024", "data": [{"b64_json": PNG}], "usage": usage}


def image_stream(kind: str, usage: Mapping[str, Any] | None) -> bytes:
    """``image_generation`` / ``image_edit`` partial images, then the completed event with usage."""
    common = {"created_at": 1713833628, "size": "1024x1024", "quality": "high", "background": "opaque",
              "output_format": "png", "b64_json": PNG}
    events = [{"type": f"{kind}.partial_image", "partial_image_index": i, **common} for i in range(2)]
    events.append({"type": f"{kind}.completed", **common, "usage": usage})
    return sse(events, event_names=[e["type"] for e in events])


def transcription_stream(words: list[str], usage: Mapping[str, Any] | None) -> bytes:
    events: list[dict[str, Any]] = [{"type": "transcript.text.delta", "delta": w, "logprobs": []} for w in words]
    events.append({"type": "transcript.text.done", "text": "".join(words), "logprobs": [], "usage": usage})
    return sse(events)


class FakeOpenAI:
    """respx side effect for the OpenAI API. ``requests`` keeps each request's parameters.

    ``mount`` serves POST /chat/completions; ``mount_all`` every billable endpoint. ``statuses`` answers
    these error statuses first, one per request; ``refuse_stream_options`` answers 400 with that error body
    to any request carrying ``stream_options`` (an OpenAI-compatible server that does not know it).
    """

    def __init__(self, *, usage: Mapping[str, Any] | None = USAGE, model: str = "gpt-4.1-mini-2025-04-14",
                 words: list[str] | None = None) -> None:
        self.usage = usage
        self.model = model
        self.words = words or WORDS
        self.requests: list[dict[str, Any]] = []
        self.statuses: list[int] = []
        self.refuse_stream_options: dict[str, Any] | None = None
        self.headers: dict[str, str] = {}

    chunked = False
    """Deliver a stream one SSE event per network read (as a real server does), not in one piece."""
    crlf = False
    """End SSE lines with CRLF, as some servers and proxies do (the SSE spec allows CRLF, CR or LF)."""
    piece_size: int | None = None
    """Deliver a stream in reads of this many bytes, cutting events anywhere (a slow or proxied connection)."""

    def mount(self, router: respx.Router, base: str = OPENAI_BASE) -> respx.Route:
        return router.post(f"{base}/chat/completions").mock(side_effect=self)

    def mount_all(self, router: respx.Router, base: str = OPENAI_BASE) -> None:
        for path in ("chat/completions", "completions", "responses", "responses/compact", "embeddings",
                     "images/generations", "images/edits", "audio/transcriptions"):
            router.post(f"{base}/{path}").mock(side_effect=self)

    def stream_bytes(self, include_usage: bool) -> bytes:
        chunks = [chat_chunk(model=self.model, delta={"role": "assistant", "content": ""}, with_usage_field=include_usage)]
        chunks += [chat_chunk(model=self.model, delta={"content": w}, with_usage_field=include_usage) for w in self.words]
        chunks.append(chat_chunk(model=self.model, delta={}, finish_reason="stop", with_usage_field=include_usage))
        if include_usage:
            chunks.append(chat_chunk(model=self.model, delta=None, usage=self.usage))
        return sse([*chunks, "[DONE]"])

    def completions_stream(self, include_usage: bool) -> bytes:
        chunks = [completion_chunk(model=self.model, text=w, with_usage_field=include_usage) for w in self.words]
        chunks.append(completion_chunk(model=self.model, text="", finish_reason="stop", with_usage_field=include_usage))
        if include_usage:
            chunks.append(completion_chunk(model=self.model, text=None, usage=self.usage))
        return sse([*chunks, "[DONE]"])

    def _sse(self, data: bytes) -> httpx.Response:
        headers = {"content-type": "text/event-stream; charset=utf-8", "x-request-id": "req_stream", **self.headers}
        if self.crlf:
            data = data.replace(b"\n", b"\r\n")
        if self.piece_size is not None:
            return httpx.Response(200, stream=InPieces(data, self.piece_size), headers=headers)
        if self.chunked:
            return httpx.Response(200, stream=EventByEvent(data), headers=headers)
        return httpx.Response(200, content=data, headers=headers)

    def _json(self, body: Any) -> httpx.Response:
        return httpx.Response(200, json=body, headers={"x-request-id": "req_123", **self.headers})

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = request_fields(request)
        self.requests.append(body)
        if self.statuses:
            status = self.statuses.pop(0)
            return httpx.Response(status, json={"error": {"message": f"simulated {status}", "type": "server_error",
                                                          "param": None, "code": None}},
                                  headers={"x-request-id": "req_err"})
        if self.refuse_stream_options is not None and "stream_options" in body:
            return httpx.Response(400, json=self.refuse_stream_options, headers={"x-request-id": "req_400"})
        path = request.url.path
        stream = body.get("stream") is True
        include = bool((body.get("stream_options") or {}).get("include_usage"))
        text = "".join(self.words)
        if path.endswith("/chat/completions"):
            if stream:
                return self._sse(self.stream_bytes(include))
            return self._json(chat_completion(model=self.model, content=text, usage=self.usage, id="chatcmpl-abc123"))
        if path.endswith("/responses"):
            if stream:
                return self._sse(responses_stream(model=self.model, words=self.words, usage=self.usage))
            return self._json(response_object(model=self.model, text=text, usage=self.usage))
        if path.endswith("/responses/compact"):
            compacted = response_object(model=self.model, text=text, usage=self.usage)
            return self._json({"id": "resp_cmp_68af", "object": "response.compaction", "created_at": 1756315700,
                               "context_compression": "enabled", "output": compacted["output"], "usage": self.usage})
        if path.endswith("/completions"):
            if stream:
                return self._sse(self.completions_stream(include))
            return self._json(completion_chunk(model=self.model, text=text, usage=self.usage, finish_reason="stop"))
        if path.endswith("/embeddings"):
            inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
            return self._json(embedding_body(inputs=len(inputs), usage=self.usage or {}))
        if "/images/" in path:
            kind = "image_edit" if path.endswith("/edits") else "image_generation"
            return self._sse(image_stream(kind, self.usage)) if stream else self._json(image_body(self.usage))
        if path.endswith("/audio/transcriptions"):
            if stream:
                return self._sse(transcription_stream(self.words, self.usage))
            if body.get("response_format") == "text":
                return httpx.Response(200, text=text + "\n", headers={"content-type": "text/plain; charset=utf-8"})
            return self._json({"text": text, "usage": self.usage})
        return httpx.Response(404, json={"error": {"message": f"no route {path}", "type": "invalid_request_error"}})


class EventByEvent(httpx.SyncByteStream, httpx.AsyncByteStream):
    """A body delivered one SSE event per read; ``fail_after`` events, a reset connection."""

    def __init__(self, data: bytes, fail_after: int | None = None) -> None:
        end = b"\r\n\r\n" if b"\r\n\r\n" in data else b"\n\n"
        self.events = [e + end for e in data.split(end) if e]
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


@functools.cache
def stream_reset_error() -> type[Exception]:
    """What the installed openai raises to its caller when a stream's connection resets mid-way (as
    :class:`EventByEvent` makes it), found by running a bare client over one: later 3.x releases wrap the
    transport's error in ``openai.APIConnectionError``, 3.0 lets ``httpx.ReadError`` through as it is."""

    class Reset(httpx2.SyncByteStream):
        def __iter__(self) -> Any:
            yield sse([chat_chunk(model="gpt-4.1-mini", delta={"role": "assistant", "content": ""})])
            raise httpx.ReadError("connection reset by peer")

    client = openai.OpenAI(api_key="sk-test", base_url="https://probe.invalid/v1", max_retries=0, http_client=httpx2.Client(
        transport=httpx2.MockTransport(lambda request: httpx2.Response(200, stream=Reset()))))
    stream = client.chat.completions.create(model="gpt-4.1-mini", messages=[{"role": "user", "content": "hi"}], stream=True)
    received = []
    try:
        for chunk in stream:
            received.append(chunk)
    except Exception as exc:
        assert len(received) == 1, "the probe stream failed before its first chunk"
        return type(exc)
    finally:
        client.close()
    raise AssertionError("a stream whose connection resets raised nothing")


class InPieces(httpx.SyncByteStream, httpx.AsyncByteStream):
    """A body delivered in reads of ``size`` bytes."""

    def __init__(self, data: bytes, size: int) -> None:
        self.pieces = [data[at:at + size] for at in range(0, len(data), size)]

    def __iter__(self):
        yield from self.pieces

    async def __aiter__(self):
        for piece in self.pieces:
            yield piece


class BodyCut(httpx.SyncByteStream, httpx.AsyncByteStream):
    """The first part of a body, then a reset connection: a 2xx that fails while it is being read."""

    def __init__(self, part: bytes) -> None:
        self.part = part

    def __iter__(self):
        yield self.part
        raise httpx.ReadError("connection reset by peer")

    async def __aiter__(self):
        yield self.part
        raise httpx.ReadError("connection reset by peer")


def body_cut_first(side_effect: Any, times: int = 1) -> Any:
    """``side_effect``, but the body of each of its first ``times`` answers breaks off half-way."""
    answered = []

    def cut(request: httpx.Request) -> httpx.Response:
        response = side_effect(request)
        answered.append(request)
        if len(answered) > times:
            return response
        headers = [(k, v) for k, v in response.headers.multi_items() if k.lower() != "content-length"]
        return httpx.Response(response.status_code, headers=headers, stream=BodyCut(response.content[: len(response.content) // 2]))

    return cut


# -- one scenario, sync and async clients -----------------------------------------------------------------------
async def settle(value: Any) -> Any:
    """Await ``value`` if it is awaitable, then read a stream or generator to the end (as a list).

    Scenarios are written once as ``lambda client: client.x.create(...)``; this makes the sync and the async
    client's answers comparable."""
    import inspect

    import openai

    if inspect.isawaitable(value):
        value = await value
    helper = type(value).__module__.startswith("openai.lib.streaming")  # ChatCompletionStream, ResponseStream …
    if isinstance(value, openai.AsyncStream) or inspect.isasyncgen(value) or (helper and hasattr(value, "__aiter__")):
        return [item async for item in value]
    if isinstance(value, openai.Stream) or inspect.isgenerator(value) or helper:
        return list(value)
    return value


async def within(manager: Any, body: Any) -> Any:
    """``with`` / ``async with`` ``manager``, then ``settle(body(entered))`` inside it."""
    if hasattr(manager, "__aenter__"):
        async with manager as entered:
            return await settle(body(entered))
    with manager as entered:
        return await settle(body(entered))
