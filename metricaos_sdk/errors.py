"""The exceptions the SDK raises on purpose.

Metering faults are never raised into the caller's LLM call (they are logged on the
``metricaos_sdk`` logger and recorded on the event). What is raised is a decision the user asked
for, or bad input at a boundary::

    MetricaOSError
     ├── QuotaExceeded          a hard limit is reached; raised before any request is sent
     │    └── RateLimited       a rate limit, or a plan that throttles: retry after ``retry_after`` seconds
     ├── QuotaUnavailable       the quota store is down and the meter is set to fail closed
     ├── UnpricedModel          the model has no price and the meter is set to refuse such calls
     └── ConfigurationError     bad input at a boundary (constructor, rate file, CLI args)

Provider exceptions (``openai.APIError``, ``anthropic.APIError`` …) pass through the wrapper untouched.
"""

from __future__ import annotations

import math
from datetime import datetime
from decimal import Decimal

from .formatting import count, quantity, usd, usd_per_call

__all__ = ["ConfigurationError", "MetricaOSError", "QuotaExceeded", "QuotaUnavailable", "RateLimited", "UnpricedModel"]


class MetricaOSError(Exception):
    """Base class of every exception the SDK raises on purpose."""


class ConfigurationError(MetricaOSError, ValueError):
    """Bad input at a boundary: the message says what is wrong and how to fix it."""


class UnpricedModel(MetricaOSError):
    """The rate table has no price for the model and the meter was built with ``unpriced="refuse"``;
    the request was not sent."""

    def __init__(self, provider: str, model: str | None) -> None:
        self.provider = provider
        self.model = model
        super().__init__(
            f"No price is known for {provider} model {model!r}, and this meter refuses unpriced calls: add the "
            f"model to your rates (Meter(rates=...)) or build the meter with unpriced='count'."
        )


class QuotaUnavailable(MetricaOSError):
    """The quota store could not be reached and the meter fails closed (``MeterConfig.quota_fail_open=False``):
    the LLM request was not sent. With the default (fail open) calls are allowed and the fault is logged."""


def _amount(unit: str, value: int | Decimal, *, per_call: bool = False) -> str:
    """An amount in a quota unit, by the rule of :mod:`metricaos_sdk.formatting`."""
    if unit == "cost_usd":
        return usd_per_call(value) if per_call else usd(value)
    return quantity(value)


