"""What the recorded events say: a customer's usage summary, usage reports grouped any way, event listings,
exports, margins, reconciliation with the provider's bill, and spike alerts.

Everything here reads an event store — the SDK's SQLite file or the PostgreSQL table delivery fills
(:func:`open_source`) — through SQL aggregates, and depends only on the event model and the stores, never on the
wrappers or the :class:`~metricaos_sdk.Meter`. Money is summed exactly (:mod:`.exact`), never as a float.
"""

from .summary import LimitStatus, Totals, UsageSummary, combine, summarize, totals_text  # noqa: I001 (quota imports these first)
from .alerts import Spike, SpikeRules, detect_spikes
from .business import BusinessOverview, DayFigures, business_overview
from .customer import CustomerUsage, RecentAction, customer_usage, limits_for
from .margin import CustomerMargin, invoice_revenue, margins, read_revenue
from .provider_costs import ProviderCost, ProviderCosts, parse_costs
from .reconcile import Explanation, ReconcileRow, Reconciliation, Tolerance, parse_tolerance, reconcile
from .source import EventSource, PostgresSource, SQLiteSource, open_source
from .spike_watch import SpikeWatcher
from .usage_report import DIMENSIONS, Filters, ReportRow, Sums, UsageReport, usage_report

__all__ = [
    "DIMENSIONS", "BusinessOverview", "CustomerMargin", "CustomerUsage", "DayFigures", "EventSource", "Explanation",
    "Filters", "LimitStatus", "PostgresSource", "ProviderCost", "ProviderCosts", "RecentAction", "ReconcileRow",
    "Reconciliation", "ReportRow", "SQLiteSource", "Spike", "SpikeRules", "SpikeWatcher", "Sums", "Tolerance", "Totals", "UsageReport", "UsageSummary",
    "business_overview", "combine", "customer_usage", "detect_spikes", "invoice_revenue", "limits_for", "margins", "open_source",
    "parse_costs", "parse_tolerance", "read_revenue", "reconcile", "summarize", "totals_text", "usage_report",
]
