"""The tap for AWS event-stream bodies: Bedrock's ``invoke-with-response-stream``.

Bedrock frames each Anthropic stream event in a binary message (``application/vnd.amazon.eventstream``)::

    total length (4) | headers length (4) | prelude CRC (4) | headers | payload | message CRC (4)

whose payload is ``{"bytes": "<base64 of the event's JSON>"}``; a failure arrives as a frame whose
``:message-type`` header is ``exception``. The bytes pass through untouched — Bedrock bodies are never
rewritten — and are read from a copy, frame by frame, with the same stream state as first-party SSE.
Only the events that can carry usage or end the stream are decoded; content deltas are only counted.
"""

from __future__ import annotations

import base64
import json
import logging
import struct
from typing import Any

from .call import MeteredCall
from .sse_tap import SSETap

__all__ = ["EventStreamTap"]

log = logging.getLogger("metricaos_sdk")

_PRELUDE = struct.Struct(">II")
_BYTES_KEY = b'"bytes":"'
# A content delta is recognised on its base64 form, without decoding it: 24 bytes encode to 32 characters.
_CONTENT_B64 = base64.b64encode(b'{"type":"content_block_delta"'[:24])
_EXCEPTION = b"\x07\x00\x09exception"  # the string header value of ``:message-type: exception``
# Bytes taken by each header value type after its type byte (0 and 1 are booleans with no value);
# None: a 2-byte length prefix follows.
_HEADER_SIZES: dict[int, int | None] = {0: 0, 1: 0, 2: 1, 3: 2, 4: 4, 5: 8, 6: None, 7: None, 8: 8, 9: 16}


class EventStreamTap(SSETap):
    """An AWS event-stream body; keeps only the unfinished frame and the stream state."""

    __slots__ = ("_buffer",)

    def __init__(self, inner: Any, call: MeteredCall) -> None:
        super().__init__(inner, call, None, filtering=False)
        self._buffer = b""

    def _feed(self, chunk: bytes) -> bytes:
        if self._broken:
            return chunk
        try:
            buffer = self._buffer + chunk if self._buffer else chunk
            at, size = 0, len(buffer)
            while size - at >= 12:
                total, headers_length = _PRELUDE.unpack_from(buffer, at)
                if total < 16 or size - at < total:
                    break
                start = at + 12
                self._frame(buffer[start:start + headers_length], buffer[start + headers_length:at + total - 4])
                at += total
            self._buffer = buffer[at:] if at else buffer
        except Exception:
            self._call.meter._fault("event-stream observation failed; passing the rest through unread")
            self._broken = True
            self._buffer = b""
        return chunk

    def _frame(self, headers: bytes, payload: bytes) -> None:
        self._events += 1
        at = payload.find(_BYTES_KEY)
        if at >= 0:
            start = at + len(_BYTES_KEY)
            if payload.startswith(_CONTENT_B64, start):
                self._chunks += 1  # the bulk of a stream: counted, never decoded
                return
            data = json.loads(base64.b64decode(payload[start:payload.index(b'"', start)]))
            if isinstance(data, dict):
                self._state.on_event(data.get("type"), data, first=self._events == 1)
        elif _EXCEPTION in headers:
            fields = _headers(headers)
            error = {"type": "error", "error": {"type": fields.get(":exception-type", "exception")}}
            self._state.on_event("error", error, first=self._events == 1)
        if self._state.done:
            self._complete()

    def _end(self) -> bytes:
        self._buffer = b""  # an incomplete frame at the end carries nothing we can read
        self._finish_partial("ok", None)
        return b""


def _headers(raw: bytes) -> dict[str, Any]:
    """The string headers of a frame (``:message-type``, ``:event-type``, ``:exception-type`` …)."""
    out: dict[str, Any] = {}
    at = 0
    while at < len(raw):
        name_length = raw[at]
        name = raw[at + 1:at + 1 + name_length].decode("utf-8", "replace")
        kind = raw[at + 1 + name_length]
        at += 2 + name_length
        size = _HEADER_SIZES[kind]
        if size is None:
            (length,) = struct.unpack_from(">H", raw, at)
            value = raw[at + 2:at + 2 + length]
            if kind == 7:
                out[name] = value.decode("utf-8", "replace")
            at += 2 + length
        else:
            at += size
    return out
