"""The OpenMeter destination: each event as a CloudEvent, batched to OpenMeter's (or Kong Konnect's) ingest API.

One CloudEvents 1.0 structured-mode JSON object per :class:`~metricaos_sdk.UsageEvent`, checked by
``tests/test_delivery_openmeter.py`` against OpenMeter's published schemas (``Event`` in ``api/openapi.yaml``,
``MeteringEvent`` in ``api/v3/openapi.yaml``, copied to ``tests/data/openmeter_event_schema.json``):

- ``specversion``: ``"1.0"``.
- ``id``: the event's id (a UUIDv7, made once per call: the same on every retry, process and host).
- ``source``: a stable string you configure (default ``"metricaos-sdk"``), never a hostname or pid: OpenMeter
  deduplicates on ``id`` + ``source``, so a source that changed between two sends of an event would count it
  twice. It must be a URI-reference (the spec's ``format: uri-reference``); a plain name is one.
- ``type``: what OpenMeter's meters match on (``eventType``); one configured value for every event, default
  ``"llm.usage"``. The kind of call is in ``data.event_type``.
- ``subject``: the event's ``customer_id`` (the customer key OpenMeter attributes usage to), or the configured
  ``unattributed_subject`` for events without one; with none configured those are skipped, not sent.
- ``time``: the event's timestamp (when the call started) in RFC 3339, UTC, ``Z``, always six fractional digits.
- ``datacontenttype``: ``"application/json"`` (the only value the spec allows).
- ``data``, an object, for meters' ``valueProperty`` and ``groupBy`` JSONPaths (``$.input_tokens``, ``$.tags.team``):

  - ``input_tokens``, ``output_tokens``, ``cached_input_tokens``, ``cache_write_tokens``, ``reasoning_tokens``,
    ``total_tokens``: integers, our inclusive buckets (input includes cache reads and writes; output includes
    reasoning), always present.
  - ``cost_usd_micros``: the cost in integer micro-USD, ``cost_usd × 10⁶`` rounded half up (ties away from zero).
    An integer, not a decimal: OpenMeter aggregates values as float64 (or Decimal128 when decimal precision is
    on), and integers are exact in both up to 2⁵³ (9 billion dollars) — a decimal fraction such as 0.1 is not. No
    float is ever produced.
  - ``credits_micros``: the credits the call consumed in integer micro-credits, rounded the same way, for the same
    reason (a credit quantum finer than 10⁻⁶ is rounded half up at that sixth digit).
  - ``model``, ``provider``, ``feature``, ``user_id``, ``workspace_id``, ``environment``: strings.
  - ``event_type`` (``chat_completion``, ``response``, ``embedding``, ``message`` …), ``status`` (``ok``,
    ``error``, ``cancelled``), ``usage_status`` (``reported``, ``estimated``, ``invalid``, ``none``): strings;
    ``billable``: a boolean.
  - ``tags``: the event's tags, an object of strings (always present, maybe empty).

  A value that is ``None`` (an unpriced model's cost, no feature …) is omitted, not sent as ``null``: OpenMeter
  groups a missing key as ``""`` but a ``null`` as the text ``"<nil>"`` (``openmeter/meter/parse.go``), and a
  meter summing a missing value flags that event as invalid rather than counting it as 0 — unknown is not zero.

The batch is POSTed as ``application/cloudevents-batch+json`` (a JSON array; OpenMeter's v1 handler matches the
content type exactly, so no parameters) with a bearer key, to ``/api/v1/events`` (``api="v1"``, answered 204),
``/api/v3/openmeter/events`` (``api="v3"``, OpenMeter's v3 API, answered 202), or Kong Konnect's
``https://{region}.api.konghq.com/v3/openmeter/events`` (``api="konnect"``, answered 202).

How OpenMeter answers, and what that means here:

- a duplicate (an ``id`` + ``source`` it already has, within its 32-day window by default) is accepted and
  dropped, with the same 204/202 as a new event: there is no duplicate-rejection shape, so a resent batch is
  simply a delivery;
- a bad event is a 400 ``application/problem+json`` for the whole request (nothing of it is stored): v1 says
  ``{"type": "about:blank", "title": "Bad Request", "status": 400, "detail": "invalid event: …"}``, naming no
  event, so the batch is split until the bad events are alone and parked with that message; v3 and Konnect list
  ``invalid_parameters`` whose ``field`` is a path into the body (``"2.subject"``), and an event named by its
  index is refused by itself, the rest sent again at once;
- 408, 429 (``Retry-After`` honoured) and 5xx are retried. A 5xx may come after part of a batch was stored (v1
  forwards events one by one); the retry resends all of it and OpenMeter drops the ones it has;
- 401 and 403 (a wrong key or a key without the right) refuse, like every other 4xx: the events are parked.

Non-billable events (``billable=False``: a non-production environment, a call marked free) are skipped by default
(``billable_only=True``): OpenMeter is a billing engine and its meters would count them. Pass
``billable_only=False`` to send them too (``data.billable`` tells them apart in a meter's filter).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from decimal import ROUND_HALF_UP, Context, Decimal
from typing import Any, Literal

import httpx2

from ..errors import ConfigurationError
from ..events import UsageEvent
from ..faults import safe_text, safe_url
from .destination import Result
from .http import HTTPSender, classify
from .units import own_cost

__all__ = ["CONTENT_TYPE", "OpenMeter", "encode_batch", "encode_cloudevents", "micros"]

CONTENT_TYPE = "application/cloudevents-batch+json"
DEFAULT_SOURCE = "metricaos-sdk"
DEFAULT_TYPE = "llm.usage"

API = Literal["v1", "v3", "konnect"]
_ENDPOINTS: dict[str, tuple[str, str]] = {  # api -> (default base URL, path); the specs' `servers` and paths
    "v1": ("https://openmeter.cloud", "/api/v1/events"),
    "v3": ("https://openmeter.cloud", "/api/v3/openmeter/events"),
    "konnect": ("https://us.api.konghq.com", "/v3/openmeter/events"),
}

_TOKEN_FIELDS = ("input_tokens", "output_tokens", "cached_input_tokens", "cache_write_tokens", "reasoning_tokens",
                 "total_tokens")
_TEXT_FIELDS = ("model", "provider", "feature", "user_id", "workspace_id", "environment")
_MILLION = Decimal(1_000_000)
_EXACT = Context(prec=60)  # far beyond any amount: the product is exact before it is rounded
# RFC 3986 URI-reference characters: unreserved, reserved and percent-escapes; no spaces or controls.
_URI_REFERENCE = re.compile(r"[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=]|%[0-9A-Fa-f]{2}")


def micros(amount: Decimal | None) -> int | None:
    """``amount × 10⁶`` as an integer, rounded half up (ties away from zero); None stays None.

    >>> micros(Decimal("0.0000005")), micros(Decimal("1.23456749")), micros(Decimal("-0.0000005"))
    (1, 1234567, -1)
    """
    if amount is None:
        return None
    if not amount.is_finite():
        raise ValueError(f"an amount must be finite, not {amount}")
    return int(_EXACT.multiply(amount, _MILLION).quantize(Decimal(1), rounding=ROUND_HALF_UP, context=_EXACT))


def rfc3339(moment: datetime) -> str:
    """``moment`` in UTC as RFC 3339 with six fractional digits and ``Z`` (a naive time is taken as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def check_source(source: str) -> str:
    """``source`` if it is a usable CloudEvents source (a non-empty URI-reference), else ConfigurationError."""
    if not source or _URI_REFERENCE.sub("", source):
        raise ConfigurationError(f"An OpenMeter source must be a non-empty URI-reference, got {source!r}: use a "
                                 f"stable name without spaces, such as {DEFAULT_SOURCE!r} or 'billing-service'.")
    return source


def _data(event: UsageEvent) -> dict[str, Any]:
    data: dict[str, Any] = {name: getattr(event, name) for name in _TOKEN_FIELDS}
    cost, credits = micros(own_cost(event)), micros(event.credits)  # an action's cost is its calls'
    if cost is not None:
        data["cost_usd_micros"] = cost
    if credits is not None:
        data["credits_micros"] = credits
    for name in _TEXT_FIELDS:
        value = getattr(event, name)
        if value is not None:
            data[name] = value
    data["event_type"] = event.event_type
    data["status"] = event.status
    data["usage_status"] = event.usage_status
    data["billable"] = event.billable
    data["tags"] = dict(event.tags)
    return data


def _subject(event: UsageEvent) -> str | None:
    """The event's customer, if it has one (a blank id is none: OpenMeter's CloudEvents SDK refuses it)."""
    return event.customer_id if event.customer_id and event.customer_id.strip() else None


def encode_cloudevents(events: Sequence[UsageEvent], *, source: str = DEFAULT_SOURCE, type_: str = DEFAULT_TYPE,
                       unattributed_subject: str | None = None) -> list[dict[str, Any]]:
    """One CloudEvent per event (see the module docstring). Pure: the same events give the same objects.

    An event without a ``customer_id`` (or a blank one) takes ``unattributed_subject``; with none given it is a
    ValueError (the destination skips those before encoding).
    """
    out = []
    for event in events:
        subject = _subject(event) or unattributed_subject
        if not subject:
            raise ValueError(f"event {event.id} has no customer_id to be its subject")
        out.append({
            "specversion": "1.0",
            "id": event.id,
            "source": source,
            "type": type_,
            "subject": subject,
            "time": rfc3339(event.timestamp),
            "datacontenttype": "application/json",
            "data": _data(event),
        })
    return out


def encode_batch(events: Sequence[UsageEvent], *, source: str = DEFAULT_SOURCE, type_: str = DEFAULT_TYPE,
                 unattributed_subject: str | None = None) -> bytes:
    """The ``application/cloudevents-batch+json`` request body: a JSON array of :func:`encode_cloudevents`."""
    objects = encode_cloudevents(events, source=source, type_=type_, unattributed_subject=unattributed_subject)
    return json.dumps(objects, ensure_ascii=False, separators=(",", ":")).encode()


def _named_refusals(response: httpx2.Response, events: Sequence[UsageEvent],
                    secrets: tuple[str, ...]) -> dict[str, str]:
    """The events a v3/Konnect 400 names by their index in ``invalid_parameters[].field`` (``"2.subject"``)."""
    if response.status_code != 400:
        return {}
    try:
        problems = response.json().get("invalid_parameters")
    except (ValueError, AttributeError):
        return {}
    refused: dict[str, list[str]] = {}
    for problem in problems if isinstance(problems, list) else ():
        if not isinstance(problem, dict) or not isinstance(problem.get("field"), str):
            continue
        index, _, rest = problem["field"].partition(".")
        if not index.isdigit() or int(index) >= len(events):
            continue
        refused.setdefault(events[int(index)].id, []).append(f"{rest or index}: {problem.get('reason', 'invalid')}")
    named = {}
    for event_id, reasons in refused.items():
        text = "400 " + "; ".join(reasons)
        for secret in secrets:
            text = text.replace(secret, "<redacted>")
        named[event_id] = safe_text(text, 500)
    return named


class OpenMeter:
    """Deliver events to OpenMeter (Cloud or self-hosted) or Kong Konnect Metering & Billing.

    ``url`` is the base (default: OpenMeter Cloud, or ``https://us.api.konghq.com`` for ``api="konnect"``; other
    Konnect regions: ``eu``, ``au``, ``me``, ``in``); ``path`` overrides the ingest path ``api`` chooses.
    ``api_key`` (an OpenMeter API token, a Konnect ``spat_``/``kpat_`` token) is sent as a bearer token and is
    never logged, returned or shown. See the module docstring for the events and what OpenMeter's answers mean.
    """

    def __init__(self, url: str | None = None, api_key: str | None = None, *, name: str = "openmeter",
                 api: API = "v1", path: str | None = None, source: str = DEFAULT_SOURCE, type_: str = DEFAULT_TYPE,
                 unattributed_subject: str | None = None, billable_only: bool = True, max_batch: int = 100,
                 timeout: float = 30.0, headers: Mapping[str, str] | None = None,
                 transport: httpx2.BaseTransport | None = None) -> None:
        if api not in _ENDPOINTS:
            raise ConfigurationError(f"OpenMeter api={api!r} is not one we know: use 'v1', 'v3' or 'konnect'.")
        if not type_ or not type_.strip():
            raise ConfigurationError("OpenMeter type_ must be a non-empty string: the eventType your meters match.")
        if unattributed_subject is not None and not unattributed_subject.strip():
            raise ConfigurationError("OpenMeter unattributed_subject must be a non-empty string, or None to skip "
                                     "events without a customer_id.")
        if max_batch < 1:
            raise ConfigurationError(f"OpenMeter max_batch must be at least 1, not {max_batch}.")
        base, default_path = _ENDPOINTS[api]
        self.name = name
        self.api = api
        self.url = (url or base).rstrip("/") + (path if path is not None else default_path)
        self.source = check_source(source)
        self.type_ = type_
        self.unattributed_subject = unattributed_subject
        self.billable_only = billable_only
        self.max_batch = max_batch
        self._secrets = (api_key,) if api_key else ()
        auth = {"authorization": f"Bearer {api_key}"} if api_key else {}
        self._sender = HTTPSender(headers={**(headers or {}), **auth}, timeout=timeout, transport=transport)

    def accepts(self, event: UsageEvent) -> str | None:
        if self.billable_only and not event.billable:
            return "not billable (OpenMeter(billable_only=False) sends these too)"
        if _subject(event) is None and self.unattributed_subject is None:
            return "no customer_id to be the OpenMeter subject (set OpenMeter(unattributed_subject=...) to send it)"
        self._encode([event])  # raises for an event that cannot be encoded: the worker parks it, saying why
        return None

    def _encode(self, events: Sequence[UsageEvent]) -> bytes:
        return encode_batch(events, source=self.source, type_=self.type_,
                            unattributed_subject=self.unattributed_subject)

    def deliver(self, events: Sequence[UsageEvent]) -> Result:
        answer = self._sender.post(self.url, self._encode(events), content_type=CONTENT_TYPE)
        if isinstance(answer, Result):
            return answer
        result = classify(answer, secrets=self._secrets)
        if result.outcome == "rejected":
            named = _named_refusals(answer, events, self._secrets)
            if named:
                return Result.refuse(result.reason or "refused by OpenMeter", named)
        return result

    def close(self) -> None:
        self._sender.close()

    def __repr__(self) -> str:  # never the key
        return f"OpenMeter({safe_url(self.url)!r}, name={self.name!r}, source={self.source!r}, type_={self.type_!r})"
