"""RateTable.price: exact costs, dates, tiers, batch and service tiers, and never raising."""

from __future__ import annotations

import logging
import warnings
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from metricaos_sdk.pricing import PriceQuote, RateTable
from metricaos_sdk.usage import Usage

AFTER = datetime(2026, 11, 1, 12, tzinfo=timezone.utc)  # after the 2026-10-12/14 tier and batch rows
BEFORE = datetime(2026, 10, 1, 12, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def table() -> RateTable:
    return RateTable.bundled()


def test_bundled_is_loaded_once(table: RateTable) -> None:
    assert RateTable.bundled() is table
    assert table.version.startswith("genai-prices-")


def test_openai_plain_and_cached(table: RateTable) -> None:
    # gpt-4.1-mini: input 0.4, cached input 0.1, output 1.6 per million
    quote = table.price(
        "openai", "gpt-4.1-mini", Usage(input_tokens=1000, output_tokens=500, cached_input_tokens=200), at=AFTER
    )
    assert quote == PriceQuote(Decimal("0.00114"), "priced", "openai:gpt-4.1-mini", table.version, None, "gpt-4.1-mini")
    assert isinstance(quote.cost_usd, Decimal)


def test_anthropic_every_bucket(table: RateTable) -> None:
    # claude-sonnet-4-5: input 3, cache read 0.3, 5m write 3.75, 1h write 6, output 15 (reasoning at output rate)
    usage = Usage(
        input_tokens=10_000,
        cached_input_tokens=1000,
        cache_write_tokens=4000,
        cache_write_5m_tokens=1000,
        cache_write_1h_tokens=2000,
        output_tokens=100,
        reasoning_tokens=50,
        web_search_requests=3,
    )
    quote = table.price("anthropic", "claude-sonnet-4-5-20250929", usage, at=AFTER)
    # 5000*3 + 1000*0.3 + (1000 unsplit + 1000 5m)*3.75 + 2000*6 + 100*15 = 36300 per million; 3 searches * $10/1k
    assert quote.cost_usd == Decimal("0.0363") + Decimal("0.03")
    assert quote.model_resolved == "claude-sonnet-4-5"


def test_long_context_tier_prices_the_whole_request(table: RateTable) -> None:
    at_limit = table.price("anthropic", "claude-sonnet-4-5", Usage(input_tokens=200_000, output_tokens=1000), at=AFTER)
    above = table.price("anthropic", "claude-sonnet-4-5", Usage(input_tokens=200_001, output_tokens=1000), at=AFTER)
    assert at_limit.cost_usd == Decimal("0.615")  # 200000*3 + 1000*15
    assert above.cost_usd == Decimal("1.222506")  # 200001*6 + 1000*22.5: every token at the higher tier
    # cached tokens count toward the threshold: input is inclusive
    cached = table.price(
        "anthropic", "claude-sonnet-4-5", Usage(input_tokens=200_001, cached_input_tokens=200_000), at=AFTER
    )
    assert cached.cost_usd == Decimal("0.120006")  # 1*6 + 200000*0.6


def test_batch_is_dated(table: RateTable) -> None:
    usage = Usage(input_tokens=1000, output_tokens=1000)
    after = table.price("anthropic", "claude-sonnet-4-5", usage, at=AFTER, batch=True)
    assert after.cost_usd == Decimal("0.009")
    assert after.price_id == "anthropic:claude-sonnet-4-5@2026-10-14#batch"
    assert after.effective_from == date(2026, 10, 14)
    # genai-prices models batch rates from 2026-10-14 on only; earlier batch calls get the standard rate
    before = table.price("anthropic", "claude-sonnet-4-5", usage, at=BEFORE, batch=True)
    assert (before.cost_usd, before.price_id, before.effective_from) == (
        Decimal("0.018"),
        "anthropic:claude-sonnet-4-5",
        None,
    )
    # Anthropic echoes service_tier="batch" for Message Batches: the same as batch=True
    assert table.price("anthropic", "claude-sonnet-4-5", usage, at=AFTER, service_tier="batch") == after


def test_openai_service_tiers(table: RateTable) -> None:
    usage = Usage(input_tokens=300_000, output_tokens=1000)
    flex = table.price("openai", "gpt-5.4", usage, at=AFTER, service_tier="flex")
    assert flex.cost_usd == Decimal("0.76125")  # >272k tier of flex: 300000*2.5 + 1000*11.25
    assert flex.price_id == "openai:gpt-5.4@2026-10-12#flex"
    standard = table.price("openai", "gpt-5.4", usage, at=AFTER)
    assert standard.cost_usd == Decimal("1.5225")  # 300000*5 + 1000*22.5
    for tier in ("default", "auto", "scale", None, "some-new-tier"):
        assert table.price("openai", "gpt-5.4", usage, at=AFTER, service_tier=tier) == standard
    priority = table.price("openai", "gpt-5.4", Usage(input_tokens=1000), at=AFTER, service_tier="priority")
    assert priority.cost_usd == Decimal("0.005")


def test_dates_naive_is_utc_and_aware_is_converted(table: RateTable) -> None:
    usage = Usage(input_tokens=1000, output_tokens=1000)
    naive = table.price("anthropic", "claude-sonnet-4-5", usage, at=datetime(2026, 10, 14, 0, 30), batch=True)
    assert naive.effective_from == date(2026, 10, 14)
    plus_two = timezone(timedelta(hours=2))
    aware = table.price(
        "anthropic", "claude-sonnet-4-5", usage, at=datetime(2026, 10, 14, 0, 30, tzinfo=plus_two), batch=True
    )
    assert aware.effective_from is None  # 2026-10-13 22:30 UTC: before the batch row
    assert table.price("anthropic", "claude-sonnet-4-5", usage, at=date(2026, 10, 14), batch=True) == naive


def test_at_none_means_now(table: RateTable) -> None:
    usage = Usage(input_tokens=1000, output_tokens=1000)
    now = datetime.now(timezone.utc)
    assert table.price("openai", "gpt-4o", usage) == table.price("openai", "gpt-4o", usage, at=now)


def test_embedding_and_zero_usage(table: RateTable) -> None:
    quote = table.price("openai", "text-embedding-3-small", Usage(input_tokens=1_000_000))
    assert quote.cost_usd == Decimal("0.02")
    assert table.price("openai", "gpt-4o", Usage()).cost_usd == 0


def test_cost_is_exact(table: RateTable) -> None:
    quote = table.price("openai", "gpt-4.1-nano", Usage(input_tokens=987_654_321, output_tokens=123_456_789))
    # 0.1 and 0.4 per million: nothing rounded, nothing binary
    assert quote.cost_usd == Decimal("98.7654321") + Decimal("49.3827156")


def test_unknown_model_is_unpriced_without_warnings(table: RateTable, caplog: pytest.LogCaptureFixture) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with caplog.at_level(logging.INFO, logger="metricaos_sdk"):
            quote = table.price("openai", "gpt-unknown-9", Usage(input_tokens=10))
            again = table.price("openai", "gpt-unknown-9", Usage(input_tokens=10))
    assert quote == again == PriceQuote(None, "unpriced", None, table.version, None, None)
    assert caplog.records == []  # the Meter warns once per model; the table stays quiet


def test_models_without_token_prices_are_unpriced(table: RateTable) -> None:
    assert table.price("openai", "whisper-1", Usage(input_tokens=10)).price_status == "unpriced"
    assert table.price("openai", "tts-1", Usage(input_tokens=10)).cost_usd is None


@pytest.mark.parametrize(
    ("provider", "model", "usage", "kwargs"),
    [
        ("openai", "gpt-4o", None, {}),
        ("openai", "gpt-4o", "not usage", {}),
        ("openai", "gpt-4o", Usage(input_tokens=-1), {}),
        ("openai", "gpt-4o", Usage(input_tokens=10, cached_input_tokens=20), {}),
        ("openai", "gpt-4o", Usage(output_tokens=5, reasoning_tokens=6), {}),
        ("openai", "gpt-4o", Usage(input_tokens=5, cache_write_tokens=2, cache_write_1h_tokens=3), {}),
        ("openai", "gpt-4o", Usage(input_tokens=10), {"at": "yesterday"}),
        ("openai", "gpt-4o", Usage(input_tokens=10), {"requests": -1}),
        ("openai", None, Usage(input_tokens=10), {}),
        (None, None, Usage(input_tokens=10), {}),
        (42, object(), Usage(input_tokens=10), {}),
    ],
)
def test_bad_input_never_raises(
    table: RateTable,
    caplog: pytest.LogCaptureFixture,
    provider: object,
    model: object,
    usage: object,
    kwargs: dict[str, object],
) -> None:
    with caplog.at_level(logging.WARNING, logger="metricaos_sdk"):
        quote = table.price(provider, model, usage, **kwargs)  # type: ignore[arg-type]
    assert quote.cost_usd is None and quote.price_status == "unpriced" and quote.price_id is None
    assert caplog.records, "bad input is logged"


def test_float_tokens_are_refused(table: RateTable) -> None:
    quote = table.price("openai", "gpt-4o", Usage(input_tokens=1.5))  # type: ignore[arg-type]
    assert quote.cost_usd is None


def test_quote_is_frozen(table: RateTable) -> None:
    quote = table.price("openai", "gpt-4o", Usage(input_tokens=1))
    with pytest.raises(AttributeError):
        quote.cost_usd = Decimal(0)  # type: ignore[misc]


def test_explain_lists_rows_and_reasons(table: RateTable) -> None:
    info = table.explain("openai", "gpt-4.1-mini-2025-04-14")
    assert info["resolved"] and info["model_resolved"] == "gpt-4.1-mini"
    assert info["rates"]["standard"][0]["prices"] == {
        "input_mtok": "0.4",
        "cache_read_mtok": "0.1",
        "output_mtok": "1.6",
        "web_searches_kcount": "10",
    }
    assert "batch" in info["rates"] and "equals 'gpt-4.1-mini-2025-04-14'" in info["steps"][-1]
    assert info["dropped_price_keys"] == ["storage_searches_kcount"]
    unknown = table.explain(None, "no-such-model")
    assert unknown["resolved"] is False and unknown["price_status"] == "unpriced"
