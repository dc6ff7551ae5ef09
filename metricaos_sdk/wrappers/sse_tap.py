"""SSETap: the tap of a server-sent-event stream (chat, completions, Responses, Anthropic), read as the SDK decodes it.

Split from ``taps.py`` (the shell every tap shares): this is the per-chunk logic, the one place a stream's cost
per event accrues.
"""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic_core import from_json

from ..providers.body import read_json_fields
from ..providers.output_text import OutputText
from .call import MeteredCall
from .closing import sdk_reader_running
from .sse import CRLF_TAIL, Event, EventReader, cut, null_member_cuts, one_event
from .taps import _KEPT_BODY, Tap

__all__ = ["SSETap"]

_BLANK = (b"\n", b"\r\n", b"\r")
_UNKNOWN = b"\\u"  # an escape could spell any key: such an event is always parsed
# The top-level ``"usage":null`` member OpenAI adds to each chunk when usage is asked for, last but for plain
# members after it (``"obfuscation"``): when a chunk has this and no other mention of usage, it carries none.
_NULL_USAGE = b',"usage":null'
_NULL_USAGE_LAST = _NULL_USAGE + b"}"
_PLAIN_TAIL = re.compile(rb'(?:,"[^"\\]*":(?:"[^"\\]*"|-?[0-9][0-9.eE+-]*|true|false|null))*\}')


def _compact_null_usage(data: bytes) -> int:
    """Where the compact top-level ``,"usage":null`` member starts in ``data``, or -1 if it is not there (or not
    provably top-level and alone: then the general path decides)."""
    at = data.find(_NULL_USAGE)
    if at < 0 or data.find(b'"usage"', at + 13) >= 0 or data.find(b'"usage"', 0, at) >= 0:
        return -1
    return at if _PLAIN_TAIL.fullmatch(data, at + 13) is not None and data[:1] == b"{" else -1


