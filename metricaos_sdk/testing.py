"""Helpers for your own tests and demos: a simulated OpenAI-compatible provider, in process.

``SimulatedOpenAI`` answers chat completions (plain and streamed, honouring ``stream_options``) with
deterministic content and usage, so code that uses the real ``openai`` client can run without a key or a
network — point the client at it with an ``httpx2.MockTransport``, or mount it under respx::

    provider = SimulatedOpenAI()
    client = provider.client()                  # a real openai.OpenAI talking to the simulator
    meter.wrap(client)

It is also what ``metricaos demo`` and ``benchmarks/`` run against.
"""

from __future__ import annotations

import base64
import json
import struct
import threading
import zlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import httpx2

__all__ = ["SimulatedOpenAI", "anthropic_message", "anthropic_stream_events", "aws_event_stream", "chat_chunk",
           "chat_completion", "sse"]

BASE_URL = "https://simulated.metricaos.invalid/v1"


def sse(events: Iterable[Mapping[str, Any] | str], *, event_names: Sequence[str | None] | None = None) -> bytes:
    """Server-sent-event bytes: one ``data:`` line per event (a str is sent as is, e.g. ``"[DONE]"``)."""
    out = []
    for i, event in enumerate(events):
        name = event_names[i] if event_names else None
        data = event if isinstance(event, str) else json.dumps(event, separators=(",", ":"))
        out.append((f"event: {name}\n" if name else "") + f"data: {data}\n\n")
    return "".join(out).encode()


def chat_completion(*, model: str, content: str, usage: Mapping[str, Any] | None, id: str = "chatcmpl-sim") -> dict[str, Any]:
    """A chat.completion JSON body."""
    return {
        "id": id, "object": "chat.completion", "created": 1_760_000_000, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content, "refusal": None},
                     "logprobs": None, "finish_reason": "stop"}],
        "usage": usage, "service_tier": "default", "system_fingerprint": "fp_sim",
    }


def chat_chunk(*, model: str, delta: Mapping[str, Any] | None, finish_reason: str | None = None,
               usage: Mapping[str, Any] | None = None, id: str = "chatcmpl-sim", with_usage_field: bool = False) -> dict[str, Any]:
    """A chat.completion.chunk; ``delta=None`` makes the usage-only chunk (``choices: []``)."""
    chunk: dict[str, Any] = {"id": id, "object": "chat.completion.chunk", "created": 1_760_000_000, "model": model,
                             "service_tier": "default", "system_fingerprint": "fp_sim", "choices": []}
    if delta is not None:
        chunk["choices"] = [{"index": 0, "delta": dict(delta), "logprobs": None, "finish_reason": finish_reason}]
    if usage is not None or with_usage_field:
        chunk["usage"] = usage
    return chunk


def _usage(prompt_tokens: int, completion_tokens: int, cached: int = 0, reasoning: int = 0) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": reasoning, "audio_tokens": 0,
                                      "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0},
    }


class SimulatedOpenAI:
    """A deterministic OpenAI-compatible chat provider, usable as an ``httpx2.MockTransport`` handler.

    Tokens are counted as words (prompt: words of every message + 3 per message), so expected numbers are
    easy to compute in tests. ``fail_next(n, status)`` makes the next ``n`` requests answer ``status``.
    ``requests`` lists every request body received.
    """

    def __init__(self, *, reply: str | None = None, reply_words: int = 24, cached_tokens: int = 0) -> None:
        self.reply = reply
        self.reply_words = reply_words
        self.cached_tokens = cached_tokens
        self.requests: list[dict[str, Any]] = []
        self._failures: list[int] = []
        self._lock = threading.Lock()
        self._counter = 0

    def fail_next(self, count: int = 1, status: int = 500) -> None:
        with self._lock:
            self._failures.extend([status] * count)

    def client(self, **kwargs: Any) -> Any:
        """A real ``openai.OpenAI`` whose HTTP goes to this simulator."""
        import openai

        kwargs.setdefault("max_retries", 2)
        return openai.OpenAI(api_key="sk-simulated", base_url=BASE_URL,
                             http_client=httpx2.Client(transport=httpx2.MockTransport(self)), **kwargs)

    def async_client(self, **kwargs: Any) -> Any:
        """A real ``openai.AsyncOpenAI`` whose HTTP goes to this simulator."""
        import openai

        kwargs.setdefault("max_retries", 2)
        return openai.AsyncOpenAI(api_key="sk-simulated", base_url=BASE_URL,
                                  http_client=httpx2.AsyncClient(transport=httpx2.MockTransport(self)), **kwargs)

    def reply_for(self, body: Mapping[str, Any]) -> str:
        if self.reply is not None:
            return self.reply
        words = [w for m in body.get("messages", []) for w in str(m.get("content", "")).split()]
        seed = sum(len(w) for w in words)
        vocab = ["your", "order", "ships", "today", "and", "arrives", "within", "three", "days", "thanks",
                 "for", "asking", "we", "can", "help", "with", "returns", "too", "just", "reply", "here"]
        return " ".join(vocab[(seed + i * 7) % len(vocab)] for i in range(self.reply_words))

    @staticmethod
    def prompt_tokens(body: Mapping[str, Any]) -> int:
        messages = body.get("messages", [])
        return sum(len(str(m.get("content", "")).split()) + 3 for m in messages)

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        with self._lock:
            status = self._failures.pop(0) if self._failures else None
            self._counter += 1
            number = self._counter
        if status is not None:
            return httpx2.Response(status, json={"error": {"message": "simulated failure", "type": "server_error",
                                                           "param": None, "code": None}})
        if not request.url.path.endswith("/chat/completions"):
            return httpx2.Response(404, json={"error": {"message": f"no route {request.url.path}", "type": "invalid_request_error"}})
        body = json.loads(request.content)
        self.requests.append(body)
        model = body.get("model", "gpt-4.1-mini")
        text = self.reply_for(body)
        words = text.split(" ")
        prompt = self.prompt_tokens(body)
        usage = _usage(prompt, len(words), cached=min(self.cached_tokens, prompt))
        rid = f"chatcmpl-sim{number}"
        headers = {"x-request-id": f"req_sim{number}"}
        if not body.get("stream"):
            return httpx2.Response(200, json=chat_completion(model=model, content=text, usage=usage, id=rid), headers=headers)
        include = bool((body.get("stream_options") or {}).get("include_usage"))
        chunks = [chat_chunk(model=model, delta={"role": "assistant", "content": ""}, id=rid, with_usage_field=include)]
        chunks += [chat_chunk(model=model, delta={"content": (" " if i else "") + w}, id=rid, with_usage_field=include)
                   for i, w in enumerate(words)]
        chunks.append(chat_chunk(model=model, delta={}, finish_reason="stop", id=rid, with_usage_field=include))
        if include:
            chunks.append(chat_chunk(model=model, delta=None, usage=usage, id=rid))
        return httpx2.Response(200, content=sse([*chunks, "[DONE]"]),
                               headers={**headers, "content-type": "text/event-stream; charset=utf-8"})


