"""What the recorded events say: a customer's usage summary, usage reports grouped any way, event listings,
exports, margins, reconciliation with the provider's bill, and spike alerts.

Everything here reads an event store — the SDK's SQLite file or the PostgreSQL table delivery fills
(:func:`open_source`) — through SQL aggregates, and depends only on the event model and the stores, never on the
wrappers or the :class:`~metricaos_sdk.Meter`. Money is summed exactly (:mod:`.exact`), never as a float.
"""

from .summary import LimitStatus, Totals, UsageSummary, combine, summarize, totals_text

__all__ = ["LimitStatus", "Totals", "UsageSummary", "combine", "summarize", "totals_text"]
