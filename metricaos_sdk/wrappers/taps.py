"""Body taps: byte-stream proxies that read usage on the way through and finish the call exactly once.

A tap replaces ``response.stream`` of a successful attempt. It yields the bytes the SDK would have had
(minus an injected usage-only SSE event), and finishes its call when the body ends (``ok``), when it is
closed early or garbage-collected (``cancelled``), or when reading fails (``error``). Its hooks never raise:
an observation fault turns observation off and the bytes keep flowing.

One class serves sync and async: the chunk logic is shared, only ``__iter__``/``__aiter__`` differ.
"""

from __future__ import annotations

import json
import logging
import re
import weakref
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx2
from pydantic_core import from_json

from ..providers.base import InvalidUsage
from ..providers.output_text import OutputText
from .call import MeteredCall, failure_status

__all__ = ["JSONTap", "SSETap"]

log = logging.getLogger("metricaos_sdk")

_USAGE = re.compile(rb'"usage"\s*:\s*\{')
_EVENT_SPLIT = re.compile(rb"(\r\n\r\n|\n\n|\r\r)")
_SMALL_BODY = 256 * 1024
_NULL_USAGE = b',"usage":null'
# ``sub in data`` on bytes first tries ``sub`` as an int, formatting a TypeError it then discards (measured on
# CPython 3.11: ~10x a test by byte value, ~1.5-2x a ``find``), so per-chunk tests use those instead.
_CR = ord("\r")


class _Tap(httpx2.SyncByteStream, httpx2.AsyncByteStream):
    __slots__ = ("_armed", "_call", "_decoder", "_ended", "_inner")

    def __init__(self, inner: Any, call: MeteredCall, decoder: Any | None) -> None:
        self._inner = inner
        self._call = call
        self._decoder = decoder
        self._ended = False
        self._armed = False

    def arm(self) -> None:
        """Install as a live stream: the call is finished as cancelled, with what was observed so far, if
        the tap is garbage-collected before its body ended or was closed (an abandoned stream), or by
        :meth:`Meter.close` (at exit) while it is still open."""
        self._armed = True
        call = self._call
        call.tap = weakref.ref(self)
        if not call.open:
            call.meter._track_open(call)

    def _disarm(self) -> None:
        self._ended = True
        self._armed = False

    def __del__(self) -> None:
        # Finished here rather than by a weakref callback: the garbage collector runs those first, before
        # the tap's state (text received, events seen) could be read for the estimate.
        if self._armed:
            try:
                self.abandon()
            except Exception:  # never raise from a finalizer
                log.exception("metricaos_sdk: could not record an abandoned stream")

    def abandon(self) -> None:
        """The reader left without ending or closing the body: finish the call as cancelled."""
        self._finish_closed()

    # -- shared logic -------------------------------------------------------------------------------
    def _feed(self, chunk: bytes) -> bytes:
        raise NotImplementedError

    def _end(self) -> bytes:
        raise NotImplementedError

    def _finish_ok(self) -> bytes:
        self._disarm()
        try:
            return self._end()
        except Exception:
            log.exception("metricaos_sdk: could not read usage at the end of a response")
            self._call.finish(status="ok", problem="usage could not be read")
            return b""

    def _finish_error(self, exc: BaseException) -> None:
        self._disarm()
        call = self._call
        if call.in_request:
            # The body of a 2xx failed while the SDK is still inside request(): it retries this like a dropped
            # connection. The next attempt's tap, or the hook if the SDK gives up, finishes the call.
            call.tapped = False
            return
        self._finish_partial(failure_status(exc), type(exc).__name__)

    def _finish_closed(self) -> None:
        if not self._ended:
            self._disarm()
            self._finish_partial("cancelled", None)

    def _finish_partial(self, status: str, error_type: str | None) -> None:
        self._call.finish(status=status, error_type=error_type)

    def consume(self, body: bytes) -> bytes:
        """Observe a body that arrived already read (e.g. from a mock transport); returns what the SDK
        should see. The call is finished on return."""
        out = self._feed(body)
        return out + self._finish_ok()

    # -- sync shell ---------------------------------------------------------------------------------
    def __iter__(self) -> Iterator[bytes]:
        try:
            for chunk in self._inner:
                out = self._feed(chunk)
                if out:
                    yield out
        except GeneratorExit:
            raise  # the reader stopped early; close() will finish the call
        except BaseException as exc:
            self._finish_error(exc)
            raise
        tail = self._finish_ok()
        if tail:
            yield tail

    def close(self) -> None:
        try:
            self._inner.close()
        finally:
            self._finish_closed()

    # -- async shell --------------------------------------------------------------------------------
    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._inner:
                out = self._feed(chunk)
                if out:
                    yield out
        except GeneratorExit:
            raise
        except BaseException as exc:
            self._finish_error(exc)
            raise
        tail = self._finish_ok()
        if tail:
            yield tail

    async def aclose(self) -> None:
        try:
            await self._inner.aclose()
        finally:
            self._finish_closed()


