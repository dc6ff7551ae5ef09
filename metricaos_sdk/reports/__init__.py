"""What the recorded events say: a customer's usage summary, usage reports grouped any way, event listings,
exports, margins, reconciliation with the provider's bill, and spike alerts.

Everything here reads an event store — the SDK's SQLite file or the PostgreSQL table delivery fills
(:func:`open_source`) — through SQL aggregates, and depends only on the event model and the stores, never on the
wrappers or the :class:`~metricaos_sdk.Meter`. Money is summed exactly (:mod:`.exact`), never as a float.

Only the summary ``meter.usage()`` returns is imported with the package; the rest is imported when first used, so
that ``import metricaos_sdk`` (which a metered app pays at start) does not load reports it never runs.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .summary import LimitStatus, Totals, UsageSummary, combine, summarize, totals_text

if TYPE_CHECKING:
    from .alerts import Spike, SpikeRules, detect_spikes
    from .business import BusinessOverview, DayFigures, business_overview
    from .customer import CustomerUsage, RecentAction, customer_usage, limits_for
    from .margin import CustomerMargin, invoice_revenue, margins, read_revenue
    from .provider_costs import ProviderCost, ProviderCosts, parse_costs
    from .reconcile import Explanation, ReconcileRow, Reconciliation, Tolerance, parse_tolerance, reconcile
    from .source import EventSource, PostgresSource, SQLiteSource, open_source
    from .spike_watch import SpikeWatcher
    from .usage_report import DIMENSIONS, Filters, ReportRow, Sums, UsageReport, usage_report

_LAZY = {
    "alerts": ("Spike", "SpikeRules", "detect_spikes"),
    "business": ("BusinessOverview", "DayFigures", "business_overview"),
    "customer": ("CustomerUsage", "RecentAction", "customer_usage", "limits_for"),
    "margin": ("CustomerMargin", "invoice_revenue", "margins", "read_revenue"),
    "provider_costs": ("ProviderCost", "ProviderCosts", "parse_costs"),
    "reconcile": ("Explanation", "ReconcileRow", "Reconciliation", "Tolerance", "parse_tolerance", "reconcile"),
    "source": ("EventSource", "PostgresSource", "SQLiteSource", "open_source"),
    "spike_watch": ("SpikeWatcher",),
    "usage_report": ("DIMENSIONS", "Filters", "ReportRow", "Sums", "UsageReport", "usage_report"),
}
_WHERE = {name: module for module, names in _LAZY.items() for name in names}

__all__ = [
    "DIMENSIONS", "BusinessOverview", "CustomerMargin", "CustomerUsage", "DayFigures", "EventSource", "Explanation",
    "Filters", "LimitStatus", "PostgresSource", "ProviderCost", "ProviderCosts", "RecentAction", "ReconcileRow",
    "Reconciliation", "ReportRow", "SQLiteSource", "Spike", "SpikeRules", "SpikeWatcher", "Sums", "Tolerance",
    "Totals", "UsageReport", "UsageSummary", "business_overview", "combine", "customer_usage", "detect_spikes",
    "invoice_revenue", "limits_for", "margins", "open_source", "parse_costs", "parse_tolerance", "read_revenue",
    "reconcile", "summarize", "totals_text", "usage_report",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # the next lookup is an ordinary one
    return value


def __dir__() -> list[str]:
    return __all__
