"""Price-call speed: ``RateTable.price`` vs ``genai_prices.calc_price`` on the same inputs, in one run.

    python benchmarks/pricing.py            # median µs per call of each, and the ratio
    python benchmarks/pricing.py --quick    # fewer rounds

Both sides are warmed first (name caches filled), both get prebuilt usage objects and an explicit timestamp, and
each result is checked to agree before timing. Timing: ``time.perf_counter_ns`` around batches of calls; the
median over rounds, the two interleaved round by round, GC off while timing. Target: ours at least 25x faster (a few µs per call).
"""

from __future__ import annotations

import argparse
import gc
import platform
import statistics
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import genai_prices

from metricaos_sdk.pricing import RateTable
from metricaos_sdk.pricing.rates import genai_context
from metricaos_sdk.usage import Usage

AT = datetime(2026, 11, 1, 12, tzinfo=timezone.utc)
# (label, our provider, genai-prices provider, model name as sent, usage, batch, service tier)
CASES = [
    (
        "openai gpt-4.1-mini, cached",
        "openai",
        "openai",
        "gpt-4.1-mini-2025-04-14",
        Usage(input_tokens=1200, cached_input_tokens=1024, output_tokens=300),
        False,
        None,
    ),
    (
        "openai gpt-5.4 >272k, flex",
        "openai",
        "openai",
        "gpt-5.4",
        Usage(input_tokens=300_000, output_tokens=2000, reasoning_tokens=1500),
        False,
        "flex",
    ),
    (
        "anthropic sonnet-4-5, cache writes",
        "anthropic",
        "anthropic",
        "claude-sonnet-4-5-20250929",
        Usage(
            input_tokens=12_000,
            cached_input_tokens=8000,
            cache_write_tokens=3000,
            cache_write_5m_tokens=1000,
            cache_write_1h_tokens=2000,
            output_tokens=500,
        ),
        False,
        None,
    ),
    (
        "anthropic sonnet-4-5, batch",
        "anthropic",
        "anthropic",
        "claude-sonnet-4-5",
        Usage(input_tokens=5000, output_tokens=800),
        True,
        None,
    ),
    (
        "bedrock us. claude haiku 4.5",
        "bedrock",
        "aws",
        "us.anthropic.claude-haiku-4-5-20251001-v1:0",
        Usage(input_tokens=2000, output_tokens=400),
        False,
        None,
    ),
    (
        "vertex claude @-id",
        "vertex",
        "google",
        "claude-sonnet-4-5@20250929",
        Usage(input_tokens=2000, output_tokens=400),
        False,
        None,
    ),
    (
        "azure gpt-4o (resold)",
        "azure_openai",
        "azure",
        "gpt-4o",
        Usage(input_tokens=2000, output_tokens=400),
        False,
        None,
    ),
]


def _genai_usage(u: Usage) -> genai_prices.Usage:
    return genai_prices.Usage(
        input_tokens=u.input_tokens,
        output_tokens=u.output_tokens,
        cache_read_tokens=u.cached_input_tokens,
        cache_write_tokens=u.cache_write_tokens,
        cache_write_5m_tokens=u.cache_write_5m_tokens,
        cache_write_1h_tokens=u.cache_write_1h_tokens,
        output_reasoning_tokens=u.reasoning_tokens,
        web_searches=u.web_search_requests,
    )


def _per_call_us(call: Callable[[], object], calls: int) -> float:
    start = time.perf_counter_ns()
    for _ in range(calls):
        call()
    return (time.perf_counter_ns() - start) / calls / 1000


def _race(
    ours: Callable[[], object], theirs: Callable[[], object], calls: tuple[int, int], rounds: int
) -> tuple[float, float]:
    """Median µs per call of each; rounds interleaved so both see the same machine load; GC off while timing."""
    mine, reference = [], []
    gc.disable()
    try:
        for _ in range(rounds):
            mine.append(_per_call_us(ours, calls[0]))
            reference.append(_per_call_us(theirs, calls[1]))
    finally:
        gc.enable()
    return statistics.median(mine), statistics.median(reference)


def main() -> None:
    parser = argparse.ArgumentParser(description="RateTable.price vs genai_prices.calc_price")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    ours_calls, theirs_calls, rounds = (2000, 100, 7) if args.quick else (20_000, 1000, 21)

    start = time.perf_counter_ns()
    table = RateTable.bundled()
    load_ms = (time.perf_counter_ns() - start) / 1e6

    print(
        f"python {platform.python_version()} on {platform.machine()}; genai-prices {genai_prices.__version__}; "
        f"table {table.version} (loaded in {load_ms:.1f} ms)"
    )
    print(f"median of {rounds} rounds; ours {ours_calls} calls/round, calc_price {theirs_calls} calls/round\n")
    print(f"{'case':<38} {'ours µs':>9} {'calc_price µs':>14} {'ratio':>8}")
    ratios, ours_all, theirs_all = [], [], []
    for label, provider, gp_provider, model, usage, batch, tier in CASES:
        gu, ctx = _genai_usage(usage), genai_context(batch, tier) or None

        def ours(
            provider: str = provider,
            model: str = model,
            usage: Usage = usage,
            batch: bool = batch,
            tier: str | None = tier,
        ) -> object:
            return table.price(provider, model, usage, at=AT, batch=batch, service_tier=tier)

        def theirs(
            gu: genai_prices.Usage = gu,
            model: str = model,
            gp_provider: str = gp_provider,
            ctx: dict[str, str] | None = ctx,
        ) -> object:
            return genai_prices.calc_price(
                gu, model, provider_id=gp_provider, genai_request_timestamp=AT, price_context=ctx
            )

        mine, reference = ours().cost_usd, theirs().total_price  # type: ignore[attr-defined]
        if mine != reference:
            raise SystemExit(f"{label}: ours {mine} != genai-prices {reference}")
        t_ours, t_theirs = _race(ours, theirs, (ours_calls, theirs_calls), rounds)
        ratios.append(t_theirs / t_ours)
        ours_all.append(t_ours)
        theirs_all.append(t_theirs)
        print(f"{label:<38} {t_ours:>9.2f} {t_theirs:>14.2f} {t_theirs / t_ours:>7.1f}x")
    print(
        f"\n{'median over cases':<38} {statistics.median(ours_all):>9.2f} {statistics.median(theirs_all):>14.2f} "
        f"{statistics.median(ratios):>7.1f}x   (min ratio {min(ratios):.1f}x, target >= 25x)"
    )

    # First sight of a name (resolution + compilation), then cached: what a new model name costs once.
    fresh = RateTable(table._data)
    start = time.perf_counter_ns()
    fresh.price(
        "bedrock",
        "arn:aws:bedrock:us-east-1:1:inference-profile/eu.anthropic.claude-sonnet-4-5-20250929-v1:0",
        Usage(input_tokens=1),
        at=AT,
    )
    print(f"first sight of a new name (match + compile, then cached): {(time.perf_counter_ns() - start) / 1000:.0f} µs")


if __name__ == "__main__":
    main()
