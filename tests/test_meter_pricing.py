"""The meter's side of pricing: user rates, fallback rates and the unpriced-model policy."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import openai
import pytest

from metricaos_sdk import ConfigurationError, Meter, RateFileError, RateTable, UnpricedModel
from tests.fake_openai import FakeOpenAI

MESSAGES = [{"role": "user", "content": "hi"}]
RATES = Path(__file__).parent / "data" / "pricing" / "rates.toml"
FINETUNE = "ft:gpt-4o-mini-2024-07-18:acme::9xyz"


def ask(meter, model):
    return meter.wrap(openai.OpenAI(api_key="sk-test")).chat.completions.create(model=model, messages=MESSAGES)


def test_a_rates_file_prices_a_fine_tune(router, db_path):
    FakeOpenAI(model=FINETUNE).mount(router)
    meter = Meter(db_path, rates=RATES)
    ask(meter, FINETUNE)
    [event] = meter.events()
    # rates.toml: $0.30/M input, $0.15/M cached input, $1.20/M output; usage 1200 in (1024 cached), 300 out.
    expected = (Decimal(176) * Decimal("0.30") + Decimal(1024) * Decimal("0.15") + Decimal(300) * Decimal("1.20")) / 10**6
    assert event.cost_usd == expected and event.price_status == "override"
    meter.close()


def test_a_fallback_rate_prices_unknown_models(router, db_path):
    FakeOpenAI(model="my-local-model").mount(router)
    meter = Meter(db_path, rates=RateTable.bundled().with_fallback(input="1", output="2"))
    ask(meter, "my-local-model")
    [event] = meter.events()
    assert event.price_status == "fallback"
    assert event.cost_usd == (Decimal(1200) * 1 + Decimal(300) * 2) / 10**6
    meter.close()


def test_refuse_policy_sends_nothing_for_an_unpriced_model(router, db_path):
    route = FakeOpenAI(model="my-local-model").mount(router)
    meter = Meter(db_path, unpriced="refuse")
    with pytest.raises(UnpricedModel) as info:
        ask(meter, "my-local-model")
    assert route.call_count == 0 and info.value.model == "my-local-model"
    assert "unpriced='count'" in str(info.value)
    ask(meter, "gpt-4.1-mini")  # priced models go through
    assert route.call_count == 1 and len(meter.events()) == 1
    meter.close()


def test_count_policy_records_tokens_without_cost(router, db_path):
    FakeOpenAI(model="my-local-model").mount(router)
    meter = Meter(db_path)
    ask(meter, "my-local-model")
    [event] = meter.events()
    assert event.cost_usd is None and event.input_tokens == 1200 and event.price_status == "unpriced"
    meter.close()


def test_bad_policy_and_bad_rates_file_fail_at_construction(tmp_path, db_path):
    with pytest.raises(ConfigurationError, match="unpriced='sometimes'"):
        Meter(db_path, unpriced="sometimes")
    bad = tmp_path / "rates.toml"
    bad.write_text('[models."my-model"]\ninput = "cheap"\n')
    with pytest.raises(RateFileError) as info:
        Meter(db_path, rates=bad)
    message = str(info.value)
    assert "rates.toml" in message and "my-model" in message and "input" in message