class JSONTap(_Tap):
    """A complete JSON body: kept until the end, then its ``usage`` (and id, model, tier) are read."""

    __slots__ = ("_parts",)

    def __init__(self, inner: Any, call: MeteredCall, decoder: Any | None) -> None:
        super().__init__(inner, call, decoder)
        self._parts: list[bytes] = []

    def _feed(self, chunk: bytes) -> bytes:
        self._parts.append(chunk)
        return chunk

    def _end(self) -> bytes:
        body = b"".join(self._parts)
        self._parts = []
        if self._decoder is not None:
            body = self._decoder.decode(body)
        call = self._call
        data = _read_json_fields(body)
        try:
            usage = call.endpoint.usage_from_body(data)
            problem = None
        except InvalidUsage as exc:
            usage, problem = None, str(exc)
        call.finish(
            status="ok",
            usage=usage,
            problem=problem,
            model=data.get("model") if isinstance(data.get("model"), str) else None,
            response_id=data.get("id") if isinstance(data.get("id"), str) else None,
            service_tier=_service_tier(data),
        )
        return b""


def _service_tier(data: dict[str, Any]) -> str | None:
    """At the top level (OpenAI) or inside ``usage`` (Anthropic)."""
    tier = data.get("service_tier")
    if tier is None and isinstance(data.get("usage"), dict):
        tier = data["usage"].get("service_tier")
    return tier if isinstance(tier, str) else None


def _read_json_fields(body: bytes) -> dict[str, Any]:
    """The top-level fields we need. A large body (embeddings) is scanned for its ``usage`` object only,
    since parsing all of it costs milliseconds."""
    if len(body) <= _SMALL_BODY:
        if not body.lstrip()[:1] == b"{":
            return {}  # not JSON (a text, srt or vtt transcription): no usage to read, it will be estimated
        data = from_json(body)  # pydantic-core's parser: a third of json.loads' time
        return data if isinstance(data, dict) else {}
    fields: dict[str, Any] = {}
    at = body.rfind(b'"usage"')
    if at >= 0:
        brace = body.find(b"{", at)
        if brace >= 0:
            fields["usage"], _ = json.JSONDecoder().raw_decode(body[brace:].decode("utf-8", "replace"))
    for key in ("model", "id", "service_tier"):
        match = re.search(rb'"%s"\s*:\s*"([^"\\]{1,200})"' % key.encode(), body[-2048:]) or re.search(
            rb'"%s"\s*:\s*"([^"\\]{1,200})"' % key.encode(), body[:2048]
        )
        if match:
            fields[key] = match.group(1).decode()
    return fields


