"""User rates: files, mappings, discounts, dates, fallback, deployments, and one clear error per mistake."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from metricaos_sdk.pricing import RateFileError, RateTable
from metricaos_sdk.usage import Usage

DATA = Path(__file__).parent / "data" / "pricing"
AFTER = datetime(2026, 11, 1, tzinfo=timezone.utc)
EARLY = datetime(2025, 6, 1, tzinfo=timezone.utc)
THOUSAND = Usage(input_tokens=1000, output_tokens=1000)


@pytest.fixture(scope="module")
def toml_table() -> RateTable:
    return RateTable.coerce(DATA / "rates.toml")


def test_coerce() -> None:
    bundled = RateTable.bundled()
    assert RateTable.coerce(None) is bundled
    assert RateTable.coerce(bundled) is bundled
    from_str = RateTable.coerce(str(DATA / "rates.toml"))
    from_path = RateTable.coerce(DATA / "rates.toml")
    quote = from_str.price("openai", "ft:gpt-4o-mini-2024-07-18:acme::9xyz", THOUSAND)
    assert quote == from_path.price("openai", "ft:gpt-4o-mini-2024-07-18:acme::9xyz", THOUSAND)
    assert re.fullmatch(r"user:[0-9a-f]{12}", quote.table_version)
    assert bundled.price("openai", "gpt-4o", THOUSAND, at=AFTER).price_status == "priced"  # bundled untouched


def test_fine_tune_rates(toml_table: RateTable) -> None:
    usage = Usage(input_tokens=1000, cached_input_tokens=200, output_tokens=100)
    quote = toml_table.price("openai", "ft:gpt-4o-mini-2024-07-18:acme::9xyz", usage)
    assert quote.cost_usd == Decimal("0.00039")  # 800*0.30 + 200*0.15 + 100*1.20
    assert (quote.price_status, quote.price_id) == ("override", "override:ft:gpt-4o-mini-2024-07-18:acme::9xyz")
    assert toml_table.price("openai", "FT:GPT-4O-MINI-2024-07-18:ACME::9XYZ", usage, batch=True) == quote


def test_discount_scoped_to_a_provider(toml_table: RateTable) -> None:
    azure = toml_table.price("azure_openai", "gpt-4o-2024-08-06", THOUSAND, at=AFTER)
    assert azure.cost_usd == Decimal("0.01")  # (2.5 + 10) * 0.8
    assert (azure.price_status, azure.price_id) == ("override", "override:gpt-4o(openai:gpt-4o)")
    openai = toml_table.price("openai", "gpt-4o", THOUSAND, at=AFTER)
    assert (openai.cost_usd, openai.price_status) == (Decimal("0.0125"), "priced")
    assert openai.table_version == RateTable.bundled().version


def test_dated_multiplier_applies_to_tiers_and_batch(toml_table: RateTable) -> None:
    early = toml_table.price("anthropic", "claude-sonnet-4-5-20250929", THOUSAND, at=EARLY)
    assert (early.cost_usd, early.price_status) == (Decimal("0.018"), "priced")
    late = toml_table.price("anthropic", "claude-sonnet-4-5-20250929", THOUSAND, at=AFTER)
    assert (late.cost_usd, late.price_status, str(late.effective_from)) == (Decimal("0.0162"), "override", "2026-01-01")
    batch = toml_table.price("anthropic", "claude-sonnet-4-5", THOUSAND, at=AFTER, batch=True)
    assert batch.cost_usd == Decimal("0.0081")
    assert batch.price_id == "override:claude-sonnet-4-5(anthropic:claude-sonnet-4-5@2026-10-14#batch)"
    long = toml_table.price("anthropic", "claude-sonnet-4-5", Usage(input_tokens=300_000), at=AFTER)
    assert long.cost_usd == Decimal("1.62")  # 300000 * 6 * 0.9


def test_per_request_price_changes_on_a_date(toml_table: RateTable) -> None:
    usage = Usage(input_tokens=1000)
    first = toml_table.price("vllm", "llama-3.3-70b-selfhosted", usage, at=EARLY)
    assert (first.cost_usd, first.effective_from) == (Decimal("0.0004"), None)
    later = toml_table.price("vllm", "llama-3.3-70b-selfhosted", usage, at=AFTER, requests=3)
    assert later.cost_usd == Decimal("0.0006") + Decimal("0.00001")
    assert later.price_id == "override:llama-3.3-70b-selfhosted@2026-06-01"


def test_fallback_and_deployments_from_file(toml_table: RateTable) -> None:
    quote = toml_table.price("openai", "gpt-from-the-future", THOUSAND)
    assert (quote.cost_usd, quote.price_status, quote.price_id, quote.model_resolved) == (
        Decimal("0.02"),
        "fallback",
        "fallback:user",
        None,
    )
    assert toml_table.price("azure_openai", "prod-chat", THOUSAND).model_resolved == "gpt-4.1-mini"


def test_json_file_tiers_and_fallback_model() -> None:
    table = RateTable.coerce(DATA / "rates.json")
    mine = table.price("openai", "my-model", Usage(input_tokens=100_001, output_tokens=10))
    assert mine.cost_usd == Decimal("0.12504125")  # 100001*1.25 + 10*4 (tier above 100k)
    half = table.price("openai", "gpt-4.1-mini", THOUSAND, at=AFTER)
    assert half.cost_usd == Decimal("0.001")
    fallback = table.price("anthropic", "claude-from-the-future", THOUSAND, at=AFTER)
    assert (fallback.cost_usd, fallback.price_status, fallback.price_id) == (
        Decimal("0.0125"),
        "fallback",
        "fallback:openai:gpt-4o",
    )


def test_mapping_and_python_floats() -> None:
    table = RateTable.coerce({"models": {"my-model": {"input": 0.1, "output": 3}}})
    assert table.price("openai", "my-model", Usage(input_tokens=10, output_tokens=1)).cost_usd == Decimal("0.000004")


def test_with_fallback_api() -> None:
    bundled = RateTable.bundled()
    by_rates = bundled.with_fallback(input="5", output="15")
    assert by_rates.price("openai", "nope", THOUSAND).cost_usd == Decimal("0.02")
    assert bundled.with_fallback({"input": "5"}).price("openai", "nope", THOUSAND).cost_usd == Decimal("0.005")
    by_model = bundled.with_fallback("claude-haiku-4-5", provider="anthropic")
    assert by_model.price("openai", "nope", THOUSAND).price_id == "fallback:anthropic:claude-haiku-4-5"
    assert by_rates.with_fallback(None).price("openai", "nope", THOUSAND).price_status == "unpriced"
    with pytest.raises(RateFileError, match="'no-such-model'"):
        bundled.with_fallback("no-such-model")
    with pytest.raises(RateFileError, match="field 'inptu'"):
        bundled.with_fallback(inptu="5")


def test_overrides_stack_later_wins() -> None:
    first = RateTable.coerce({"models": {"a": {"input": "1"}, "b": {"input": "1"}}})
    second = first.with_overrides({"models": {"b": {"input": "2"}}})
    usage = Usage(input_tokens=1_000_000)
    assert second.price("x", "a", usage).cost_usd == 1
    assert second.price("x", "b", usage).cost_usd == 2
    assert second.price("x", "b", usage).table_version.count("+") == 1


def test_same_rates_same_version() -> None:
    a = RateTable.coerce(DATA / "rates.toml").price("x", "llama-3.3-70b-selfhosted", THOUSAND)
    b = RateTable.coerce(DATA / "rates.toml").price("x", "llama-3.3-70b-selfhosted", THOUSAND)
    assert a.table_version == b.table_version


@pytest.mark.parametrize(
    ("rates", "model", "field"),
    [
        ({"models": {"m": {"inptu": "1"}}}, "m", "inptu"),
        ({"models": {"m": {"input": "-1"}}}, "m", "input"),
        ({"models": {"m": {"input": "abc"}}}, "m", "input"),
        ({"models": {"m": {"output": True}}}, "m", "output"),
        ({"models": {"m": {"input": "NaN"}}}, "m", "input"),
        ({"models": {"m": {"input": "1", "effective_from": "31/01/2025"}}}, "m", "effective_from"),
        ({"models": {"gpt-4o": {"discount": "20"}}}, "gpt-4o", "discount"),
        ({"models": {"gpt-4o": {"discount": "0.2", "input": "1"}}}, "gpt-4o", "input"),
        ({"models": {"gpt-4o": {"discount": "0.2", "multiplier": "2"}}}, "gpt-4o", "discount"),
        ({"models": {"no-such-model": {"discount": "0.2"}}}, "no-such-model", "discount"),
        ({"models": {"m": {"input": "1", "provider": "azure-ml"}}}, "m", "provider"),
        ({"models": {"m": {"input": {"base": "1", "tiers": [[1000]]}}}}, "m", "input"),
        ({"models": {"m": [{"input": "1"}, {"input": "2"}]}}, "m", "effective_from"),
        ({"fallback": {"model": "no-such-model"}}, "fallback", "model"),
        ({"fallback": {"inptu": "1"}}, "fallback", "inptu"),
    ],
)
def test_errors_name_source_model_and_field(rates: dict[str, Any], model: str, field: str) -> None:
    with pytest.raises(RateFileError) as info:
        RateTable.coerce(rates)
    message = str(info.value)
    assert message.startswith("rates mapping: ") and message.endswith(".") and message.count(". ") == 0
    assert f"model {model!r}" in message and f"field {field!r}" in message


def test_errors_about_the_file(tmp_path: Path) -> None:
    cases = {
        "broken.toml": '[models."m"\ninput = 1\n',
        "broken.json": '{"models": ',
        "rates.yaml": "models: {}",
        "section.toml": '[prices]\nx = "1"\n',
        "models.json": '{"models": ["gpt-4o"]}',
        "empty-model.toml": '[models."m"]\nprovider = "openai"\n',
    }
    for name, text in cases.items():
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        with pytest.raises(RateFileError) as info:
            RateTable.coerce(path)
        assert str(info.value).startswith(f"{path}: "), str(info.value)
    with pytest.raises(RateFileError, match="cannot be read"):
        RateTable.coerce(tmp_path / "missing.toml")


def test_a_typo_in_a_file_names_file_model_and_field(tmp_path: Path) -> None:
    path = tmp_path / "rates.toml"
    path.write_text('[models."my-ft"]\ninput = "1"\noutptu = "2"\n', encoding="utf-8")
    with pytest.raises(RateFileError, match=re.escape(f"{path}: model 'my-ft' field 'outptu' is not a known field")):
        RateTable.coerce(path)
