"""MeteredCall: one logical LLM call, from the pre-call check to the event, across the SDK's retries.

The method-level hook (``hooks.py``) creates it around the provider SDK's ``request()`` and publishes it in
a ContextVar; the transport tap (``transport.py``) finds it there for each HTTP attempt. Only a 2xx attempt
is observed for usage; failed attempts only count in ``attempts``. A 2xx whose body fails to arrive while
the SDK is still inside ``request()`` is a failed attempt too: the SDK retries it like a dropped
connection, and the next attempt, or the hook when the SDK gives up, finishes the call. Whatever happens —
body read, stream ended, closed, abandoned, failed, or the SDK raised — ``finish`` runs exactly once and
writes exactly one event.
"""

from __future__ import annotations

import contextvars
import time
import weakref
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from ..context import Attribution
from ..events import new_event_id
from ..providers.base import Endpoint
from ..usage import Usage

if TYPE_CHECKING:
    from ..meter import Meter

__all__ = ["MeteredCall", "current_call", "failure_status"]

current_call: contextvars.ContextVar[MeteredCall | None] = contextvars.ContextVar("metricaos_call", default=None)


class MeteredCall:
    """State of one logical call. Created by the hook, fed by the tap, finished exactly once."""

    __slots__ = (
        "_once",
        "_t0",
        "attempts",
        "attribution",
        "body",
        "deployment",
        "endpoint",
        "http_status",
        "id",
        "in_request",
        "injected_usage",
        "meter",
        "open",
        "path",
        "provider",
        "requested_model",
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
        self.started_at = datetime.now(timezone.utc)
        self._t0 = time.perf_counter()
        self.id = new_event_id()
        self.attempts = 0
        self.http_status: int | None = None
        self.injected_usage = False
        self.in_request = False  # the hook is inside the SDK's request(), which may still retry
        self.deployment = deployment
        self.tapped = False
        self.tap: weakref.ref[Any] | None = None  # the armed body tap, which can finish with what it observed
        self.open = False  # in the meter's open calls, which Meter.close() finishes
        self._once = [True]  # popped by the one finish() that wins: list.pop is atomic, no lock to allocate

    @property
    def finished(self) -> bool:
        return not self._once

    def finish(
        self,
        *,
        status: str,
        usage: Usage | None = None,
        problem: str | None = None,
        model: str | None = None,
        response_id: str | None = None,
        service_tier: str | None = None,
        content_chunks: int | None = None,
        error_type: str | None = None,
        output_estimate: tuple[int, str] | None = None,
        partial: Usage | None = None,
    ) -> None:
        """Build and record the event; later calls do nothing. Never raises.

        ``partial``: counts that arrived although ``usage`` did not (a stream cut short after Anthropic's
        ``message_start``): kept as they are, with only the output estimated."""
        try:
            self._once.pop()
        except IndexError:
            return
        duration_ms = (time.perf_counter() - self._t0) * 1000.0
        self.meter._finish_call(
            self,
            status=status,
            usage=usage,
            problem=problem,
            model=model,
            response_id=response_id,
            service_tier=service_tier,
            content_chunks=content_chunks,
            error_type=error_type,
            partial=partial,
            duration_ms=duration_ms,
            output_estimate=output_estimate,
        )

    def returned(self) -> None:
        """``request()`` returned: if no body tap took the call over, finish it now (usage unknown)."""
        if not self.tapped and self._once:
            self.finish(status="ok", problem="the response body was not observed")

    def fail(self, exc: BaseException) -> None:
        """The SDK raised out of ``request()``: an error event unless a 2xx body already finished the call."""
        self.finish(status=failure_status(exc), error_type=type(exc).__name__)


def failure_status(exc: BaseException) -> str:
    """``cancelled`` for a cancelled task or an interrupt (the caller stopped), ``error`` for anything else."""
    return "cancelled" if type(exc).__name__ in ("CancelledError", "KeyboardInterrupt") else "error"
