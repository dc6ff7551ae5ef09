"""Prices of LLM calls: a dated rate table generated from genai-prices, user overrides, and a fast lookup.

    from metricaos_sdk.pricing import RateTable
    quote = RateTable.bundled().price("openai", "gpt-4.1-mini", usage)
    quote.cost_usd, quote.price_status, quote.price_id

``price()`` never raises; an unknown model gives ``cost_usd=None`` and ``price_status="unpriced"`` (or
``"fallback"`` with :meth:`RateTable.with_fallback`). See docs/pricing.md.
"""

from .quote import PriceQuote, RateFileError
from .table import RateTable

__all__ = ["PriceQuote", "RateFileError", "RateTable"]
