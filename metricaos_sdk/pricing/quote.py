"""What a price lookup returns, and the one error a rate file can raise."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

__all__ = ["PRICE_STATUSES", "PriceQuote", "RateFileError"]

PRICE_STATUSES = ("priced", "unpriced", "fallback", "override", "self_hosted")


@dataclass(frozen=True, slots=True)
class PriceQuote:
    """The cost of one call and the provenance needed to re-price it deterministically."""

    cost_usd: Decimal | None
    """Exact cost in US dollars; ``None`` means unknown, never a silent ``0``."""
    price_status: str
    """``"priced"`` (bundled table), ``"override"`` (user rates), ``"fallback"`` (unknown model charged at the
    fallback rate), ``"self_hosted"`` (a server of your own — Ollama, vLLM — without a rate of yours: cost 0) or
    ``"unpriced"`` (unknown model, or usage that cannot be priced)."""
    price_id: str | None
    """Stable id of the rate row used, e.g. ``"openai:gpt-4.1-mini"`` or ``"anthropic:claude-sonnet-4-5#batch"``."""
    table_version: str
    """Version of the bundled table, or ``"user:<hash>"`` when user-supplied rates priced the call."""
    effective_from: date | None
    """First day (UTC) the rate row applies; ``None`` for a model's first known price."""
    model_resolved: str | None
    """Canonical model id the name resolved to; ``None`` when it resolved to nothing."""


class RateFileError(ValueError):
    """A rate file or mapping is malformed; the message names the file, the model and the field."""
