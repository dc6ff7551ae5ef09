"""The exceptions the SDK raises on purpose.

Metering faults are never raised into the caller's LLM call (they are logged on the
``metricaos_sdk`` logger and recorded on the event). What is raised is a decision the user asked
for, or bad input at a boundary::

    MetricaOSError
     ├── QuotaExceeded          a hard limit is reached; raised before any request is sent
     └── ConfigurationError     bad input at a boundary (constructor, rate file, CLI args)

Provider exceptions (``openai.APIError``, ``anthropic.APIError`` …) pass through the wrapper untouched.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

__all__ = ["ConfigurationError", "MetricaOSError", "QuotaExceeded"]


class MetricaOSError(Exception):
    """Base class of every exception the SDK raises on purpose."""


class ConfigurationError(MetricaOSError, ValueError):
    """Bad input at a boundary: the message says what is wrong and how to fix it."""


class QuotaExceeded(MetricaOSError):
    """A customer reached a hard limit; the LLM request was not sent.

    Carries the numbers, so an application can show them or a support agent can read ``str(exc)``
    to the customer.
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
    ) -> None:
        self.customer_id = customer_id
        self.unit = unit
        self.limit = limit
        self.used = used
        self.period = period
        self.resets_at = resets_at
        super().__init__(self.message)

    @property
    def remaining(self) -> int | Decimal:
        """What is left of the limit (never negative)."""
        return max(self.limit - self.used, 0)

    @property
    def message(self) -> str:
        """A sentence a support agent can read to the customer."""
        unit = "USD" if self.unit == "cost_usd" else self.unit
        return (
            f"Customer {self.customer_id} has used {self.used} of {self.limit} {unit} this {self.period}; "
            f"the allowance resets at {self.resets_at.isoformat()}."
        )

    def __reduce__(self):  # type: ignore[no-untyped-def]
        # Keyword-only __init__: teach pickle (multiprocessing, task queues) to rebuild it.
        return (_rebuild_quota_exceeded, (self.__dict__.copy(),))


def _rebuild_quota_exceeded(state: dict) -> QuotaExceeded:  # type: ignore[type-arg]
    return QuotaExceeded(**{k: state[k] for k in ("customer_id", "unit", "limit", "used", "period", "resets_at")})
