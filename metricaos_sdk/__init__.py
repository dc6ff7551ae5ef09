"""MetricaOS SDK: meter every LLM call — who made it, what it consumed, what it cost, and whether the
customer still has quota.

    from metricaos_sdk import Meter
    meter = Meter("metricaos.db")
    client = meter.wrap(openai.OpenAI())

This module is the public API; everything else is internal and may change. Billing's names are imported when
first used (``from metricaos_sdk import Billing`` works as usual): a metered app does not pay for them at start.
"""

from typing import TYPE_CHECKING, Any

from ._version import __version__
from .actions import ActionRun, ActionScope, current_action
from .billable import BillableRules
from .config import MeterConfig
from .context import Attribution, AttributionScope, current_attribution
from .errors import ConfigurationError, MetricaOSError, QuotaExceeded, QuotaUnavailable, RateLimited, UnpricedModel
from .events import UsageEvent
from .meter import Meter
from .pricing import PriceQuote, RateFileError, RateTable
from .quota import (
    CreditRule,
    Grant,
    InMemoryQuotaStore,
    Plan,
    Quota,
    QuotaAlert,
    QuotaStore,
    RateLimit,
    SQLiteQuotaStore,
    UsageTotals,
)
from .reports import LimitStatus, Totals, UsageSummary
from .sinks import EventQuery, MemorySink, Sink, SQLiteSink
from .usage import Usage

if TYPE_CHECKING:
    from .billing import Adjustment, Billing, Charge, CreditPack, Invoice, InvoiceLine, PricePlan, Replay
    from .quota.backends.redis import RedisQuotaStore

_BILLING = ("Adjustment", "Billing", "Charge", "CreditPack", "Invoice", "InvoiceLine", "PricePlan", "Replay")


def __getattr__(name: str) -> Any:
    if name in _BILLING:
        from . import billing

        value = getattr(billing, name)
        globals()[name] = value
        return value
    if name == "RedisQuotaStore":  # most processes never use it
        from .quota.backends.redis import RedisQuotaStore

        globals()[name] = RedisQuotaStore
        return RedisQuotaStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = [
    "ActionRun",
    "ActionScope",
    "Adjustment",
    "Attribution",
    "AttributionScope",
    "BillableRules",
    "Billing",
    "Charge",
    "ConfigurationError",
    "CreditPack",
    "CreditRule",
    "EventQuery",
    "Grant",
    "InMemoryQuotaStore",
    "Invoice",
    "InvoiceLine",
    "LimitStatus",
    "MemorySink",
    "Meter",
    "MeterConfig",
    "MetricaOSError",
    "Plan",
    "PricePlan",
    "PriceQuote",
    "Quota",
    "QuotaAlert",
    "QuotaExceeded",
    "QuotaStore",
    "QuotaUnavailable",
    "RateFileError",
    "RateLimit",
    "RateLimited",
    "RateTable",
    "RedisQuotaStore",
    "Replay",
    "SQLiteQuotaStore",
    "SQLiteSink",
    "Sink",
    "Totals",
    "UnpricedModel",
    "Usage",
    "UsageEvent",
    "UsageSummary",
    "UsageTotals",
    "__version__",
    "current_action",
    "current_attribution",
]