# -- Anthropic -------------------------------------------------------------------------------------------------


def anthropic_message(*, model: str, text: str, usage: Mapping[str, Any] | None, id: str = "msg_sim") -> dict[str, Any]:
    """A Messages API ``message`` JSON body (also what Bedrock ``invoke`` and Vertex ``rawPredict`` return)."""
    return {"id": id, "type": "message", "role": "assistant", "model": model,
            "content": [{"type": "text", "text": text}], "stop_reason": "end_turn", "stop_sequence": None,
            "usage": usage}


_START_FIELDS = ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens", "cache_creation",
                 "service_tier", "inference_geo")


def anthropic_stream_events(*, model: str, words: Sequence[str], usage: Mapping[str, Any], id: str = "msg_sim",
                            delta_usage: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """The events of a streamed message, as the API sends them: ``message_start`` with the input-side fields
    of ``usage`` (``output_tokens`` a placeholder of 1), a ping, one ``content_block_delta`` per word,
    ``message_delta`` with ``delta_usage`` (default: the cumulative ``output_tokens`` only), ``message_stop``.
    Send them with ``sse(events, event_names=[e["type"] for e in events])`` or :func:`aws_event_stream`."""
    start = {k: v for k, v in usage.items() if k in _START_FIELDS} | {"output_tokens": 1}
    message = {**anthropic_message(model=model, text="", usage=start, id=id), "content": [], "stop_reason": None}
    events: list[dict[str, Any]] = [
        {"type": "message_start", "message": message},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "ping"},
    ]
    events += [{"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": w}} for w in words]
    events += [
        {"type": "content_block_stop", "index": 0},
        {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
         "usage": dict(delta_usage) if delta_usage is not None else {"output_tokens": usage.get("output_tokens", 0)}},
        {"type": "message_stop"},
    ]
    return events


def aws_event_stream(events: Iterable[Mapping[str, Any]]) -> bytes:
    """Bedrock ``invoke-with-response-stream`` bytes: one AWS event-stream ``chunk`` frame per event, with
    valid CRCs (botocore checks them). A mapping with an ``"exception"`` key becomes an exception frame."""
    out = []
    for event in events:
        if "exception" in event:
            headers = _aws_headers({":message-type": "exception", ":exception-type": str(event["exception"]),
                                    ":content-type": "application/json"})
            payload = json.dumps({"message": event.get("message", "simulated failure")}).encode()
        else:
            headers = _aws_headers({":event-type": "chunk", ":content-type": "application/json", ":message-type": "event"})
            raw = json.dumps(event, separators=(",", ":")).encode()
            payload = json.dumps({"bytes": base64.b64encode(raw).decode(), "p": "abcdefghij"}, separators=(",", ":")).encode()
        prelude = struct.pack(">II", 16 + len(headers) + len(payload), len(headers))
        frame = prelude + struct.pack(">I", zlib.crc32(prelude)) + headers + payload
        out.append(frame + struct.pack(">I", zlib.crc32(frame)))
    return b"".join(out)


def _aws_headers(headers: Mapping[str, str]) -> bytes:
    out = b""
    for name, value in headers.items():
        encoded = value.encode()
        out += bytes([len(name)]) + name.encode() + b"\x07" + struct.pack(">H", len(encoded)) + encoded
    return out
