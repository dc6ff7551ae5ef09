"""Agreement with genai-prices: every model of our table, a grid of usages, contexts and dates, to the last digit.

genai-prices is a test dependency only. Deliberate disagreements are listed in ``DELIBERATE`` with their reason
and checked to still be disagreements (so the list cannot go stale).
"""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone
from importlib import resources
from typing import Any

import genai_prices
import pytest

from metricaos_sdk.pricing import RateTable
from metricaos_sdk.pricing.rates import context_key, genai_context
from metricaos_sdk.usage import Usage

DATA = json.loads(resources.files("metricaos_sdk.pricing").joinpath("_generated_rates.json").read_text("utf-8"))
TABLE = RateTable.bundled()

USAGES = [
    Usage(input_tokens=1234, output_tokens=567),  # plain
    Usage(input_tokens=5000, cached_input_tokens=3000, output_tokens=100),  # cache read
    Usage(
        input_tokens=10_000,
        cached_input_tokens=1000,
        cache_write_tokens=4000,
        cache_write_5m_tokens=4000,
        output_tokens=50,
    ),  # 5-minute cache write
    Usage(input_tokens=10_000, cache_write_tokens=4000, cache_write_1h_tokens=4000, output_tokens=50),  # 1-hour
    Usage(
        input_tokens=10_000,
        cache_write_tokens=5000,
        cache_write_5m_tokens=2000,
        cache_write_1h_tokens=2500,
        output_tokens=50,
    ),  # both TTLs plus an unsplit rest
    Usage(input_tokens=100, output_tokens=2000, reasoning_tokens=1500),  # reasoning
    Usage(input_tokens=200_000, output_tokens=10),  # exactly at the 200k threshold
    Usage(
        input_tokens=250_000,
        cached_input_tokens=50_000,
        cache_write_tokens=10_000,
        output_tokens=1000,
        reasoning_tokens=10,
    ),  # > 200k
    Usage(input_tokens=300_000, cached_input_tokens=100_000, output_tokens=1000),  # > 272k
    Usage(input_tokens=1_100_000, output_tokens=1000, web_search_requests=3),  # > 1M, web search
    Usage(),
]
CONTEXTS = [
    (False, None),
    (True, None),
    (False, "flex"),
    (False, "priority"),
    (False, "fast"),
    (False, "default"),
    (True, "default"),
    (True, "flex"),
    (False, "batch"),
    (False, "standard"),
]

# (provider, genai-prices model id) -> why we differ. Each entry is checked to really differ.
DELIBERATE: dict[tuple[str, str], str] = {
    (s["provider"], s["model"]): f"unpriced on purpose: {s['reason']} (Usage carries tokens only)"
    for s in DATA["skipped"]
}


def _genai_usage(usage: Usage) -> genai_prices.Usage:
    return genai_prices.Usage(
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cache_read_tokens=usage.cached_input_tokens,
        cache_write_tokens=usage.cache_write_tokens,
        cache_write_5m_tokens=usage.cache_write_5m_tokens,
        cache_write_1h_tokens=usage.cache_write_1h_tokens,
        output_reasoning_tokens=usage.reasoning_tokens,
        web_searches=usage.web_search_requests,
    )


def _dates(model: dict[str, Any]) -> list[datetime | None]:
    days = {date(2024, 1, 1)}
    for rows in model["rates"].values():
        for start, *_ in rows:
            if start:  # the day before and the day a price changes
                day = date.fromisoformat(start)
                days |= {day - timedelta(days=1), day}
    return [datetime(d.year, d.month, d.day, 12, tzinfo=timezone.utc) for d in sorted(days)] + [None]


def _cases() -> list[Any]:
    cases = []
    for provider, chain in DATA["providers"].items():
        if "api_pattern" in chain:  # test_compatible_providers_agree_with_genai_prices
            continue
        for source in [chain.get("source", provider), *chain["fallback"]]:
            for model in DATA["sources"][source]:
                if "rates" in model:
                    cases.append(
                        pytest.param(provider, chain["genai_prices_id"], model, id=f"{provider}/{source}/{model['id']}")
                    )
    return cases


