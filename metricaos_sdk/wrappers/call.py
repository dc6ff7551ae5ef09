"""MeteredCall: one logical LLM call, from the pre-call check to the event, across the SDK's retries.

The hook around the provider SDK's ``request()`` (``hooks.py``) creates it and publishes it in a ContextVar;
the hook around ``_process_response()`` finds it there and observes the response the SDK goes on to read
(``observe.py``). A body the SDK already read is parsed at once and the call finishes when ``request()``
returns (``ok``) or raises (``error``: the SDK could not use the answer, although the provider sent it); a body
still to be read is a tap's to finish. Whatever happens — body read, stream ended, closed, abandoned, failed,
or the SDK raised — ``finish`` runs exactly once and writes exactly one event.
"""

from __future__ import annotations

import contextvars
import time
import weakref
from collections.abc import Mapping
from datetime import datetime, timezone
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from ..context import Attribution
from ..events import new_event_id
from ..outcome import CallOutcome
from ..providers.base import Endpoint, InvalidUsage
from ..providers.openai import reported_cost
from ..worker import in_finalizer_context

if TYPE_CHECKING:
    from ..actions import ActionRun
    from ..meter import Meter

__all__ = ["MeteredCall", "attempts_of", "current_call", "failure_status", "service_tier"]

current_call: contextvars.ContextVar[MeteredCall | None] = contextvars.ContextVar("metricaos_call", default=None)


class MeteredCall:
    """State of one logical call. Created by the hook, fed by the tap, finished exactly once."""

    __slots__ = (
        "_once",
        "_t0",
        "action",
        "attempts",
        "attribution",
        "body",
        "deployment",
        "earlier_attempts",
        "endpoint",
        "http_status",
        "id",
        "injected_usage",
        "meter",
        "observed",
        "open",
        "path",
        "provider",
        "provider_cost",
        "requested_model",
        "server_address",
        "started_at",
        "streamed",
        "tap",
        "tapped",
    )

    def __init__(
        self,
        meter: Meter,
        endpoint: Endpoint,
        provider: str,
        path: str,
        body: Mapping[str, Any] | None,
        attribution: Attribution,
        *,
        deployment: str | None = None,
    ) -> None:
        self.meter = meter
        self.endpoint = endpoint
        self.provider = provider
        self.path = path
        self.body = body
        model = body.get("model") if body else None
        self.requested_model = model if isinstance(model, str) else deployment
        self.streamed = bool(body and body.get("stream") is True)
        self.attribution = attribution
        self.action: ActionRun | None = None
        """The action the call is made in (``meter.action``), innermost first."""
        self.started_at = datetime.now(timezone.utc)
        self._t0 = time.perf_counter()
        self.id = new_event_id()
        self.attempts = 0
        self.earlier_attempts = 0  # of a request() the hook sent again (a refused stream_options)
        self.http_status: int | None = None
        self.injected_usage = False
        self.observed: dict[str, Any] | None = None  # what a body the SDK already read said (see observe_body)
        self.deployment = deployment
        self.server_address: str | None = None  # the host the client's base URL points at
        self.provider_cost: Decimal | None = None  # the cost the provider reported (OpenRouter, LiteLLM, xAI)
        self.tapped = False
        self.tap: weakref.ref[Any] | None = None  # the armed body tap, which can finish with what it observed
        self.open = False  # in the meter's open calls, which Meter.close() finishes
        self._once = [True]  # popped by the one finish() that wins: list.pop is atomic, no lock to allocate

    @property
    def finished(self) -> bool:
        return not self._once

    def finish(self, status: str, **observed: Any) -> None:
        """Build and record the event; later calls do nothing. Never raises.

        ``observed``: the other fields of :class:`~metricaos_sdk.outcome.CallOutcome` — the usage, the model and
        ids the response named, and for a stream cut short its counts (``partial``: counts that arrived although
        ``usage`` did not, kept as they are, with only the output estimated)."""
        outcome = CallOutcome(status, **observed)
        outcome.duration_ms = (time.perf_counter() - self._t0) * 1000.0  # when it ended, even if recorded later
        if in_finalizer_context():  # a garbage collection runs on this thread: record from the worker
            self.meter._defer(lambda: self._finish(outcome))
            return
        self._finish(outcome)

    def _finish(self, outcome: CallOutcome) -> None:
        try:
            self._once.pop()
        except IndexError:
            return
        self.meter._finish_call(self, outcome)

    def observe_body(self, data: dict[str, Any]) -> None:
        """Keep what a body the SDK already read says (its top-level JSON fields); the hook finishes with it."""
        try:
            usage, problem = self.endpoint.usage_from_body(data), None
        except InvalidUsage as exc:
            usage, problem = None, str(exc)
        cost = reported_cost(data.get("usage"))
        if cost is not None:
            self.provider_cost = cost
        self.observed = {"usage": usage, "problem": problem, "model": _text(data.get("model")),
                         "response_id": _text(data.get("id")), "service_tier": service_tier(data)}

    def returned(self) -> None:
        """``request()`` returned: unless a body tap took the call over, finish it with what the body said."""
        if not self.tapped and self._once:
            if self.observed is not None:
                self.finish("ok", **self.observed)
            else:
                self.finish("ok", problem="the response body was not observed")

    def fail(self, exc: BaseException) -> None:
        """The SDK raised out of ``request()``: an error event (with the usage of a 2xx body it could not use)."""
        if not self._once:
            return
        if self.observed is None:
            self.http_status = _status_of(exc)
            self.attempts = self.earlier_attempts + attempts_of(exc)
            self.finish(status=failure_status(exc), error_type=type(exc).__name__)
        else:
            self.finish(status=failure_status(exc), error_type=type(exc).__name__, **self.observed)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def service_tier(data: Mapping[str, Any]) -> str | None:
    """At the top level (OpenAI) or inside ``usage`` (Anthropic)."""
    tier = data.get("service_tier")
    usage = data.get("usage")
    if tier is None and isinstance(usage, Mapping):
        tier = usage.get("service_tier")
    return tier if isinstance(tier, str) else None


