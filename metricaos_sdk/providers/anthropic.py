"""Anthropic usage extraction: the Messages API (first-party, ``beta``, Bedrock, Vertex), plain and streamed.

Anthropic reports prompt tokens in three disjoint buckets — ``input_tokens`` (neither read from nor written
to the cache), ``cache_read_input_tokens`` and ``cache_creation_input_tokens`` — where our buckets are
inclusive. :func:`message_usage` folds the three into ``input_tokens`` and keeps the reads and writes as
its subsets; writes are split into 5-minute and 1-hour TTLs when ``cache_creation`` gives them.
``output_tokens`` already includes thinking (``output_tokens_details.thinking_tokens``).

Streams: ``message_start`` carries the input and cache counts (its ``output_tokens`` is a placeholder);
each ``message_delta`` carries *cumulative* totals — output always, input, cache and server-tool counts
when they changed — so the last one wins and nothing is ever summed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..usage import Usage
from .base import Endpoint, InvalidUsage, checked, count, details, shown

__all__ = ["ENDPOINTS", "MessageStreamState", "message_usage"]


def message_usage(usage: Any) -> Usage | None:
    """A Messages API ``usage`` object in our inclusive buckets; None when the body has none."""
    if usage is None:
        return None
    if not isinstance(usage, Mapping):
        raise InvalidUsage(f"usage={shown(usage)}")
    total = _iteration(usage)
    # Compaction iterations (beta context management) are billed but, unlike every other iteration,
    # left out of the top-level counts: add them.
    iterations = usage.get("iterations")
    if iterations is not None:
        if not isinstance(iterations, list):
            raise InvalidUsage(f"iterations={shown(iterations)}")
        for item in iterations:
            if isinstance(item, Mapping) and item.get("type") == "compaction":
                total = total + _iteration(item)
    server_tools = details(usage, "server_tool_use")
    thinking = count(details(usage, "output_tokens_details"), "thinking_tokens")
    return checked(
        Usage(
            input_tokens=total.input_tokens,
            output_tokens=total.output_tokens,
            cached_input_tokens=total.cached_input_tokens,
            cache_write_tokens=total.cache_write_tokens,
            cache_write_5m_tokens=total.cache_write_5m_tokens,
            cache_write_1h_tokens=total.cache_write_1h_tokens,
            reasoning_tokens=thinking,
            web_search_requests=count(server_tools, "web_search_requests"),
        ),
        usage,
    )


def _iteration(usage: Mapping[str, Any]) -> Usage:
    """Token counts of one usage object (top level or one iteration), cache buckets folded into input."""
    reads = count(usage, "cache_read_input_tokens")
    writes = count(usage, "cache_creation_input_tokens")
    ttl = details(usage, "cache_creation")
    return Usage(
        input_tokens=count(usage, "input_tokens") + reads + writes,
        output_tokens=count(usage, "output_tokens"),
        cached_input_tokens=reads,
        cache_write_tokens=writes,
        cache_write_5m_tokens=count(ttl, "ephemeral_5m_input_tokens"),
        cache_write_1h_tokens=count(ttl, "ephemeral_1h_input_tokens"),
    )


_OUTPUT_FIELDS = frozenset({"output_tokens", "output_tokens_details"})


def _tier(usage: Any) -> str | None:
    tier = usage.get("service_tier") if isinstance(usage, Mapping) else None
    return tier if isinstance(tier, str) else None


class MessageStreamState:
    """A Messages stream: id, model and input counts from ``message_start``, totals from the last
    ``message_delta``, completion at ``message_stop``, failure at an ``error`` event.

    Keeps one usage snapshot, updated in place: constant memory whatever the length.
    """

    __slots__ = ("_totals", "done", "error_type", "model", "partial", "problem", "response_id", "service_tier", "usage")

    def __init__(self, injected: bool) -> None:
        self.usage: Usage | None = None
        self.partial: Usage | None = None
        self.problem: str | None = None
        self.model: str | None = None
        self.response_id: str | None = None
        self.service_tier: str | None = None
        self.done = False
        self.error_type: str | None = None
        self._totals: dict[str, Any] = {}
        """The usage snapshot: message_start's object, updated by each message_delta."""

    def on_event(self, name: str | None, data: Mapping[str, Any], *, first: bool) -> bool:
        kind = data.get("type")
        if kind == "message_start":
            message = data.get("message")
            if not isinstance(message, Mapping):
                return False
            self.response_id = message.get("id") if isinstance(message.get("id"), str) else None
            self.model = message.get("model") if isinstance(message.get("model"), str) else None
            raw = message.get("usage")
            self.service_tier = _tier(raw)
            if isinstance(raw, Mapping):
                self._totals = dict(raw)
            try:
                # Its output_tokens is a placeholder: only the input side counts until a message_delta.
                start = {k: v for k, v in self._totals.items() if k not in _OUTPUT_FIELDS}
                self.partial = message_usage(start) if raw is not None else None
            except InvalidUsage as exc:
                self.problem = str(exc)
        elif kind == "message_delta":
            raw = data.get("usage")
            if not isinstance(raw, Mapping):
                return False
            # Cumulative totals: a field present here replaces the earlier value, one left out keeps it.
            self._totals.update((k, v) for k, v in raw.items() if v is not None)
            self.service_tier = _tier(raw) or self.service_tier
            try:
                self.usage, self.problem = message_usage(self._totals), None
            except InvalidUsage as exc:
                self.usage, self.problem = None, str(exc)
        elif kind == "message_stop":
            self.done = True
        if name == "error" or kind == "error":  # the SDK raises on an ``error`` event, whatever its data says
            error = data.get("error")
            kind = error.get("type") if isinstance(error, Mapping) else None
            self.error_type = kind if isinstance(kind, str) else "error"
            self.done = True
        return False


def _body_usage(body: Mapping[str, Any]) -> Usage | None:
    return message_usage(body.get("usage"))


MESSAGES = Endpoint(
    "anthropic",
    "message",
    _body_usage,
    MessageStreamState,
    parse_tokens=(b"usage",),
    # The SDK acts on event names: it skips unnamed events and pings, and raises on ``error`` whatever its data.
    named_events=True,
    watched_names=(b"message_start", b"message_delta", b"message_stop", b"error"),
    content_name=b"content_block_delta",
)

ENDPOINTS: dict[str, Endpoint] = {
    "/v1/messages": MESSAGES,
    "/v1/messages?beta=true": MESSAGES,
}
"""Billable paths as the SDK's resources name them, before Bedrock or Vertex rewrite them.
``/v1/messages/count_tokens`` is free and ``/v1/messages/batches`` is billed when the batch runs, not per
request: neither is metered."""
