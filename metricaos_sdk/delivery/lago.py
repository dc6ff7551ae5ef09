"""Lago events: one per event and billable metric ``code``, batched to ``POST {api_url}/api/v1/events/batch``.

Each :class:`~metricaos_sdk.UsageEvent` becomes one Lago event per code in ``codes``::

    {"transaction_id": f"{event.id}:{code}", "external_subscription_id": ..., "code": code,
     "timestamp": "1751371200.123", "properties": {"input_tokens": 812, "cost_usd_micros": 1520, ...}}

- ``transaction_id`` is deterministic (Lago's unique key is organisation + subscription + transaction_id, so each
  code of an event needs its own); ``timestamp`` is the event's own time in Unix seconds with milliseconds, as a
  string, the same on every retry (Lago's ClickHouse store keeps one row per code, subscription, timestamp and
  transaction_id: a resend with the same values replaces the row instead of adding one).
- ``properties`` are the fields named in ``properties``: integers for token counts and ``cost_usd_micros``
  (integer micro-USD, rounded half up), plain decimal strings (never ``1E-7``) for ``cost_usd`` and ``credits`` —
  Lago sums a property as ``numeric`` only when it matches ``^-?\\d+(\\.\\d+)?$`` — and text for ``model``,
  ``feature`` …; a value that is unknown (``None``) is left out, never sent as 0.
- ``external_subscription_id`` comes from ``subscriptions`` (a mapping or a callable from our ``customer_id``); an
  event without one, or not billable (unless ``include_non_billable``), is skipped — settled and counted.

A request carries at most ``batch_limit`` (100) Lago events, so a delivery takes ``100 // len(codes)`` events.
Lago validates the batch whole: one invalid event fails it with a 422 ``validation_errors`` whose
``error_details`` is keyed by index; those events are parked with Lago's words and the rest sent again at once. An
index whose only error is ``transaction_id: value_already_exist`` is a duplicate — Lago has it — so it counts as
delivered, and the others are sent again without it (Lago rolls the whole batch back when it finds one). 429,
5xx, no answer and a refused key (401, 403: never an event's fault) are retried; another 4xx parks the batch's
events (split to find the bad ones). The key is cut from every message and never in ``repr``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import httpx2

from ..errors import ConfigurationError
from ..events import UsageEvent
from ..faults import safe_text
from .destination import Result
from .http import HTTPSender, classify
from .units import Lookup, epoch_millis, look_up, micro_usd, own_cost, plain_decimal

__all__ = ["DEFAULT_PROPERTIES", "PROPERTIES", "Lago", "batch_errors", "encode_batch", "lago_events", "properties",
           "transaction_id"]

INTEGER_PROPERTIES = ("input_tokens", "output_tokens", "cached_input_tokens", "cache_write_tokens",
                      "cache_write_5m_tokens", "cache_write_1h_tokens", "reasoning_tokens", "total_tokens",
                      "web_search_requests", "attempts")
TEXT_PROPERTIES = ("model", "requested_model", "provider", "feature", "event_type", "endpoint", "customer_id",
                   "user_id", "workspace_id", "environment", "status", "service_tier", "price_id")
PROPERTIES = (*INTEGER_PROPERTIES, "cost_usd_micros", "cost_usd", "credits", *TEXT_PROPERTIES)
DEFAULT_PROPERTIES = ("input_tokens", "output_tokens", "cached_input_tokens", "reasoning_tokens", "total_tokens",
                      "cost_usd_micros", "credits", "model", "feature")
BATCH_LIMIT = 100
DUPLICATE = "value_already_exist"


def transaction_id(event_id: str, code: str) -> str:
    """The Lago ``transaction_id`` of ``code`` for our event ``event_id``: ``f"{event_id}:{code}"``."""
    return f"{event_id}:{code}"


def properties(event: UsageEvent, names: Sequence[str]) -> dict[str, int | str]:
    """The ``properties`` of ``event``'s Lago events: the named fields, unknown ones left out (pure)."""
    out: dict[str, int | str] = {}
    for name in names:
        if name == "cost_usd_micros":
            cost = own_cost(event)  # an action's cost is its calls', sent with them
            if cost is not None:
                out[name] = micro_usd(cost)
        elif name in ("cost_usd", "credits"):
            amount = own_cost(event) if name == "cost_usd" else event.credits
            if amount is not None:
                out[name] = plain_decimal(amount)
        else:
            value = getattr(event, name)
            if value is not None:
                out[name] = value if name in INTEGER_PROPERTIES else str(value)
    return out


def lago_events(event: UsageEvent, codes: Sequence[str], external_subscription_id: str,
                names: Sequence[str] = DEFAULT_PROPERTIES) -> list[dict[str, Any]]:
    """The Lago events of ``event``, one per code, in ``codes`` order (pure)."""
    ms = epoch_millis(event.timestamp)
    stamp = f"{ms // 1000}.{ms % 1000:03d}"
    props = properties(event, names)
    return [{"transaction_id": transaction_id(event.id, code), "external_subscription_id": external_subscription_id,
             "code": code, "timestamp": stamp, "properties": props} for code in codes]


def encode_batch(events: Sequence[dict[str, Any]]) -> bytes:
    """The body of ``POST /api/v1/events/batch`` (pure: the same events give the same bytes)."""
    return json.dumps({"events": list(events)}, separators=(",", ":"), ensure_ascii=False).encode()


