"""Stripe meter events: one per billed dimension of each event, on the v1 endpoint or the v2 stream.

``event_names`` maps a dimension of a :class:`~metricaos_sdk.UsageEvent` to the ``event_name`` of a Stripe meter
(``{"input_tokens": "llm_input_tokens", "credits": "ai_credits"}``). Dimensions: the integer fields
(``input_tokens``, ``output_tokens``, ``cached_input_tokens``, ``cache_write_tokens``, ``cache_write_5m_tokens``,
``cache_write_1h_tokens``, ``reasoning_tokens``, ``total_tokens``, ``web_search_requests``), ``cost_usd`` in
integer micro-USD and ``credits`` × 10**``credit_scale`` (both rounded half up: Stripe takes whole numbers only).
A dimension whose value is 0 or unknown (``cost_usd`` of an unpriced model, ``credits`` without a credit rule)
sends nothing; an event with nothing to send, without a mapped customer, or not billable (unless
``include_non_billable``) is skipped — settled, counted, never lost.

Each meter event's ``identifier`` is ``f"{event.id}:{dimension}"`` (≤ 100 characters): Stripe keeps identifiers
unique for at least 24 hours, and answers a repeat on ``/v1/billing/meter_events`` with a 400 "An event already
exists with identifier …", which is a delivery here. Its ``timestamp`` is the event's own time (v1: integer Unix
seconds; the v2 stream: RFC 3339). Stripe takes only times within the past 35 days and up to 5 minutes ahead;
an event outside that window is not sent but parked, with the reason (``metricaos deliveries retry`` sends it
again). A value of more than 15 digits is parked the same way.

- ``api="v1"``: ``POST {api_base}/v1/billing/meter_events``, form-encoded, one meter event per request, with the
  secret key; validated at once, so a refusal names its event. No ``Idempotency-Key``: Stripe replays a key's
  first answer, a 500 included, for 24 hours, while the identifier already makes a resend harmless.
- ``api="stream"``: ``POST {api_base}/v2/billing/meter_event_session`` gives an ``authentication_token`` for
  15 minutes (renewed a minute before ``expires_at``, or at once on a 401 from the stream), then
  ``POST {stream_base}/v2/billing/meter_event_stream`` with ``{"events": [...]}``, at most 100 per request, JSON,
  with an ``Idempotency-Key`` that is a hash of the body. Stripe validates stream events later (errors arrive as
  ``v1.billing.meter.error_report_triggered`` events), so the checks above are made here first.

429, 5xx, 409, ``Stripe-Should-Retry: true``, no answer, and a refused key (401, 403: never an event's fault) are
retried (``Retry-After`` honoured if Stripe sends one; its docs promise none); another 4xx parks the event with
Stripe's ``error.message``. The secret key and session tokens are cut from every message and never in ``repr``.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Literal
from urllib.parse import urlencode

import httpx2

from ..errors import ConfigurationError
from ..events import UsageEvent
from ..faults import safe_text
from .destination import Result
from .http import HTTPSender, classify, retry_after
from .units import Lookup, epoch_millis, epoch_seconds, look_up, micro_usd, own_cost, scaled_integer

__all__ = ["DIMENSIONS", "MeterEvent", "StripeMeter", "encode_stream", "encode_v1", "identifier", "meter_events",
           "window_problem"]

INTEGER_DIMENSIONS = ("input_tokens", "output_tokens", "cached_input_tokens", "cache_write_tokens",
                      "cache_write_5m_tokens", "cache_write_1h_tokens", "reasoning_tokens", "total_tokens",
                      "web_search_requests")
DIMENSIONS = (*INTEGER_DIMENSIONS, "cost_usd", "credits")
MAX_VALUE = 10**15 - 1
"""Stripe's meters aggregate in floating point: 15 significant digits are exact."""
PAST_SECONDS = 35 * 86400 - 60
"""35 days, less a minute so an event sent at the edge is not refused on the way."""
FUTURE_SECONDS = 5 * 60
STREAM_LIMIT = 100
STRIPE_VERSION = "2026-06-24.dahlia"
_SESSION_MARGIN = 60.0
_REMEMBERED = 20_000


@dataclass(frozen=True, slots=True)
class MeterEvent:
    """One Stripe meter event: a dimension of one of our events."""

    event_name: str
    identifier: str
    timestamp: datetime
    payload: dict[str, str]