def _status_of(exc: BaseException) -> int | None:
    """The HTTP status of the SDK's error (``APIStatusError.status_code``); for a connection error, the status of
    a response whose body broke off while httpx2 read it (the provider answered, and bills what it generated);
    None when nothing answered."""
    status = getattr(exc, "status_code", None)
    if type(status) is int:
        return status
    return _broken_body_status(exc)


def _broken_body_status(exc: BaseException) -> int | None:
    """httpx2 reads a plain body inside ``Client.send``, whose frame holds the ``response`` being read when the
    read fails: found in the traceback of the error the SDK wrapped (it never hands the response over)."""
    cause: BaseException | None = exc.__cause__ or exc.__context__
    for _ in range(3):
        if cause is None:
            return None
        tb = cause.__traceback__
        while tb is not None:
            response = tb.tb_frame.f_locals.get("response")
            if type(response).__name__ == "Response" and type(response).__module__.startswith("httpx2"):
                status = getattr(response, "status_code", None)
                return status if type(status) is int else None
            tb = tb.tb_next
        cause = cause.__cause__ or cause.__context__
    return None


def attempts_of(exc: BaseException) -> int:
    """How many attempts the SDK made before raising: its last request carries ``x-stainless-retry-count``."""
    try:
        count = int(exc.request.headers.get("x-stainless-retry-count", "0"))  # type: ignore[attr-defined]
    except Exception:
        return 1
    return count + 1 if count >= 0 else 1


def failure_status(exc: BaseException) -> str:
    """``cancelled`` for a cancelled task or an interrupt (the caller stopped), ``error`` for anything else."""
    return "cancelled" if type(exc).__name__ in ("CancelledError", "KeyboardInterrupt") else "error"
