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

__all__ = ["Endpoint", "InvalidUsage", "StreamState", "checked", "count", "details"]


class InvalidUsage(ValueError):
    """The provider's usage payload is impossible; the message says what was received."""


MAX_COUNT = 2**53 - 1
"""The largest count accepted: far beyond any real call, and a count above it would not survive a JSON
number read as a double downstream (past 2**63 - 1, SQLite could not even store it)."""


def count(payload: Mapping[str, Any], key: str) -> int:
    """A token count from ``payload[key]``: missing or null is 0; anything but an int from 0 to
    :data:`MAX_COUNT` is invalid."""
    value = payload.get(key)
    if type(value) is int and 0 <= value <= MAX_COUNT:  # bool is not a count: type(), not isinstance()
        return value
    if value is None:
        return 0
    raise InvalidUsage(f"{key}={value!r}")


def details(payload: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    """A nested usage object (``prompt_tokens_details``, ``cache_creation`` …): missing or null is ``{}``."""
    value = payload.get(key)
    if type(value) is dict:  # parsed JSON: skip the ABC check
        return value
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidUsage(f"{key}={value!r}")
    return value


def checked(usage: Usage, received: Mapping[str, Any]) -> Usage:
    """``usage`` if it is possible, else :class:`InvalidUsage` naming the problem and what was received."""
    problems = usage.problems()
    if problems:
        raise InvalidUsage(f"{'; '.join(problems)} (received {dict(received)!r})")
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
    terminal_event: bytes | None = None
    """Raw start of the event that ends a stream without carrying usage (``data: [DONE]``)."""
    text_pattern: re.Pattern[bytes] | None = None
    """Finds the JSON-escaped text a raw SSE event delivers (its group 1), without parsing the event: the
    output of a stream whose usage never arrives is then counted over that text (``OutputText``) rather
    than as one token per event."""
    watched_events: tuple[bytes, ...] = ()
    """Raw starts of events to parse besides the first and those carrying usage (``event: message_stop``)."""
    content_event: bytes | None = None
    """Raw start of the events that carry generated content, counted for output estimates; None: every
    event after the first."""
