"""What every provider extractor returns, and the strict reading of token counts.

Extractors are pure functions of parsed JSON: no I/O, no clock, no globals. A malformed usage payload
raises :class:`InvalidUsage`, which the caller turns into an event flagged ``usage_status="invalid"``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from ..usage import Usage

__all__ = ["Endpoint", "InvalidUsage", "StreamState", "checked", "count", "details", "shown"]


class InvalidUsage(ValueError):
    """The provider's usage payload is impossible; the message says what was received."""


MAX_COUNT = 2**53 - 1
"""The largest count accepted: far beyond any real call, and a count above it would not survive a JSON
number read as a double downstream (past 2**63 - 1, SQLite could not even store it)."""


_SHOWN = 400  # characters of what was received, at most, in a usage problem


def shown(value: Any, depth: int = 0) -> str:
    """``value`` as a usage problem may show it: numbers, booleans and null as they are; text never (it is the
    provider's, and could echo a prompt or a key), only its length; objects a level deep; all of it bounded."""
    if value is None or type(value) in (bool, int, float):
        text = repr(value)
        return text if len(text) <= 40 else text[:39] + "…"
    if isinstance(value, str):
        return f"<text of {len(value)} characters>"
    if isinstance(value, Mapping):
        if depth >= 2:
            return f"<object of {len(value)} fields>"
        items = []
        for k, v in value.items():
            name = k if isinstance(k, str) and k.isidentifier() and len(k) <= 60 else "<key>"
            items.append(f"{name!r}: {shown(v, depth + 1)}")
        text = "{" + ", ".join(items) + "}"
        return text if len(text) <= _SHOWN else text[: _SHOWN - 2] + "…}"
    if isinstance(value, (list, tuple)):
        return f"<list of {len(value)}>"
    return f"<{type(value).__name__}>"


def count(payload: Mapping[str, Any], key: str) -> int:
    """A token count from ``payload[key]``: missing or null is 0; anything but an int from 0 to
    :data:`MAX_COUNT` is invalid."""
    value = payload.get(key)
    if type(value) is int and 0 <= value <= MAX_COUNT:  # bool is not a count: type(), not isinstance()
        return value
    if value is None:
        return 0
    raise InvalidUsage(f"{key}={shown(value)}")


def details(payload: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    """A nested usage object (``prompt_tokens_details``, ``cache_creation`` …): missing or null is ``{}``."""
    value = payload.get(key)
    if type(value) is dict:  # parsed JSON: skip the ABC check
        return value
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidUsage(f"{key}={shown(value)}")
    return value


def checked(usage: Usage, received: Mapping[str, Any]) -> Usage:
    """``usage`` if it is possible, else :class:`InvalidUsage` naming the problem and what was received."""
    problems = usage.problems()
    if problems:
        raise InvalidUsage(f"{'; '.join(problems)} (received {shown(received)})")
    return usage


class StreamState(Protocol):
    """Running totals of one streamed response. Memory stays constant whatever the number of events."""

    usage: Usage | None
    problem: str | None
    model: str | None
    response_id: str | None
    service_tier: str | None
    done: bool
    """Set when the terminal event was seen: the response is complete even if the reader stops early."""
    error_type: str | None
    """Set with ``done`` when the provider ended the stream with an error; the call finishes as ``error``."""
    partial: Usage | None
    """Counts that arrived before the final usage did (Anthropic's ``message_start``); a stream cut short
    keeps them and estimates only the output."""

    def on_event(self, name: str | None, data: Mapping[str, Any], *, first: bool) -> bool:
        """Fold one parsed event in; return True to hide it from the caller (the injected usage chunk)."""


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A billable API path: how to read its usage, plain and streamed."""

    provider: str
    event_type: str
    usage_from_body: Callable[[Mapping[str, Any]], Usage | None]
    """Usage from a complete (non-streamed) JSON body; None when the body carries none."""
    stream_state: Callable[[bool], StreamState] | None = None
    """Factory of the stream accumulator; its argument says whether we injected the usage request."""
    injects_stream_usage: bool = False
    """Whether a streamed request needs ``stream_options.include_usage`` to report usage (OpenAI chat)."""
    terminal_data: bytes | None = None
    """Start of the data of the event that ends a stream without carrying usage (``[DONE]``: the SDK stops
    reading there)."""
    parse_tokens: tuple[bytes, ...] = ()
    """Substrings that make an event worth parsing (it may carry usage, an error or the end); the first event,
    and any holding a ``\\u`` escape (which could spell any key), are parsed too. Other events are counted and
    their text found without parsing them."""
    named_events: bool = False
    """The SDK acts on events by their ``event:`` name and skips those without one (and ``ping``): Anthropic."""
    watched_names: tuple[bytes, ...] = ()
    """Names of events to parse whatever their data holds (``message_stop``, ``error``)."""
    content_name: bytes | None = None
    """Name of the events that carry generated content, counted for output estimates and never parsed; None:
    every event after the first counts."""
    text_pattern: re.Pattern[bytes] | None = None
    """Finds the JSON-escaped text an event's data delivers (its group 1), without parsing the event: the
    output of a stream whose usage never arrives is then counted over that text (``OutputText``) rather
    than as one token per event."""
