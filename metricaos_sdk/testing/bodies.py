"""Response bodies and stream events as the providers send them: pure builders, no I/O.

OpenAI: :func:`chat_completion`, :func:`chat_chunk`, :func:`response_object`, :func:`response_stream_events`.
Anthropic: :func:`anthropic_message`, :func:`anthropic_stream_events`. Framing: :func:`sse` (server-sent
events) and :func:`aws_event_stream` (Bedrock's binary frames).
"""

from __future__ import annotations

import base64
import json
import struct
import zlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = ["anthropic_message", "anthropic_stream_events", "aws_event_stream", "chat_chunk", "chat_completion",
           "response_object", "response_stream_events", "sse"]

CREATED = 1_760_000_000


def sse(events: Iterable[Mapping[str, Any] | str], *, event_names: Sequence[str | None] | None = None) -> bytes:
    """Server-sent-event bytes: one ``data:`` line per event (a str is sent as is, e.g. ``"[DONE]"``), after an
    ``event:`` line when ``event_names`` names it."""
    out = []
    for i, event in enumerate(events):
        name = event_names[i] if event_names else None
        data = event if isinstance(event, str) else json.dumps(event, separators=(",", ":"))
        out.append((f"event: {name}\n" if name else "") + f"data: {data}\n\n")
    return "".join(out).encode()


# -- OpenAI chat completions -----------------------------------------------------------------------------------


def chat_completion(*, model: str, content: str, usage: Mapping[str, Any] | None, id: str = "chatcmpl-sim") -> dict[str, Any]:
    """A chat.completion JSON body."""
    return {
        "id": id, "object": "chat.completion", "created": CREATED, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content, "refusal": None},
                     "logprobs": None, "finish_reason": "stop"}],
        "usage": usage, "service_tier": "default", "system_fingerprint": "fp_sim",
    }


def chat_chunk(*, model: str, delta: Mapping[str, Any] | None, finish_reason: str | None = None,
               usage: Mapping[str, Any] | None = None, id: str = "chatcmpl-sim", with_usage_field: bool = False) -> dict[str, Any]:
    """A chat.completion.chunk; ``delta=None`` makes the usage-only chunk (``choices: []``). ``with_usage_field``
    adds ``"usage": null`` as the API does to every chunk of a stream that asked for usage."""
    chunk: dict[str, Any] = {"id": id, "object": "chat.completion.chunk", "created": CREATED, "model": model,
                             "service_tier": "default", "system_fingerprint": "fp_sim", "choices": []}
    if delta is not None:
        chunk["choices"] = [{"index": 0, "delta": dict(delta), "logprobs": None, "finish_reason": finish_reason}]
    if usage is not None or with_usage_field:
        chunk["usage"] = usage
    return chunk


def chat_usage(prompt_tokens: int, completion_tokens: int, cached: int = 0, reasoning: int = 0) -> dict[str, Any]:
    """A chat ``usage`` object (``completion_tokens`` includes ``reasoning``, ``prompt_tokens`` includes ``cached``)."""
    return {
        "prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": reasoning, "audio_tokens": 0,
                                      "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0},
    }


# -- OpenAI Responses ------------------------------------------------------------------------------------------


def responses_usage(input_tokens: int, output_tokens: int, cached: int = 0, reasoning: int = 0) -> dict[str, Any]:
    """A Responses ``usage`` object (``output_tokens`` includes ``reasoning``, ``input_tokens`` includes ``cached``)."""
    return {"input_tokens": input_tokens, "input_tokens_details": {"cached_tokens": cached},
            "output_tokens": output_tokens, "output_tokens_details": {"reasoning_tokens": reasoning},
            "total_tokens": input_tokens + output_tokens}


def _output_message(response_id: str, text: str | None, status: str = "completed") -> dict[str, Any]:
    content = [] if text is None else [{"type": "output_text", "annotations": [], "logprobs": [], "text": text}]
    return {"id": f"msg_{response_id.removeprefix('resp_')}", "type": "message", "status": status,
            "role": "assistant", "content": content}


def response_object(*, model: str, text: str, usage: Mapping[str, Any] | None, id: str = "resp_sim",
                    status: str = "completed") -> dict[str, Any]:
    """A Responses API ``response`` object with one output message (none while ``status="in_progress"``), as
    ``responses.create`` returns it and ``response.completed`` carries it."""
    return {
        "id": id, "object": "response", "created_at": CREATED, "status": status, "background": False, "error": None,
        "incomplete_details": None, "instructions": None, "max_output_tokens": None, "model": model,
        "output": [] if status == "in_progress" else [_output_message(id, text)],
        "parallel_tool_calls": True, "previous_response_id": None, "reasoning": {"effort": None, "summary": None},
        "service_tier": "default", "store": True, "temperature": 1.0,
        "text": {"format": {"type": "text"}, "verbosity": "medium"}, "tool_choice": "auto", "tools": [],
        "top_p": 1.0, "truncation": "disabled", "usage": dict(usage) if usage is not None else None, "user": None,
        "metadata": {},
    }


def response_stream_events(*, model: str, words: Sequence[str], usage: Mapping[str, Any] | None,
                           id: str = "resp_sim") -> list[dict[str, Any]]:
    """The events of a streamed response, numbered: ``response.created``, ``response.in_progress``, the output
    message and its text part opened, one ``response.output_text.delta`` per word, the part and message done,
    and ``response.completed`` carrying the usage. Send them with ``sse(events, event_names=[e["type"] ...])``."""
    text = "".join(words)
    item = _output_message(id, None, "in_progress")
    where = {"item_id": item["id"], "output_index": 0, "content_index": 0}
    part = {"type": "output_text", "annotations": [], "logprobs": [], "text": ""}
    started = response_object(model=model, text="", usage=None, id=id, status="in_progress")
    events: list[dict[str, Any]] = [
        {"type": "response.created", "response": started},
        {"type": "response.in_progress", "response": started},
        {"type": "response.output_item.added", "output_index": 0, "item": item},
        {"type": "response.content_part.added", **where, "part": part},
        *({"type": "response.output_text.delta", **where, "delta": w, "logprobs": []} for w in words),
        {"type": "response.output_text.done", **where, "text": text, "logprobs": []},
        {"type": "response.content_part.done", **where, "part": {**part, "text": text}},
        {"type": "response.output_item.done", "output_index": 0, "item": _output_message(id, text)},
        {"type": "response.completed", "response": response_object(model=model, text=text, usage=usage, id=id)},
    ]
    for number, event in enumerate(events):
        event["sequence_number"] = number
    return events


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
