"""Server-sent events as the provider SDKs decode them, read from the bytes on their way to the SDK.

openai 3.x and anthropic 2.x decode ``text/event-stream`` bodies by the WHATWG event-stream rules — lines end
at CR, LF or CRLF (a CR and the LF after it may arrive in different reads); ``field:value`` with one optional
space after the colon; ``:`` starts a comment; ``data`` lines of one event are joined with LF; a blank line
dispatches — with one difference this module keeps: a blank line dispatches an event when *any* of
``event``, ``data``, ``retry`` or the (never reset) last event id is set, not only ``data``. So a run of blank
lines after an ``id:`` line gives the SDK empty events, which it fails to parse; what the caller sees is what
this parser sees.

:class:`EventReader` is the general, incremental parser. It also keeps each event's raw lines, so a tap that
must change the stream (hide the usage event it asked for, cut the ``"usage": null`` member the request added
to every chunk) re-emits every other byte as the server sent it. Taps use it only when a read is not the one
shape OpenAI and Anthropic send — one whole event, ``data: {...}`` and a blank line — which they read without
it; both give the same events (``tests/test_sse_differential.py`` checks it against the SDKs' own decoders).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable

__all__ = ["CRLF_TAIL", "Event", "EventReader", "cut", "null_member_cuts", "one_event"]

_LINE_END = re.compile(rb"[\r\n]")
_CR, _LF = 13, 10


class Event:
    """One dispatched event: its name (``event:``, None when unset or empty), its data (``data`` lines joined
    with LF), and, for re-emission, its raw lines up to and including the blank line that dispatched it."""

    __slots__ = ("data", "data_lines", "lines", "name")

    def __init__(self, name: bytes | None, data: bytes, lines: list[bytes], data_lines: list[int]) -> None:
        self.name = name
        self.data = data
        self.lines = lines
        self.data_lines = data_lines
        """Indexes in ``lines`` of the ``data`` lines."""

    def with_data(self, data: bytes) -> bytes:
        """The event's raw bytes with its data replaced by ``data`` (as ``data:`` lines where the first data line
        was; its other lines as they were)."""
        out: list[bytes] = []
        data_lines = set(self.data_lines)
        # The line end the server gave its last data line: the SDKs' older decoders hand an event on at a doubled
        # line end of one kind (``\r\r``, ``\n\n``, ``\r\n\r\n``), so an LF before a CRLF blank line would hold
        # it back (until the next event, or for good if the connection then fails). The last one, not the first:
        # what follows it never starts with an LF a CR would take for its own.
        last = self.lines[self.data_lines[-1]]
        end = b"\r\n" if last.endswith(b"\r\n") else last[-1:] if last[-1:] in (b"\r", b"\n") else b"\n"
        for i, line in enumerate(self.lines):
            if i not in data_lines:
                out.append(line)
            elif i == self.data_lines[0]:
                out.extend(b"data: " + part + end for part in data.split(b"\n"))
        return b"".join(out)

    def raw(self) -> bytes:
        return b"".join(self.lines)


def one_event(chunk: bytes) -> tuple[bytes | None, bytes] | None:
    """``(name, data)`` when ``chunk`` is exactly one whole event — ``data: X`` or ``event: N`` then ``data: X``,
    then a blank line, LF-terminated, no CR — the shape OpenAI and Anthropic flush per event; else None. Valid
    only when the reader holds nothing pending (:attr:`EventReader.idle`)."""
    if chunk[-2:] != b"\n\n" or _CR in chunk:
        return None
    end = len(chunk) - 2
    line_end = chunk.find(b"\n")
    name = None
    if chunk[:5] == b"data:":
        if line_end != end:
            return None
        line = chunk[5:end]
    elif chunk[:6] == b"event:":
        name = chunk[6:line_end]
        if name[:1] == b" ":
            name = name[1:]
        start = line_end + 1
        if chunk[start:start + 5] != b"data:" or chunk.find(b"\n", start) != end:
            return None
        line = chunk[start + 5:end]
    else:
        return None
    return name or None, line[1:] if line[:1] == b" " else line


class _CRLFTail:
    """The LF of a CRLF whose CR ended the previous read: it belongs to the line end before it."""

    __slots__ = ()


CRLF_TAIL = _CRLFTail()


class EventReader:
    """Incremental event-stream parser: :meth:`feed` bytes, get the events they complete."""

    __slots__ = ("_data", "_data_lines", "_last_id", "_lines", "_name", "_partial", "_retry", "_skip_lf")

    def __init__(self) -> None:
        self._partial: list[bytes] = []  # a line not yet ended, in pieces (a long line over many reads)
        self._skip_lf = False  # the last read ended in CR: an LF first in the next read ends the same line
        self._name: bytes | None = None
        self._data: list[bytes] = []
        self._data_lines: list[int] = []
        self._retry = False
        self._last_id = False  # never reset by a dispatch, as the SDKs do
        self._lines: list[bytes] = []  # raw lines of the event being read, terminators included

    @property
    def idle(self) -> bool:
        """Nothing is pending: the next read starts on a line and event boundary."""
        return not self._partial and not self._lines and not self._skip_lf

    def feed(self, chunk: bytes) -> list[Event | bytes | _CRLFTail]:
        """What ``chunk`` completes, in order: events; raw bytes that belong to no event (a blank line that
        dispatches nothing, with the comments before it), to pass on as they are; and :data:`CRLF_TAIL` for an
        LF that completes the CRLF an earlier read ended in, once what that CR ended was returned (pass it on
        only if that was passed on)."""
        out: list[Event | bytes | _CRLFTail] = []
        start = 0
        if self._skip_lf:
            self._skip_lf = False
            if chunk[:1] == b"\n":
                if self._lines:  # the line it ends is still pending: keep the byte with it
                    self._lines[-1] += b"\n"
                else:
                    out.append(CRLF_TAIL)
                start = 1
        size = len(chunk)
        for match in _LINE_END.finditer(chunk, start):
            end = match.start()
            if end < start:  # the LF of a CRLF, taken with its CR
                continue
            stop = end + 1
            if chunk[end] == _CR:
                if stop < size:
                    if chunk[stop] == _LF:
                        stop += 1
                else:
                    self._skip_lf = True
            if self._partial:
                self._partial.append(chunk[start:end])
                line = b"".join(self._partial)
                raw = line + chunk[end:stop]
                self._partial = []
            else:
                line = chunk[start:end]
                raw = chunk[start:stop]
            self._line(line, raw, out)
            start = stop
        if start < size:
            self._partial.append(chunk[start:])
        return out

    def _line(self, line: bytes, raw: bytes, out: list[Event | bytes | _CRLFTail]) -> None:
        if not line:
            if self._name is None and not self._data and not self._last_id and not self._retry:
                out.extend(self._lines)  # comments only, then a blank line: nothing is dispatched
                self._lines = []
                out.append(raw)
                return
            self._lines.append(raw)
            out.append(Event(self._name, b"\n".join(self._data), self._lines, self._data_lines))
            self._name, self._data, self._data_lines, self._retry, self._lines = None, [], [], False, []
            return
        self._lines.append(raw)
        if line[:1] == b":":
            return
        field, _, value = line.partition(b":")
        if value[:1] == b" ":
            value = value[1:]
        if field == b"data":
            self._data_lines.append(len(self._lines) - 1)
            self._data.append(value)
        elif field == b"event":
            self._name = value or None  # the SDKs treat an empty event name as none
        elif field == b"id":
            if b"\0" not in value:
                self._last_id = bool(value)
        elif field == b"retry":
            try:
                int(value.decode("utf-8", "replace"))  # as the SDKs do, on the decoded text
            except ValueError:
                return
            self._retry = True

    def held(self) -> bytes:
        """The bytes of what is pending (a partial event and line), without letting go of them."""
        return b"".join(self._lines) + b"".join(self._partial)

    def rest(self) -> bytes:
        """What is left unfinished at the end of the body: a partial event, which the SDKs never dispatch."""
        rest = b"".join(self._lines) + b"".join(self._partial)
        self._lines, self._partial = [], []
        return rest


# -- cutting a top-level member out of a JSON object text, byte for byte ------------------------------------------
_JSON_TOKEN = re.compile(rb'"(?:[^"\\]|\\.)*"|[{}\[\]:,]')


def _key(token: bytes) -> str | None:
    if b"\\" not in token:
        return token[1:-1].decode("utf-8", "replace")
    try:
        key = json.loads(token)
    except ValueError:
        return None
    return key if isinstance(key, str) else None


def null_member_cuts(text: bytes, key: str) -> list[tuple[int, int]] | None:
    """The byte ranges to cut from the JSON object ``text`` so that it no longer has the top-level member
    ``key`` whose value is ``null`` (a separating comma included), leaving every other byte as it was.

    ``[]``: the object has no such member. None: ``key`` is present with a value other than null (or ``text``
    is not an object), so nothing must be cut."""
    depth = 0
    cuts: list[tuple[int, int]] = []
    sep = -1  # position of the top-level '{' or ',' before the current member
    name: str | None = None
    value_at = -1
    first = True
    for match in _JSON_TOKEN.finditer(text):
        token = match.group()
        c = token[0]
        if depth == 0:
            if c != 0x7B:  # '{'
                return None
            depth, sep = 1, match.end()
            continue
        if depth == 1:
            if c == 0x22 and value_at < 0 and name is None:  # a member's key
                name = _key(token)
                continue
            if c == 0x3A and value_at < 0:  # ':'
                value_at = match.end()
                continue
            if c in (0x2C, 0x7D):  # ',' or '}' ends a member
                if name == key:
                    if text[value_at:match.start()].strip() != b"null":
                        return None
                    if first:
                        if c == 0x2C:
                            cuts.append((sep, match.end()))
                        else:
                            cuts.append((sep, match.start()))
                    else:
                        cuts.append((sep - 1, match.start()))
                if c == 0x7D:
                    return cuts if text[match.end():].strip() == b"" else None
                # the next member starts after this comma; a cut first member leaves the next one first
                first = first and name == key
                sep, name, value_at = match.end(), None, -1
                continue
        if c in (0x7B, 0x5B):  # '{' '['
            depth += 1
        elif c in (0x7D, 0x5D):  # '}' ']'
            depth -= 1
    return None


def cut(text: bytes, cuts: Iterable[tuple[int, int]]) -> bytes:
    """``text`` without the byte ranges ``cuts`` (ascending, not overlapping)."""
    out = []
    at = 0
    for start, end in cuts:
        out.append(text[at:start])
        at = end
    out.append(text[at:])
    return b"".join(out)