def _words(detail: object) -> str:
    if isinstance(detail, dict):
        return "; ".join(f"{field}: {', '.join(map(str, v)) if isinstance(v, list) else v}" for field, v in detail.items())
    return str(detail)


def _is_duplicate(detail: object) -> bool:
    return isinstance(detail, dict) and set(detail) == {"transaction_id"} and detail["transaction_id"] == [DUPLICATE]


def batch_errors(response: httpx2.Response, count: int) -> tuple[set[int], dict[int, str]] | None:
    """From a 422 ``validation_errors`` keyed by index (``{"2": {"transaction_id": ["value_already_exist"]},
    "3": "expression_evaluation_failed: …"}``): the indices Lago already has, and the invalid ones with Lago's
    words. ``None`` when the answer names no index of a batch of ``count``."""
    if response.status_code != 422:
        return None
    try:
        body = response.json()
    except ValueError:
        return None
    details = body.get("error_details") if isinstance(body, dict) else None
    if not isinstance(details, dict) or not details:
        return None
    duplicates: set[int] = set()
    invalid: dict[int, str] = {}
    for key, detail in details.items():
        try:
            index = int(key)
        except (TypeError, ValueError):
            return None  # {"events": ["too_many_events"]}: about the batch, not an event
        if not 0 <= index < count:
            return None
        if _is_duplicate(detail):
            duplicates.add(index)
        else:
            invalid[index] = _words(detail)
    return duplicates, invalid


class Lago:
    """Deliver events to Lago (see the module docstring), with the API key as a bearer token (never logged)."""

    def __init__(self, api_key: str, *, codes: str | Sequence[str], subscriptions: Lookup,
                 properties: Sequence[str] = DEFAULT_PROPERTIES, api_url: str = "https://api.getlago.com",
                 name: str = "lago", include_non_billable: bool = False, batch_limit: int = BATCH_LIMIT,
                 timeout: float = 30.0, transport: httpx2.BaseTransport | None = None) -> None:
        if not api_key:
            raise ConfigurationError("Lago needs its API key: pass api_key, or api_key_env in a delivery file.")
        self.codes = [codes] if isinstance(codes, str) else list(codes)
        if not self.codes or not all(self.codes) or len(set(self.codes)) != len(self.codes):
            raise ConfigurationError(f"codes must name one or more distinct billable metric codes, not {codes!r}.")
        unknown = sorted(set(properties) - set(PROPERTIES))
        if unknown:
            raise ConfigurationError(f"Lago properties {unknown} are not fields we send: use {', '.join(PROPERTIES)}.")
        if len(self.codes) > batch_limit:
            raise ConfigurationError(f"{len(self.codes)} codes do not fit a batch of {batch_limit} Lago events.")
        self.name = name
        self.max_batch = batch_limit // len(self.codes)
        self.subscriptions = subscriptions
        self.properties = tuple(properties)
        self.include_non_billable = include_non_billable
        self.url = f"{api_url.rstrip('/')}/api/v1/events/batch"
        self._secrets = (api_key,)
        self._sender = HTTPSender(headers={"authorization": f"Bearer {api_key}"}, timeout=timeout, transport=transport)

    def accepts(self, event: UsageEvent) -> str | None:
        if not event.billable and not self.include_non_billable:
            return "not billable"
        if event.customer_id is None:
            return "no customer_id"
        if look_up(self.subscriptions, event.customer_id) is None:
            return f"customer {event.customer_id!r} has no Lago subscription in the mapping"
        return None

    def deliver(self, events: Sequence[UsageEvent]) -> Result:
        owed: list[tuple[str, dict[str, Any]]] = []
        for event in events:
            subscription = look_up(self.subscriptions, event.customer_id)
            if subscription is None:  # the mapping changed since accepts()
                return Result.refuse("no Lago subscription", {event.id: "customer has no Lago subscription now"})
            owed += [(event.id, item) for item in lago_events(event, self.codes, subscription, self.properties)]
        while owed:  # each turn sends fewer: Lago's duplicates are dropped from the batch
            answer = self._sender.post(self.url, encode_batch([item for _, item in owed]))
            if isinstance(answer, Result):
                return answer
            found = batch_errors(answer, len(owed))
            if found is None:
                return self._judge(answer)
            duplicates, invalid = found
            if invalid:
                refused: dict[str, str] = {}
                for index, words in sorted(invalid.items()):
                    refused.setdefault(owed[index][0], safe_text(self._cut(f"422 {words}"), 300))
                return Result.refuse(f"Lago refused {len(refused)} event(s) of the batch", refused)
            owed = [pair for index, pair in enumerate(owed) if index not in duplicates]
        return Result.ok()

    def _judge(self, response: httpx2.Response) -> Result:
        result = classify(response, secrets=self._secrets)
        if result.outcome == "delivered":
            return result
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict) and ("error" in body or "code" in body):
            words = f"{body.get('code') or body.get('error')}"
            if body.get("error_details"):
                words += f": {json.dumps(body['error_details'], separators=(',', ':'))}"
        else:
            words = response.text
        reason = safe_text(self._cut(f"{response.status_code} {words}"), 300)
        return Result.again(reason, result.retry_after) if result.outcome == "retry" else Result.refuse(reason)

    def _cut(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "<redacted>")
        return text

    def close(self) -> None:
        self._sender.close()

    def __repr__(self) -> str:  # never the key
        return f"Lago({self.url!r}, name={self.name!r}, codes={self.codes!r})"
