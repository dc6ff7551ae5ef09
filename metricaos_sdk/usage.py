"""Token usage of one LLM call, in inclusive buckets.

Every provider reports usage differently. The extractors in :mod:`metricaos_sdk.providers` normalise
them to this one shape so that pricing, quotas and reports never need to know where a number came from.

The buckets are *inclusive*, the way OpenAI reports them::

    input_tokens  ⊇ cached_input_tokens + cache_write_tokens
    output_tokens ⊇ reasoning_tokens
    total_tokens  = input_tokens + output_tokens

Anthropic reports cache reads and writes *apart from* ``input_tokens``; its extractor folds them in, so
``input_tokens`` always means "every prompt token the provider processed".
"""

from __future__ import annotations

from dataclasses import dataclass, fields

__all__ = ["Usage"]


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts of one call. All fields are non-negative integers; the zero usage is ``Usage()``."""

    input_tokens: int = 0
    """All prompt tokens, cached reads and cache writes included."""
    output_tokens: int = 0
    """All generated tokens, reasoning tokens included."""
    cached_input_tokens: int = 0
    """Prompt tokens read from the provider's prompt cache (a subset of ``input_tokens``)."""
    cache_write_tokens: int = 0
    """Prompt tokens written to the prompt cache (a subset of ``input_tokens``); the sum of the two TTL
    buckets below when the provider splits them, otherwise priced at the 5-minute rate."""
    cache_write_5m_tokens: int = 0
    """Of ``cache_write_tokens``, those written with a 5-minute TTL (Anthropic)."""
    cache_write_1h_tokens: int = 0
    """Of ``cache_write_tokens``, those written with a 1-hour TTL (Anthropic)."""
    reasoning_tokens: int = 0
    """Output tokens spent on hidden reasoning (a subset of ``output_tokens``)."""
    web_search_requests: int = 0
    """Server-side tool uses billed per request (Anthropic web search)."""

    @property
    def total_tokens(self) -> int:
        """``input_tokens + output_tokens``."""
        return self.input_tokens + self.output_tokens

    @property
    def uncached_input_tokens(self) -> int:
        """Input tokens billed at the plain input rate: neither read from nor written to the cache."""
        return max(self.input_tokens - self.cached_input_tokens - self.cache_write_tokens, 0)

    def __add__(self, other: Usage) -> Usage:
        if not isinstance(other, Usage):
            return NotImplemented
        return Usage(**{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)})

    def problems(self) -> list[str]:
        """What makes this usage impossible (negative counts, subsets larger than their bucket); ``[]`` if sound."""
        if (self.cached_input_tokens + self.cache_write_tokens <= self.input_tokens
                and self.reasoning_tokens <= self.output_tokens
                and self.cache_write_5m_tokens + self.cache_write_1h_tokens <= self.cache_write_tokens
                and min(self.cached_input_tokens, self.cache_write_5m_tokens, self.cache_write_1h_tokens,
                        self.reasoning_tokens, self.web_search_requests) >= 0):
            return []  # the usual case, checked once per call: no field walk
        found = [f"{f.name} is negative" for f in fields(self) if getattr(self, f.name) < 0]
        if self.cached_input_tokens + self.cache_write_tokens > self.input_tokens:
            found.append("cached_input_tokens + cache_write_tokens exceeds input_tokens")
        if self.reasoning_tokens > self.output_tokens:
            found.append("reasoning_tokens exceeds output_tokens")
        if self.cache_write_5m_tokens + self.cache_write_1h_tokens > self.cache_write_tokens:
            found.append("cache_write_5m_tokens + cache_write_1h_tokens exceeds cache_write_tokens")
        return found
