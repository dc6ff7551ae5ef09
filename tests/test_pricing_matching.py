"""Model names as users and providers write them resolve to the right row."""

from __future__ import annotations

import json
from importlib import resources

import pytest

from metricaos_sdk.pricing import RateTable
from metricaos_sdk.usage import Usage

ONE = Usage(input_tokens=1)


@pytest.fixture(scope="module")
def table() -> RateTable:
    return RateTable.bundled()


@pytest.mark.parametrize(
    ("provider", "name", "price_id_prefix"),
    [
        # OpenAI: aliases, dated snapshots, case, compact dates, router prefixes
        ("openai", "gpt-4.1-mini", "openai:gpt-4.1-mini"),
        ("openai", "gpt-4.1-mini-2025-04-14", "openai:gpt-4.1-mini"),
        ("openai", "GPT-4.1-Mini", "openai:gpt-4.1-mini"),
        ("openai", "gpt-4o-2024-08-06", "openai:gpt-4o"),
        ("openai", "gpt-4o-2024-05-13", "openai:gpt-4o-2024-05-13"),
        ("openai", "gpt-5.2-20251211", "openai:gpt-5.2"),
        ("openai", "openai/gpt-4o", "openai:gpt-4o"),
        ("openai", "o4-mini-2025-04-16", "openai:o4-mini"),
        ("openai", "text-embedding-3-large", "openai:text-embedding-3-large"),
        # Anthropic: alias vs dated id
        ("anthropic", "claude-sonnet-4-5", "anthropic:claude-sonnet-4-5"),
        ("anthropic", "claude-sonnet-4-5-20250929", "anthropic:claude-sonnet-4-5"),
        ("anthropic", "claude-3-5-haiku-20241022", "anthropic:claude-3-5-haiku-latest"),
        ("anthropic", "claude-opus-4-1-20250805", "anthropic:claude-opus-4-1"),
        ("anthropic", "anthropic/claude-haiku-4-5", "anthropic:claude-haiku-4-5"),
        # Bedrock: base ids, regional and global inference profiles, ARNs, router prefixes
        (
            "bedrock",
            "anthropic.claude-sonnet-4-5-20250929-v1:0",
            "bedrock:regional.anthropic.claude-sonnet-4-5-20250929",
        ),
        ("bedrock", "us.anthropic.claude-sonnet-4-5-20250929-v1:0", "bedrock:regional.anthropic.claude-sonnet-4-5"),
        ("bedrock", "eu.anthropic.claude-sonnet-4-5-20250929-v1:0", "bedrock:regional.anthropic.claude-sonnet-4-5"),
        ("bedrock", "apac.anthropic.claude-sonnet-4-20250514-v1:0", "bedrock:regional.anthropic.claude-sonnet-4-2025"),
        ("bedrock", "global.anthropic.claude-sonnet-4-5-20250929-v1:0", "bedrock:global.anthropic.claude-sonnet-4-5"),
        (
            "bedrock",
            "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-sonnet-4-5-20250929-v1:0",
            "bedrock:regional.anthropic.claude-sonnet-4-5",
        ),
        (
            "bedrock",
            "bedrock/us.anthropic.claude-haiku-4-5-20251001-v1:0",
            "bedrock:regional.anthropic.claude-haiku-4-5",
        ),
        ("bedrock", "anthropic.claude-3-haiku-20240307-v1:0", "bedrock:regional.anthropic.claude-3-haiku"),
        ("aws", "anthropic.claude-3-haiku-20240307-v1:0", "bedrock:regional.anthropic.claude-3-haiku"),
        # Vertex: @-dated ids and publisher paths, Gemini too
        ("vertex", "claude-sonnet-4-5@20250929", "vertex:claude-sonnet-4-5"),
        ("vertex", "claude-3-5-sonnet-v2@20241022", "vertex:claude-3-5-sonnet"),
        ("vertex", "claude-opus-4-1@20250805", "vertex:claude-4-opus"),
        ("vertex", "publishers/anthropic/models/claude-haiku-4-5@20251001", "vertex:claude-haiku-4-5"),
        ("vertex", "gemini-2.5-pro", "vertex:gemini-2.5-pro"),
        ("google", "gemini-2.5-flash", "vertex:gemini-2.5-flash"),
        # Azure: its own rows first, then the OpenAI models it resells
        ("azure_openai", "o3", "azure_openai:o3-2025-04-16"),
        ("azure_openai", "gpt-4o", "openai:gpt-4o"),
        ("azure_openai", "gpt-35-turbo", "openai:gpt-3.5-turbo"),
        ("azure", "gpt-4.1-mini", "openai:gpt-4.1-mini"),
        # Unknown provider: guessed from the name
        ("litellm", "claude-haiku-4-5", "anthropic:claude-haiku-4-5"),
        ("", "gpt-4o-mini", "openai:gpt-4o-mini"),
        ("someone", "gemini-2.5-flash", "vertex:gemini-2.5-flash"),
    ],
)
def test_name_forms(table: RateTable, provider: str, name: str, price_id_prefix: str) -> None:
    quote = table.price(provider, name, ONE)
    assert quote.price_status == "priced", table.explain(provider, name)
    assert quote.price_id is not None and quote.price_id.startswith(price_id_prefix)


def test_azure_deployments(table: RateTable) -> None:
    mapped = table.with_deployments({"prod-chat": "gpt-4.1-mini", "Embed-EU": "text-embedding-3-small"})
    assert mapped.price("azure_openai", "prod-chat", ONE).model_resolved == "gpt-4.1-mini"
    assert mapped.price("azure_openai", "Embed-EU", ONE).model_resolved == "text-embedding-3-small"
    assert mapped.price("azure", "embed-eu", ONE).model_resolved == "text-embedding-3-small"  # any case
    assert mapped.price("openai", "prod-chat", ONE).price_status == "unpriced"  # Azure only
    assert table.price("azure_openai", "prod-chat", ONE).price_status == "unpriced"  # the original is unchanged
    assert "Azure deployment 'prod-chat'" in mapped.explain("azure_openai", "prod-chat")["steps"][0]


@pytest.mark.parametrize("name", ["gpt-unknown", "claude-nonexistent-9", "anthropic.titan-x", "", "   "])
def test_unknown_names(table: RateTable, name: str) -> None:
    assert table.price("openai", name, ONE).price_status == "unpriced"


def test_provider_scopes_the_search(table: RateTable) -> None:
    assert table.price("openai", "claude-sonnet-4-5", ONE).price_status == "unpriced"
    assert table.price("anthropic", "gpt-4o", ONE).price_status == "unpriced"


def _all_names() -> list[tuple[str, str, str]]:
    data = json.loads(resources.files("metricaos_sdk.pricing").joinpath("_generated_rates.json").read_text("utf-8"))
    return [
        (provider, model["id"], name)
        for provider, chain in data["providers"].items()
        for model in data["sources"][chain.get("source", provider)]
        if "rates" in model
        for name in model["names"]
    ]


def test_every_listed_name_resolves_to_its_model(table: RateTable) -> None:
    names = _all_names()
    assert len(names) > 800
    wrong = [
        (p, n, table.price(p, n, ONE).model_resolved, m)
        for p, m, n in names
        if table.price(p, n, ONE).model_resolved != m
    ]
    assert wrong == []