class QuotaExceeded(MetricaOSError):
    """A customer reached a hard limit; the LLM request was not sent.

    Carries the numbers, so an application can show them or a support agent can read ``str(exc)``
    to the customer. ``used`` is settled usage; ``reserved`` is held by the customer's calls still in
    flight; ``requested`` is this call's estimate (what did not fit). ``requested_output_tokens`` is the
    part of that estimate held for the call's output, in tokens (its ``max_tokens``, or
    ``MeterConfig.quota_output_tokens`` when it sets none; 0 when the estimate does not depend on the
    output; None when not known).

    When settled usage alone is under the limit — the request is refused because of what its estimate and
    the calls in flight hold — the message says so and how to make the request fit.
    """

    def __init__(
        self,
        *,
        customer_id: str,
        unit: str,
        limit: int | Decimal,
        used: int | Decimal,
        period: str,
        resets_at: datetime,
        reserved: int | Decimal = 0,
        requested: int | Decimal = 0,
        plan: str | None = None,
        feature: str | None = None,
        requested_output_tokens: int | None = None,
    ) -> None:
        self.customer_id = customer_id
        self.unit = unit
        self.limit = limit
        self.used = used
        self.period = period
        self.resets_at = resets_at
        self.reserved = reserved
        self.requested = requested
        self.plan = plan
        self.feature = feature
        self.requested_output_tokens = requested_output_tokens
        super().__init__(self.message)

    @property
    def remaining(self) -> int | Decimal:
        """What is left of the limit, after calls in flight (never negative)."""
        return max(self.limit - self.used - self.reserved, 0)

    @property
    def _held_back(self) -> bool:
        """Whether the refusal comes from what is held rather than what is used: settled usage alone is
        under the limit, but usage + calls in flight + this request's estimate is over it."""
        return self.used < self.limit and self.requested > self.remaining

    @property
    def message(self) -> str:
        """A sentence a support agent can read to the customer."""
        why = self._why_it_does_not_fit() if self._held_back else self._needs()
        return self._usage_so_far() + why + self._resets()

    def _plain_message(self) -> str:
        """The message without the reasons a held-back request gives (what RateLimited builds on)."""
        return self._usage_so_far() + self._needs() + self._resets()

    def _usage_so_far(self) -> str:
        label = "" if self.unit == "cost_usd" else f" {self.unit}"
        scope = f" for {self.feature}" if self.feature else ""
        plan = f" on the {self.plan} plan" if self.plan else ""
        text = (f"Customer {self.customer_id} has used {_amount(self.unit, self.used)} of "
                f"{_amount(self.unit, self.limit)}{label}{scope} this {self.period}{plan}")
        if self.reserved:
            text += f", and calls in progress hold {_amount(self.unit, self.reserved)} more"
        return text

    def _needs(self) -> str:
        return f"; this request needs about {_amount(self.unit, self.requested, per_call=True)}" if self.requested else ""

    def _resets(self) -> str:
        return f". The allowance resets at {self.resets_at.isoformat()}."

    def _why_it_does_not_fit(self) -> str:
        unit, left, out = self.unit, self.remaining, self.requested_output_tokens
        text = self._needs()
        fixes = []
        if not left:
            text += ", and calls in progress hold the rest"
        else:
            text += f", more than the {_amount(unit, left, per_call=True)} left"
            if unit == "requests" or out == 0:
                pass  # an exact estimate (one request, a per-call price): nothing in the request makes it smaller
            elif out is None:
                text += (", because it reserves room for its whole output (its max_tokens, or the meter's default "
                         "when it sets none)")
                fixes.append("pass a smaller max_tokens")
            elif unit != "tokens":
                text += f", because it reserves room for about {count(out)} output tokens"
                fixes.append("pass a smaller max_tokens")
            elif (fit := left - (self.requested - out)) > 0:
                text += f", because it reserves about {count(out)} tokens for its output"
                fixes.append(f"pass max_tokens of {quantity(fit)} or less")
            else:
                text += f", even without the {count(out)} tokens it reserves for its output"
                fixes.append("shorten the request")
        if self.reserved:
            fixes.append("retry when they finish" if not left else "retry when the calls in progress finish")
        return text + (": " + ", or ".join(fixes) if fixes else "")

    def __reduce__(self):  # type: ignore[no-untyped-def]
        # Keyword-only __init__: teach pickle (multiprocessing, task queues) to rebuild it.
        return (_rebuild, (type(self), self.__dict__.copy()))


class RateLimited(QuotaExceeded):
    """Too many requests or tokens in a short window, or a throttling plan at its limit: retry later.

    ``retry_after`` is in seconds (a float; ``math.ceil`` it for an HTTP ``Retry-After`` header).
    """

    def __init__(self, *, retry_after: float, **numbers: object) -> None:
        self.retry_after = max(float(retry_after), 0.0)
        super().__init__(**numbers)  # type: ignore[arg-type]

    @property
    def message(self) -> str:
        if self.period in ("second", "minute", "hour"):
            label = "" if self.unit == "cost_usd" else f" {self.unit}"
            text = (f"Customer {self.customer_id} has used {_amount(self.unit, self.used + self.reserved)} of the "
                    f"{_amount(self.unit, self.limit)}{label} allowed per {self.period}")
            if self.requested:
                text += f"; this request needs about {_amount(self.unit, self.requested, per_call=True)}"
            return text + f". Retry in {math.ceil(self.retry_after)} s."
        return self._plain_message().rstrip(".") + f"; retry in {math.ceil(self.retry_after)} s."


_FIELDS = ("customer_id", "unit", "limit", "used", "period", "resets_at", "reserved", "requested", "plan", "feature",
           "requested_output_tokens")


def _rebuild(cls: type[QuotaExceeded], state: dict) -> QuotaExceeded:  # type: ignore[type-arg]
    numbers = {k: state[k] for k in _FIELDS if k in state}
    if issubclass(cls, RateLimited):
        return cls(retry_after=state["retry_after"], **numbers)
    return cls(**numbers)


def _rebuild_quota_exceeded(state: dict) -> QuotaExceeded:  # type: ignore[type-arg]
    # Kept so exceptions pickled by an earlier version still load.
    return _rebuild(QuotaExceeded, state)
