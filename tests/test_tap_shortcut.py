"""The SSE tap's shortcut for the usual event (``SSETap._shortcut``) gives exactly what its general path gives.

Each drawn stream is fed twice, read by read, into a real tap: once as shipped, once with the shortcut switched
off (``_prefix = None``: every read takes ``one_event`` / ``EventReader`` and ``_observe``). Every read must hand
the SDK the same bytes, and at the end the two taps must hold the same counts, usage, model, service tier, text
kept for the output estimate, and the same "stream ended" flags. The draws are built to reach every early exit
of the shortcut: the first event, ``"usage":null`` last or elsewhere, a second mention of usage, ``error``,
``\\u`` escapes, CR, several data lines, events split across reads or two in one read, ``[DONE]``.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from metricaos_sdk.context import Attribution
from metricaos_sdk.meter import Meter
from metricaos_sdk.providers.anthropic import MESSAGES
from metricaos_sdk.providers.openai import CHAT
from metricaos_sdk.sinks import MemorySink
from metricaos_sdk.wrappers.call import MeteredCall
from metricaos_sdk.wrappers.sse_tap import SSETap

_METER = Meter(sink=MemorySink())
USAGE = {"prompt_tokens": 12, "completion_tokens": 7, "total_tokens": 19}
TEXT = st.sampled_from(["Hi", " there", "usage", " error", "\\u00e9", "é", '"usage":null', "[DONE]", ""])


def _chat_chunk(text: str, *, null_usage: str, tier: str | None) -> bytes:
    chunk: dict[str, Any] = {"id": "c1", "object": "chat.completion.chunk", "model": "gpt-4.1-mini",
                             "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]}
    if tier is not None:
        chunk["service_tier"] = tier
    body = json.dumps(chunk, separators=(",", ":"))
    if null_usage == "last":
        body = body[:-1] + ',"usage":null}'
    elif null_usage == "first":
        body = '{"usage":null,' + body[1:]
    elif null_usage == "tail":
        body = body[:-1] + ',"usage":null,"obfuscation":"x"}'
    return body.encode()


@st.composite
def chat_streams(draw: st.DrawFn) -> tuple[list[bytes], bool]:
    filtering = draw(st.booleans())
    events = []
    for _ in range(draw(st.integers(1, 8))):
        text = draw(TEXT)
        data = _chat_chunk(text, null_usage=draw(st.sampled_from(["last", "first", "tail", "none"])),
                           tier=draw(st.sampled_from([None, "default", "flex"])))
        events.append(data)
    if draw(st.booleans()):
        events.append(b'{"id":"c1","object":"chat.completion.chunk","model":"gpt-4.1-mini","choices":[],"usage":'
                      + json.dumps(USAGE, separators=(",", ":")).encode() + b"}")
    if draw(st.booleans()):
        events.append(b"[DONE]")
    raw = []
    for data in events:
        line_end = draw(st.sampled_from([b"\n", b"\n", b"\r\n", b"\r"]))
        blank = draw(st.sampled_from([line_end, line_end, b"\n"]))  # CRLF then LF: a CR just before the end
        prefix = draw(st.sampled_from([b"data: ", b"data: ", b"data:"]))
        if draw(st.integers(0, 9)) == 0 and b"," in data:  # JSON over two data lines
            at = data.index(b",")
            raw.append(prefix + data[:at] + line_end + prefix + data[at:] + line_end + blank)
        else:
            raw.append(prefix + data + line_end + blank)
    return _reads(draw, raw), filtering


def _reads(draw: st.DrawFn, raw: list[bytes]) -> list[bytes]:
    """The events as reads: mostly one event a read (as providers flush them), sometimes joined or cut."""
    reads: list[bytes] = []
    for event in raw:
        how = draw(st.integers(0, 9))
        if how == 0 and reads:
            reads[-1] += event
        elif how == 1 and len(event) > 2:
            cut = draw(st.integers(1, len(event) - 1))
            reads += [event[:cut], event[cut:]]
        else:
            reads.append(event)
    return reads


@st.composite
def anthropic_streams(draw: st.DrawFn) -> tuple[list[bytes], bool]:
    start = {"type": "message_start", "message": {"id": "m1", "model": "claude-sonnet-4-6",
                                                  "usage": {"input_tokens": 5, "output_tokens": 1}}}
    raw = [b"event: message_start\ndata: " + json.dumps(start).encode() + b"\n\n"]
    for _ in range(draw(st.integers(0, 8))):
        delta = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": draw(TEXT)}}
        name = draw(st.sampled_from([b"content_block_delta", b"content_block_delta", b"ping"]))
        line_end = draw(st.sampled_from([b"\n", b"\n", b"\r\n"]))
        data = json.dumps(delta, separators=draw(st.sampled_from([(",", ":"), (", ", ": ")]))).encode()
        raw.append(b"event: " + name + line_end + b"data: " + data + line_end + line_end)
    if draw(st.booleans()):
        raw.append(b'event: message_delta\ndata: {"type":"message_delta","delta":{},"usage":{"output_tokens":9}}\n\n')
        raw.append(b'event: message_stop\ndata: {"type":"message_stop"}\n\n')
    return _reads(draw, raw), False


def _run(endpoint: Any, reads: list[bytes], filtering: bool, shortcut: bool) -> tuple[list[bytes], dict[str, Any]]:
    body = {"model": "gpt-4.1-mini", "stream": True}
    call = MeteredCall(_METER, endpoint, "openai", "/v1/x", body, Attribution())
    call.injected_usage = filtering
    tap = SSETap(None, call, None, filtering=filtering)
    if not shortcut:
        tap._prefix = None
    out = [tap._feed(read) for read in reads]
    state = tap._state
    text = tap._text
    seen = {"events": tap._events, "chunks": tap._chunks, "end_seen": tap._end_seen, "dropped": tap._dropped,
            "usage": state.usage, "model": state.model, "tier": state.service_tier, "done": state.done,
            "problem": state.problem, "text": b"".join(text._raw) if text is not None else None}
    return out, seen


@given(chat_streams())
@example(([b'data: {"id":"c","choices":[],"usage":null}\n\n', b'data: {"id":"c","choices":[],"usage":null}\n\n'], True))
@example(([b'data: {"a":1}\n\n', b'data: {"usage":{"x":1},"usage":null}\n\n'], True))
@example(([b'data: {"a":1}\n\n', b'data: {"b":2}\r\n\n'], False))
def test_chat_shortcut_matches_the_general_path(stream: tuple[list[bytes], bool]) -> None:
    reads, filtering = stream
    assert _run(CHAT, reads, filtering, True) == _run(CHAT, reads, filtering, False)


@given(anthropic_streams())
def test_anthropic_shortcut_matches_the_general_path(stream: tuple[list[bytes], bool]) -> None:
    reads, filtering = stream
    assert _run(MESSAGES, reads, filtering, True) == _run(MESSAGES, reads, filtering, False)


def test_the_shortcut_is_taken_for_the_usual_events() -> None:
    """Not a test that cannot fail: if the shortcut never ran, the two paths above would compare the general
    path with itself. The usual chat chunk with the injected ``"usage":null`` last goes the short way."""
    call = MeteredCall(_METER, CHAT, "openai", "/v1/x", {"model": "m", "stream": True}, Attribution())
    call.injected_usage = True
    tap = SSETap(None, call, None, filtering=True)
    first = b"data: " + _chat_chunk("a", null_usage="last", tier=None) + b"\n\n"
    usual = b"data: " + _chat_chunk("b", null_usage="last", tier=None) + b"\n\n"
    tap._feed(first)  # the first event is always parsed
    assert tap._shortcut(usual, 6) == usual.replace(b',"usage":null', b"")
    assert tap._shortcut(b"data: [DONE]\n\n", 6) is None
    assert tap._shortcut(b'data: {"error":{"message":"x"}}\n\n', 6) is None
