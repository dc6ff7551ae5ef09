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


def _fmt(value: int | Decimal) -> str:
    return f"{value:,}"  # 2,000 credits; Decimal keeps its digits (0.0006528 USD)


class QuotaExceeded(MetricaOSError):
    """A customer reached a hard limit; the LLM request was not sent.

    Carries the numbers, so an application can show them or a support agent can read ``str(exc)``
    to the customer. ``used`` is settled usage; ``reserved`` is held by the customer's calls still in
    flight; ``requested`` is this call's estimate (what did not fit).
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
        super().__init__(self.message)

    @property
    def remaining(self) -> int | Decimal:
        """What is left of the limit, after calls in flight (never negative)."""
        return max(self.limit - self.used - self.reserved, 0)

    @property
    def message(self) -> str:
        """A sentence a support agent can read to the customer."""
        unit = "USD" if self.unit == "cost_usd" else self.unit
        scope = f" for {self.feature}" if self.feature else ""
        plan = f" on the {self.plan} plan" if self.plan else ""
        text = (f"Customer {self.customer_id} has used {_fmt(self.used)} of {_fmt(self.limit)} {unit}{scope} "
                f"this {self.period}{plan}")
        if self.reserved:
            text += f", and calls in progress hold {_fmt(self.reserved)} more"
        if self.requested:
            text += f"; this request needs about {_fmt(self.requested)}"
        return text + f". The allowance resets at {self.resets_at.isoformat()}."

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
        unit = "USD" if self.unit == "cost_usd" else self.unit
        if self.period in ("second", "minute", "hour"):
            text = (f"Customer {self.customer_id} has used {_fmt(self.used + self.reserved)} of the "
                    f"{_fmt(self.limit)} {unit} allowed per {self.period}")
            if self.requested:
                text += f"; this request needs about {_fmt(self.requested)}"
            return text + f". Retry in {math.ceil(self.retry_after)} s."
        return super().message.rstrip(".") + f"; retry in {math.ceil(self.retry_after)} s."


_FIELDS = ("customer_id", "unit", "limit", "used", "period", "resets_at", "reserved", "requested", "plan", "feature")


def _rebuild(cls: type[QuotaExceeded], state: dict) -> QuotaExceeded:  # type: ignore[type-arg]
    numbers = {k: state[k] for k in _FIELDS if k in state}
    if issubclass(cls, RateLimited):
        return cls(retry_after=state["retry_after"], **numbers)
    return cls(**numbers)


def _rebuild_quota_exceeded(state: dict) -> QuotaExceeded:  # type: ignore[type-arg]
    # Kept so exceptions pickled by an earlier version still load.
    return _rebuild(QuotaExceeded, state)