def identifier(event_id: str, dimension: str) -> str:
    """The meter event's identifier: ``f"{event_id}:{dimension}"``, or a hash of an id too long for 100 characters."""
    key = f"{event_id}:{dimension}"
    if len(key) <= 100:
        return key
    return f"{hashlib.sha256(event_id.encode()).hexdigest()[:64]}:{dimension}"


def dimension_value(event: UsageEvent, dimension: str, *, credit_scale: int = 0) -> int | None:
    """The integer Stripe is sent for ``dimension`` of ``event`` (``None`` when unknown)."""
    if dimension == "cost_usd":
        cost = own_cost(event)  # an action's cost is its calls', sent with them
        return None if cost is None else micro_usd(cost)
    if dimension == "credits":
        return None if event.credits is None else scaled_integer(event.credits, credit_scale)
    return int(getattr(event, dimension))


def meter_events(event: UsageEvent, event_names: Mapping[str, str], stripe_customer: str, *,
                 customer_key: str = "stripe_customer_id", value_key: str = "value",
                 credit_scale: int = 0) -> list[MeterEvent]:
    """The meter events of ``event``: one per dimension of ``event_names`` with a value other than 0 (pure)."""
    out = []
    for dimension, event_name in event_names.items():
        value = dimension_value(event, dimension, credit_scale=credit_scale)
        if value:
            out.append(MeterEvent(event_name, identifier(event.id, dimension), event.timestamp,
                                  {customer_key: stripe_customer, value_key: str(value)}))
    return out


def window_problem(event: UsageEvent, now: float) -> str | None:
    """Why Stripe would refuse ``event``'s time (``now`` in Unix seconds), or ``None``."""
    at = epoch_millis(event.timestamp) / 1000
    if at < now - PAST_SECONDS:
        return (f"the event is {(now - at) / 86400:.1f} days old; Stripe takes meter events from the past 35 days "
                "only (it is not sent: report it another way, e.g. a credit note)")
    if at > now + FUTURE_SECONDS:
        return (f"the event is {(at - now) / 60:.1f} minutes in the future; Stripe takes meter events up to 5 minutes "
                "ahead only (check the clock; `metricaos deliveries retry` sends it again)")
    return None