def _usages(provider: str) -> list[Usage]:
    """Every usage for our own providers; for the OpenAI-compatible ones (1,200 models), one of each kind of bucket
    and threshold (plain, cache read, cache write, reasoning, past 200k, past 1M with web search)."""
    if "api_pattern" not in DATA["providers"][provider]:
        return USAGES
    return [USAGES[i] for i in (0, 1, 2, 5, 7, 9)]


def _contexts(provider: str, model: dict[str, Any]) -> list[tuple[bool, str | None]]:
    """Every context for our own providers; for the OpenAI-compatible ones (hundreds of OpenRouter models), the
    standard context and those the model has rows for: the others fall back to standard in both tables."""
    if "api_pattern" not in DATA["providers"][provider]:
        return CONTEXTS
    return [(b, t) for b, t in CONTEXTS if (b, t) == (False, None) or context_key(b, t) in model["rates"]]


def _mismatches(provider: str, genai_provider: str, model: dict[str, Any]) -> list[Any]:
    name = model["names"][0]
    mismatches = []
    for at in _dates(model):
        for batch, tier in _contexts(provider, model):
            context = genai_context(batch, tier) or None
            for usage in _usages(provider):
                ours = TABLE.price(provider, name, usage, at=at, batch=batch, service_tier=tier).cost_usd
                theirs = genai_prices.calc_price(
                    _genai_usage(usage),
                    name,
                    provider_id=genai_provider,
                    genai_request_timestamp=at,
                    price_context=context,
                ).total_price
                if ours != theirs:
                    mismatches.append((name, at, batch, tier, usage, ours, theirs))
    return mismatches


@pytest.mark.parametrize(("provider", "genai_provider", "model"), _cases())
def test_agrees_with_genai_prices(provider: str, genai_provider: str, model: dict[str, Any]) -> None:
    mismatches = _mismatches(provider, genai_provider, model)
    assert mismatches == [], f"{len(mismatches)} disagreements, first: {mismatches[0]}"


@pytest.mark.parametrize("provider", [p for p, chain in DATA["providers"].items() if "api_pattern" in chain])
def test_compatible_providers_agree_with_genai_prices(provider: str) -> None:
    # One test per provider (OpenRouter alone has 900 models: a test each would cost more in pytest than in prices).
    chain = DATA["providers"][provider]
    models = [m for m in DATA["sources"][chain.get("source", provider)] if "rates" in m]
    assert models
    mismatches = [m for model in models for m in _mismatches(provider, chain["genai_prices_id"], model)]
    assert mismatches == [], f"{len(mismatches)} disagreements, first: {mismatches[0]}"


@pytest.mark.parametrize(("provider", "model_id"), sorted(DELIBERATE))
def test_deliberate_disagreements_are_real(provider: str, model_id: str) -> None:
    # The skipped model's source -> the provider of ours whose own models it holds (else Azure resells it: Kimi).
    ours = {c.get("source", name): name for name, c in DATA["providers"].items()}
    via = ours.get(provider, "azure_openai")
    chain = DATA["providers"].get(via)
    genai_provider = chain["genai_prices_id"] if via in ours.values() and provider in ours else provider
    usage = Usage(input_tokens=1000, output_tokens=1000)
    assert TABLE.price(via, model_id, usage).price_status == "unpriced"
    theirs = genai_prices.calc_price(_genai_usage(usage), model_id, provider_id=genai_provider)
    assert theirs.total_price is not None, DELIBERATE[(provider, model_id)]


def test_the_grid_covers_every_context_the_table_has() -> None:
    contexts = {key for models in DATA["sources"].values() for m in models for key in m.get("rates", {})}
    covered = {"standard", "batch", "flex", "priority", "fast", "default", "batch+default", "batch+flex"}
    assert contexts - covered <= {"batch+priority", "batch+fast"}, contexts - covered