class SSETap(Tap):
    """A server-sent-event stream, read as the SDK decodes it (``sse.py``); only the first event and those that
    may carry usage, an error or the end are parsed.

    Keeps running totals only (the stream state and counts), so memory does not grow with length. When we
    injected the usage request, the stream is re-emitted event by event without what the injection added;
    otherwise the caller's bytes pass through untouched and events are read from a copy.
    """

    __slots__ = ("_broken", "_chunks", "_content", "_dropped", "_end_seen", "_events", "_filtering", "_kept",
                 "_kept_size", "_last_at", "_last_data", "_last_name", "_named", "_prefix", "_reader", "_state",
                 "_terminal", "_text", "_tokens", "_watched")

    def __init__(self, inner: Any, call: MeteredCall, decoder: Any | None, *, filtering: bool) -> None:
        super().__init__(inner, call, decoder)
        endpoint = call.endpoint
        factory = endpoint.stream_state
        assert factory is not None
        self._state = factory(call.injected_usage)
        self._reader = EventReader()
        self._events = 0
        self._chunks = 0
        self._filtering = filtering
        self._broken = False
        self._end_seen = False
        self._last_name: bytes | None = None  # the last event _observe saw, and its number (see _sdk_rejects_last)
        self._last_data = b""
        self._last_at = -1
        self._dropped = False  # the last event was hidden: an LF completing its CRLF goes too
        self._kept: list[bytes] | None = []  # the body until its first event (a streamed call answered with JSON)
        self._kept_size = 0
        self._terminal = endpoint.terminal_data
        self._tokens = endpoint.parse_tokens
        self._named = endpoint.named_events
        self._watched = endpoint.watched_names
        self._content = endpoint.content_name
        # The bulk of a stream, read by _feed's shortcut: a content event of a named stream, or a data-only event
        # of an unnamed one, each whole in its read as providers flush them (None: no shortcut, e.g. compressed).
        self._prefix: bytes | None = None
        if decoder is None:
            if self._content is not None and not filtering:
                self._prefix = b"event: " + self._content + b"\ndata: "
            elif not self._named:
                self._prefix = b"data: "
        # Counts the text received, for the output estimate of a stream whose usage never arrives.
        pattern = endpoint.text_pattern
        self._text = None if pattern is None else \
            OutputText(pattern, call.requested_model, call.meter.config.tiktoken_cache_dir)

    def _feed(self, chunk: bytes) -> bytes:
        prefix = self._prefix
        if prefix is not None and self._kept is None and chunk.startswith(prefix) and not self._broken \
                and self._reader.idle:
            out = self._shortcut(chunk, len(prefix))
            if out is not None:
                return out
        if self._broken:
            return self._passed(chunk)
        held = self._reader.held() if self._filtering and not self._reader.idle else b""
        data: bytes | None = None
        try:
            data = self._decoder.decode(chunk) if self._decoder is not None else chunk
            if self._kept is not None:
                self._keep(data)
            if self._reader.idle:
                event = one_event(data)
                if event is not None:  # the usual read: one whole event, one data line
                    value = event[1]
                    out = self._observe(event[0], value)
                    if not self._filtering:
                        return chunk
                    if out is None:
                        self._dropped = True
                        return b""
                    self._dropped = False
                    return data if out is value else data[: len(data) - len(value) - 2] + out + b"\n\n"
            items = self._reader.feed(data)
            if not self._filtering:
                for item in items:
                    if type(item) is Event:
                        self._observe(item.name, item.data)
                return chunk
            return self._emit(items)
        except Exception:
            self._call.meter._fault("stream observation failed; passing the rest through unread")
            self._broken = True
            if not self._filtering or data is None:
                return chunk
            return held + data  # everything held back and this read, as the server sent them: nothing lost

    def _shortcut(self, chunk: bytes, start: int) -> bytes | None:
        """The usual event in fewer steps, or None to take the general path (nothing is changed then).

        Exactly what ``one_event`` and ``_observe`` do for the two events that make up almost every stream, shown
        equal by the differential tests: a content event of a named stream (counted, its text kept, never parsed),
        and a data-only event of an unnamed one that mentions no token worth parsing but, perhaps, the compact
        ``"usage":null`` member the injection added (cut when filtering). Anything else — the first event, an
        escape, a token, CR, more lines, a stream already done — goes the general way."""
        end = len(chunk) - 2
        if chunk.find(b"\n", start) != end or chunk[end:] != b"\n\n" or b"\r" in chunk or self._state.done:
            return None
        value = chunk[start:end]
        terminal = self._terminal
        if terminal is not None and value.startswith(terminal):
            return None
        if self._content is not None:  # the content event of a named stream (never filtered: see __init__)
            self._events += 1
            self._chunks += 1
            if self._text is not None:
                self._text.feed(value)
            return chunk
        if self._events == 0 or value.find(_UNKNOWN) >= 0 or (self._watched and None in self._watched):
            return None
        result = value
        tail = len(value) - 14
        null_last = value.endswith(_NULL_USAGE_LAST)  # OpenAI's chunk when usage is asked for: the member last
        for token in self._tokens:
            if token == b"usage" and null_last:
                if value.find(b'"usage"', 0, tail) >= 0 or value[:1] != b"{":
                    return None  # another mention of usage: the general path decides
                if self._filtering:
                    result = value[:tail] + b"}"
            elif value.find(token) >= 0:
                if token != b"usage":
                    return None
                null_at = _compact_null_usage(value)
                if null_at < 0:
                    return None
                if self._filtering:
                    result = value[:null_at] + value[null_at + 13:]
        self._events += 1
        if self._text is not None:
            self._text.feed(value)
        if not self._filtering:
            return chunk
        self._dropped = False
        return chunk if result is value else chunk[:start] + result + b"\n\n"

    def _passed(self, chunk: bytes) -> bytes:
        """A read once observation is off: as it came, decoded if the SDK was promised decoded bytes."""
        if self._filtering and self._decoder is not None:
            return self._decoder.decode(chunk)  # type: ignore[no-any-return]
        return chunk

    def _emit(self, items: list[Event | bytes | Any]) -> bytes:
        """The bytes to hand on for ``items`` (see ``EventReader.feed``) when the stream is filtered."""
        out: list[bytes] = []
        for item in items:
            if type(item) is Event:
                data = self._observe(item.name, item.data)
                if data is None:
                    self._dropped = True
                    continue
                self._dropped = False
                out.append(item.raw() if data is item.data else item.with_data(data))
            elif item is CRLF_TAIL:
                if not self._dropped:
                    out.append(b"\n")
            elif self._dropped and item in _BLANK:
                continue  # the gap after a hidden event went with it (after an ``id:``, the SDK would parse it)
            else:
                self._dropped = False
                out.append(item)  # type: ignore[arg-type]
        return b"".join(out)

    def _keep(self, data: bytes) -> None:
        kept = self._kept
        assert kept is not None
        kept.append(data)
        self._kept_size += len(data)
        if self._kept_size > _KEPT_BODY:
            self._kept = None

    def _observe(self, name: bytes | None, data: bytes) -> bytes | None:
        """Fold one event in. Returns what the SDK should get as its data: ``data`` itself, ``data`` without the
        ``"usage": null`` member the injection added, or None to hide the event (the usage chunk we asked for).
        Finishes the call when the event ends the stream."""
        if self._named and (name is None or name == b"ping"):
            return data  # the SDK skips it: it never reaches the caller
        self._events += 1
        self._last_name, self._last_data, self._last_at = name, data, self._events
        self._kept = None
        if self._content is not None and name == self._content:
            self._chunks += 1  # the bulk of a stream: never first, never usage, never the end
            if self._text is not None:
                self._text.feed(data)
            return data
        if self._text is not None:
            self._text.feed(data)
        result: bytes | None = data
        parse = self._events == 1 or (self._watched and name in self._watched) or data.find(_UNKNOWN) >= 0
        if not parse:
            for token in self._tokens:
                if data.find(token) >= 0:
                    if token == b"usage":
                        null_at = _compact_null_usage(data)
                        if null_at >= 0:  # only the null member OpenAI adds when usage is asked for
                            if self._filtering:
                                result = data[:null_at] + data[null_at + 13:]
                            continue
                    parse = True
                    break
        if parse:
            parsed = self._parse(name, data)
            if parsed is not None:
                if self._state.on_event(name.decode("utf-8", "replace") if name else None, parsed,
                                        first=self._events == 1):
                    result = None
                elif self._filtering and "usage" in parsed and parsed["usage"] is None:
                    cuts = null_member_cuts(data, "usage")
                    if cuts:
                        result = cut(data, cuts)
        if self._state.done or (self._terminal is not None and data.startswith(self._terminal)):
            self._complete()
        return result

    def _parse(self, name: bytes | None, data: bytes) -> dict[str, Any] | None:
        try:
            parsed = from_json(data, cache_strings="keys")  # values are seen once: keep them out of the cache
        except ValueError:
            parsed = None
        if isinstance(parsed, dict):
            return parsed
        if self._watched and name in self._watched:
            return {}  # a named event the SDK acts on whatever its data (``event: error`` with a text body)
        return None

    def _complete(self) -> None:
        """The terminal event passed (or the provider ended the stream with an error event). The call is not
        finished here: the SDK has yet to read the events before it, and may raise on one. Whoever closes the
        body next — the SDK stopping at the end, the caller, the collector — finishes it, as complete."""
        self._end_seen = True

    def _end(self) -> bytes:
        rest = self._reader.rest()
        if self._events == 0 and self._kept:  # no event at all: a streamed call answered with one JSON body
            body = b"".join(self._kept)
            self._kept = None
            fields = read_json_fields(body)
            if fields:
                self._call.observe_body(fields)
                self._call.finish(status="ok", **self._call.observed)  # type: ignore[arg-type]
        rejected = self._sdk_rejects_last()
        self._finish_partial("error" if rejected else "ok", rejected)
        return rest if self._filtering else b""

    def _sdk_rejects_last(self) -> str | None:
        """At the end of the body: the exception the SDK's reader is about to raise on the last event, or None.

        The SDKs' older decoders buffer a stream up to each doubled line end of one kind and decode what is
        left only once the body has ended, so an event the server closed otherwise (a blank line dispatching an
        empty event after an ``id:``, mixed line ends) reaches the SDK after the end: if its data is not JSON,
        the SDK raises then, with nothing left to close. Newer decoders read line by line and raise before the
        end (the close then says so). Only the SDK's own reader parses; a caller reading the bytes does not."""
        if self._last_at != self._events or self._broken:
            return None  # the last read went by the shortcut, whole: the SDK decoded it before the end
        name, data = self._last_name, self._last_data
        if self._named:  # Anthropic: unnamed events, pings and empty data are skipped; ``error`` is the state's
            if name is None or name in (b"ping", b"error") or not data:
                return None
        elif data.startswith(b"[DONE]"):
            return None
        try:
            json.loads(data.decode("utf-8", "replace"))  # as the SDKs parse it
            return None
        except ValueError:
            pass
        return "JSONDecodeError" if sdk_reader_running() else None

    def _finish_partial(self, status: str, error_type: str | None) -> None:
        if self._call.finished:
            return
        state = self._state
        if state.error_type is not None:  # the provider ended it with an error event (which the SDK may raise on)
            status, error_type = "error", state.error_type
        elif status == "cancelled" and self._end_seen:
            status = "ok"  # left after the whole response had arrived: nothing was cut short
        text = self._text
        cost = getattr(state, "provider_cost", None)
        if cost is not None:
            self._call.provider_cost = cost
        self._call.finish(
            output_estimate=text.estimate() if text is not None and state.usage is None else None,
            status=status,
            usage=state.usage,
            problem=state.problem,
            model=state.model,
            response_id=state.response_id,
            service_tier=state.service_tier,
            content_chunks=self._chunks if self._content is not None else max(self._events - 1, 0),
            error_type=error_type,
            partial=state.partial,
        )