def _stream_time(moment: datetime) -> str:
    ms = epoch_millis(moment)
    return datetime.fromtimestamp(ms // 1000, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S") + f".{ms % 1000:03d}Z"


def encode_v1(meter_event: MeterEvent) -> bytes:
    """The form body of ``POST /v1/billing/meter_events`` (pure)."""
    pairs = [("event_name", meter_event.event_name), ("identifier", meter_event.identifier),
             ("timestamp", str(epoch_seconds(meter_event.timestamp)))]
    pairs += [(f"payload[{key}]", value) for key, value in meter_event.payload.items()]
    return urlencode(pairs).encode()


def encode_stream(meter_events: Sequence[MeterEvent]) -> bytes:
    """The JSON body of ``POST /v2/billing/meter_event_stream`` (pure; at most 100 events)."""
    if len(meter_events) > STREAM_LIMIT:
        raise ValueError(f"the meter event stream takes at most {STREAM_LIMIT} events per request")
    return json.dumps({"events": [{"event_name": m.event_name, "identifier": m.identifier, "payload": m.payload,
                                   "timestamp": _stream_time(m.timestamp)} for m in meter_events]},
                      separators=(",", ":"), ensure_ascii=False).encode()


def _error(response: httpx2.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, dict) else {}


def is_duplicate(response: httpx2.Response) -> bool:
    """Stripe's answer to an identifier it already has (v1): a delivery."""
    message = str(_error(response).get("message") or "")
    return response.status_code == 400 and "already exists with identifier" in message.lower()


class _Remembered:
    """The identifiers Stripe took lately, so a batch sent again after a partial failure skips them."""

    def __init__(self, size: int = _REMEMBERED) -> None:
        self._size = size
        self._seen: OrderedDict[str, None] = OrderedDict()

    def __contains__(self, key: object) -> bool:
        return key in self._seen

    def add(self, key: str) -> None:
        self._seen[key] = None
        if len(self._seen) > self._size:
            self._seen.popitem(last=False)


class StripeMeter:
    """Deliver events to Stripe meters (see the module docstring). ``clock`` (Unix seconds) decides the 35-day window
    and session expiry; ``api_base`` and ``stream_base`` are Stripe's hosts unless pointed elsewhere."""

    def __init__(self, api_key: str, *, event_names: Mapping[str, str], customers: Lookup,
                 api: Literal["v1", "stream"] = "v1", name: str = "stripe", customer_key: str = "stripe_customer_id",
                 value_key: str = "value", credit_scale: int = 0, include_non_billable: bool = False,
                 api_base: str = "https://api.stripe.com", stream_base: str = "https://meter-events.stripe.com",
                 stripe_version: str | None = STRIPE_VERSION, max_batch: int = 100, timeout: float = 30.0,
                 clock: Callable[[], float] = time.time, transport: httpx2.BaseTransport | None = None) -> None:
        if not api_key:
            raise ConfigurationError("StripeMeter needs the secret key (sk_…): pass api_key, or api_key_env in a file.")
        if api not in ("v1", "stream"):
            raise ConfigurationError(f"api={api!r}: use 'v1' (one event per request) or 'stream' (the v2 meter "
                                     "event stream).")
        unknown = sorted(set(event_names) - set(DIMENSIONS))
        if unknown or not event_names:
            raise ConfigurationError(f"event_names maps dimensions to Stripe event names; {unknown or 'none given'} "
                                     f"is not one of {', '.join(DIMENSIONS)}.")
        too_long = [n for n in event_names.values() if not n or len(n) > 100]
        if too_long:
            raise ConfigurationError(f"Stripe event names are 1 to 100 characters: {too_long}.")
        self.name = name
        self.api = api
        self.max_batch = max_batch
        self.event_names = dict(event_names)
        self.customers = customers
        self.customer_key = customer_key
        self.value_key = value_key
        self.credit_scale = credit_scale
        self.include_non_billable = include_non_billable
        self.api_base = api_base.rstrip("/")
        self.stream_base = stream_base.rstrip("/")
        self._key = api_key
        self._clock = clock
        self._token: str | None = None
        self._token_expires = 0.0
        self._old_tokens: list[str] = []
        self._taken = _Remembered()
        version = {"stripe-version": stripe_version} if stripe_version else {}
        self._sender = HTTPSender(headers=version, timeout=timeout, transport=transport)

    # -- what is sent ---------------------------------------------------------------------------------
    def _events_of(self, event: UsageEvent) -> list[MeterEvent]:
        customer = look_up(self.customers, event.customer_id)
        if customer is None:
            return []
        return meter_events(event, self.event_names, customer, customer_key=self.customer_key,
                            value_key=self.value_key, credit_scale=self.credit_scale)

    def accepts(self, event: UsageEvent) -> str | None:
        if not event.billable and not self.include_non_billable:
            return "not billable"
        if event.customer_id is None:
            return "no customer_id"
        if look_up(self.customers, event.customer_id) is None:
            return f"customer {event.customer_id!r} has no Stripe customer in the mapping"
        if not self._events_of(event):
            return f"nothing to bill: {', '.join(self.event_names)} are 0 or unknown"
        return None

    def _problem(self, event: UsageEvent, now: float) -> str | None:
        found = window_problem(event, now)
        if found is None:
            big = [m.identifier for m in self._events_of(event) if abs(int(m.payload[self.value_key])) > MAX_VALUE]
            if big:
                found = f"values of more than 15 digits ({', '.join(big)}): Stripe cannot add them exactly"
        return found

    # -- delivery -------------------------------------------------------------------------------------
    def deliver(self, events: Sequence[UsageEvent]) -> Result:
        now = self._clock()
        problems = {e.id: why for e in events if (why := self._problem(e, now)) is not None}
        if problems:  # refused unsent; the worker sends the others again at once
            return Result.refuse(f"{len(problems)} event(s) Stripe would not take", problems)
        return self._stream(events) if self.api == "stream" else self._v1(events)

    def _v1(self, events: Sequence[UsageEvent]) -> Result:
        refused: dict[str, str] = {}
        url = f"{self.api_base}/v1/billing/meter_events"
        for event in events:
            for meter_event in self._events_of(event):
                if meter_event.identifier in self._taken:
                    continue
                answer = self._sender.post(url, encode_v1(meter_event), content_type="application/x-www-form-urlencoded",
                                           headers=self._bearer(self._key))
                result = answer if isinstance(answer, Result) else self._judge(answer)
                if result.outcome == "retry":
                    return result
                if result.outcome == "delivered":
                    self._taken.add(meter_event.identifier)
                    continue
                refused[event.id] = result.reason or "refused by Stripe"
                break
        return Result.refuse(f"Stripe refused {len(refused)} event(s)", refused) if refused else Result.ok()

    def _stream(self, events: Sequence[UsageEvent]) -> Result:
        owed = [m for e in events for m in self._events_of(e) if m.identifier not in self._taken]
        for start in range(0, len(owed), STREAM_LIMIT):
            chunk = owed[start:start + STREAM_LIMIT]
            answer = self._post_stream(encode_stream(chunk))
            if isinstance(answer, Result):
                return answer
            result = self._judge(answer)
            if result.outcome != "delivered":
                return result  # a refusal names no event: the worker splits the batch to find it
            for meter_event in chunk:
                self._taken.add(meter_event.identifier)
        return Result.ok()

    def _post_stream(self, body: bytes) -> httpx2.Response | Result:
        """POST one stream body with the session's token, once more with a new token after a 401."""
        headers = {"idempotency-key": hashlib.sha256(body).hexdigest()}
        answer: httpx2.Response | Result = Result.again("no session")
        for _attempt in range(2):
            token = self._session()
            if isinstance(token, Result):
                return token
            answer = self._sender.post(f"{self.stream_base}/v2/billing/meter_event_stream", body,
                                       headers={**headers, **self._bearer(token)})
            if isinstance(answer, Result) or answer.status_code != 401:
                return answer
            self._expire()  # billing_meter_event_session_expired (or revoked): a new session, at once
        return answer

    # -- the v2 session -------------------------------------------------------------------------------
    def _session(self) -> str | Result:
        """The stream's authentication token, a new one when the last is (nearly) expired."""
        if self._token is not None and self._clock() < self._token_expires - _SESSION_MARGIN:
            return self._token
        answer = self._sender.post(f"{self.api_base}/v2/billing/meter_event_session", b"{}",
                                   headers=self._bearer(self._key))
        if isinstance(answer, Result):
            return answer
        result = self._judge(answer)
        if result.outcome != "delivered":  # a refused key (401) is retried, as a 5xx: never an event's fault
            return Result.again(f"no meter event session: {result.reason}", result.retry_after)
        try:
            session = answer.json()
            token = session["authentication_token"]
            expires = _parse_time(session.get("expires_at"))
        except (ValueError, KeyError, TypeError):
            return Result.again("Stripe's meter event session answer had no authentication_token")
        if not isinstance(token, str) or not token:
            return Result.again("Stripe's meter event session answer had no authentication_token")
        self._expire()
        self._token = token
        self._token_expires = expires if expires is not None else self._clock() + 15 * 60
        return token

    def _expire(self) -> None:
        if self._token is not None:
            self._old_tokens = [*self._old_tokens[-3:], self._token]  # still cut from messages about them
        self._token = None

    # -- answers --------------------------------------------------------------------------------------
    def _secrets(self) -> tuple[str, ...]:
        return tuple(s for s in (self._key, self._token, *self._old_tokens) if s)

    @staticmethod
    def _bearer(secret: str) -> dict[str, str]:
        return {"authorization": f"Bearer {secret}"}

    def _judge(self, response: httpx2.Response) -> Result:
        result = classify(response, duplicate=is_duplicate, secrets=self._secrets())
        if result.outcome == "delivered":
            return result
        error = _error(response)
        text = f"{error.get('code') or error.get('type') or ''}: {error.get('message')}" if error.get("message") \
            else response.text
        for secret in self._secrets():
            text = text.replace(secret, "<redacted>")
        reason = safe_text(f"{response.status_code} {text}".strip(), 300)
        if result.outcome == "retry" or response.status_code == 409 \
                or response.headers.get("stripe-should-retry") == "true":
            return Result.again(reason, retry_after(response.headers))
        return Result.refuse(reason)

    def close(self) -> None:
        self._sender.close()

    def __repr__(self) -> str:  # never the key or a token
        return f"StripeMeter(api={self.api!r}, name={self.name!r}, event_names={self.event_names!r})"


def _parse_time(value: object) -> float | None:
    """Unix seconds from an RFC 3339 string (``2024-06-01T12:15:00.000Z``) or a number; ``None`` if neither."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).timestamp()