class SSETap(_Tap):
    """A server-sent-event stream: split into events, parse only the first and those carrying usage.

    Keeps running totals only (the stream state and a chunk count), so memory does not grow with length.
    When we injected the usage request, the usage-only event is cut out and the stream is re-emitted event
    by event; otherwise the caller's bytes pass through untouched and events are read from a copy.
    """

    __slots__ = ("_broken", "_buffer", "_chunks", "_content", "_events", "_filtering", "_state", "_terminal",
                 "_text", "_watched")

    def __init__(self, inner: Any, call: MeteredCall, decoder: Any | None, *, filtering: bool) -> None:
        super().__init__(inner, call, decoder)
        factory = call.endpoint.stream_state
        assert factory is not None
        self._state = factory(call.injected_usage)
        self._buffer = b""
        self._events = 0
        self._chunks = 0
        self._filtering = filtering
        self._broken = False
        self._terminal = call.endpoint.terminal_event
        # Counts the text received, for the output estimate of a stream whose usage never arrives.
        pattern = call.endpoint.text_pattern
        self._text = None if pattern is None else \
            OutputText(pattern, call.requested_model, call.meter.config.tiktoken_cache_dir)
        self._watched = call.endpoint.watched_events
        self._content = call.endpoint.content_event

    def _feed(self, chunk: bytes) -> bytes:
        if self._broken:
            return chunk
        try:
            data = self._decoder.decode(chunk) if self._decoder is not None else chunk
            if not self._buffer and data.find(b"\n\n") == len(data) - 2 >= 0 and _CR not in data:
                # The usual chunk, one whole event (servers flush per event): no split, no lists. The event
                # is observed with its trailing blank line, which no check minds. (">= 0": a one-byte read
                # has no blank line, and find()'s -1 would equal its length less two.)
                if not self._filtering:
                    self._observe(data)
                    return chunk
                # Cut "usage":null first: what is left names "usage" only if it carries usage.
                data = data.replace(_NULL_USAGE, b"")
                return b"" if self._observe(data) else data
            buffer = self._buffer + data if self._buffer else data
            if _CR in buffer:
                pieces = _EVENT_SPLIT.split(buffer)
                events, seps = pieces[0:-1:2], pieces[1:-1:2]
                self._buffer = pieces[-1]
            else:
                events = buffer.split(b"\n\n")
                self._buffer = events.pop()
                seps = None
            if not self._filtering:
                for raw in events:
                    self._observe(raw)
                return chunk
            hidden = [self._observe(raw) for raw in events]
            if not self._buffer and seps is None and not any(hidden):
                # The usual chunk: whole events, none hidden. include_usage also adds "usage":null to every
                # chunk: cut it in one pass, so the caller's chunks (to_dict(), model_fields_set,
                # iter_lines()) are the bare client's.
                return buffer.replace(_NULL_USAGE, b"")
            out = []
            for i, raw in enumerate(events):
                if not hidden[i]:
                    out.append(raw.replace(_NULL_USAGE, b""))
                    out.append(seps[i] if seps is not None else b"\n\n")
            return b"".join(out)
        except Exception:
            log.exception("metricaos_sdk: stream observation failed; passing the rest through unread")
            self._broken = True
            emitted = self._buffer if self._filtering else b""
            self._buffer = b""
            return emitted if self._filtering else chunk

    def _observe(self, raw: bytes) -> bool:
        """Fold one event in; True means hide it. Finishes the call when the terminal event passes."""
        self._events += 1
        if self._content is not None and raw.startswith(self._content):
            self._chunks += 1  # the bulk of a stream: never first, never usage, never the end
            if self._text is not None:
                self._text.feed(raw)
            return False
        first = self._events == 1
        hide = False
        if self._text is not None:
            self._text.feed(raw)
        if first or (raw.find(b'"usage"') >= 0 and _may_carry_usage(raw)) or (
                self._watched and raw.startswith(self._watched)):
            name, data = _parse_event(raw)
            if data is not None:
                hide = self._state.on_event(name, data, first=first)
        if self._state.done or (self._terminal is not None and raw.startswith(self._terminal)):
            self._complete()
        return hide

    def _complete(self) -> None:
        """The response is complete (or the provider ended it with an error event): the SDK stops reading
        here and closes, which must not count as abandonment."""
        if not self._ended:
            self._disarm()
            error_type = self._state.error_type
            self._finish_partial("error" if error_type else "ok", error_type)

    def _end(self) -> bytes:
        tail = b""
        if self._buffer:
            if not self._broken and self._observe(self._buffer):
                tail = b""
            elif self._filtering:
                tail = self._buffer
            self._buffer = b""
        self._finish_partial("ok", None)
        return tail

    def _finish_partial(self, status: str, error_type: str | None) -> None:
        state = self._state
        if self._call.finished:
            return  # already finished at the terminal event: do not count the text again
        text = self._text
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


def _may_carry_usage(raw: bytes) -> bool:
    """Whether an event holding ``"usage"`` may hold a usage object: cheap substring tests first, since a
    stream that asked for usage carries ``"usage":null`` in every chunk."""
    if raw.find(b'"usage":{') >= 0:
        return True
    if raw.count(b'"usage"') == 1 and raw.find(b'"usage":null') >= 0:
        return False
    return _USAGE.search(raw) is not None


def _parse_event(raw: bytes) -> tuple[str | None, Any]:
    name = None
    data_lines = []
    for line in raw.splitlines():
        if line.startswith(b"data:"):
            data_lines.append(line[6:] if line[5:6] == b" " else line[5:])
        elif line.startswith(b"event:"):
            name = line[6:].strip().decode("utf-8", "replace")
    if data_lines:
        payload = b"\n".join(data_lines)
    elif raw.lstrip()[:1] == b"{":
        payload = raw  # not SSE at all: a server that answered a streamed call with one JSON body
    else:
        return name, None
    if payload.strip() == b"[DONE]":
        return name, None
    try:
        data = from_json(payload)
    except ValueError:
        return name, None
    return name, data if isinstance(data, dict) else None
