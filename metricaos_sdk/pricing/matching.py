"""From a model name as users and providers write it to a model of the table.

Runs only the first time a ``(provider, model)`` pair is seen; :class:`~.table.RateTable` caches the answer, so the
regexes here are never on the hot path.

The order, each step tried only when the previous ones found nothing:

1. Azure OpenAI: the user's deployment -> model map.
2. The provider's own models, then the providers it resells (Azure -> OpenAI, Anthropic, ...; Vertex ->
   Anthropic), each model's match rule tried in table order on the lower-cased name — genai-prices' rules, so a
   name resolves to the same model in both.
3. The same with a compact date spelled out (``gpt-5.2-20251211`` -> ``gpt-5.2-2025-12-11``), as genai-prices does.
4. The same after our own normalisation: an ARN or path is cut to its last segment (Bedrock inference-profile
   ARNs, Vertex ``publishers/anthropic/models/...``), and a router prefix (``openai/``, ``bedrock/``,
   ``vertex_ai/``, ``azure/``, ``models/``...) is dropped.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from datetime import date
from typing import Any

__all__ = [
    "GUESSED",
    "PROVIDER_ALIASES",
    "SELF_HOSTED",
    "candidate_names",
    "canonical_provider",
    "clause_matches",
    "describe_clause",
]

PROVIDER_ALIASES = {
    "openai": "openai",
    "azure_openai": "azure_openai",
    "azure": "azure_openai",
    "azure-openai": "azure_openai",
    "anthropic": "anthropic",
    "bedrock": "bedrock",
    "aws": "bedrock",
    "aws_bedrock": "bedrock",
    "aws-bedrock": "bedrock",
    "amazon_bedrock": "bedrock",
    "vertex": "vertex",
    "vertex_ai": "vertex",
    "vertexai": "vertex",
    "google_vertex": "vertex",
    "google": "vertex",
    "gcp.vertex_ai": "vertex",
    # OpenTelemetry's names for the providers above, accepted wherever a provider is named.
    "azure.ai.openai": "azure_openai",
    "aws.bedrock": "bedrock",
    # Anthropic's API through a cloud's account and billing (wrappers/clients.py). Claude in Microsoft Foundry
    # ({resource}.services.ai.azure.com) is genai-prices' ``azure`` provider (its api_pattern), whose Claude models
    # fall back to Anthropic's: priced as azure_openai, Azure deployment maps included. Claude Platform on AWS and
    # Claude on Google Cloud (Anthropic managed) are not in genai-prices: named here so that they stay unpriced
    # (an unknown provider would be guessed from the model name, i.e. given Anthropic's first-party rows).
    "anthropic_foundry": "azure_openai",
    "anthropic_aws": "anthropic_aws",
    "anthropic_google_cloud": "anthropic_google_cloud",
    # OpenAI-compatible providers, named by the client's base URL (providers/hosts.py).
    "deepseek": "deepseek",
    "groq": "groq",
    "mistral_ai": "mistral_ai",
    "mistral": "mistral_ai",
    "mistralai": "mistral_ai",
    "x_ai": "x_ai",
    "xai": "x_ai",
    "x-ai": "x_ai",
    "gcp.gemini": "gcp.gemini",
    "gemini": "gcp.gemini",
    "openrouter": "openrouter",
    "together": "together",
    "together_ai": "together",
    "togetherai": "together",
    "fireworks": "fireworks",
    "fireworks_ai": "fireworks",
    "ollama": "ollama",
    "vllm": "vllm",
    "litellm": "litellm",
    "openai-compatible": "openai-compatible",
}
SELF_HOSTED = frozenset({"ollama", "vllm"})
"""Servers the team runs itself: priced by the user's rates if given, else ``price_status="self_hosted"``, cost 0."""
GUESSED = frozenset({"litellm"})
"""Proxies that route a model name to its provider: the provider is guessed from the name, as without one."""

_COMPACT_DATE = re.compile(r"(-)(20\d{2})(0[1-9]|1[0-2])(0[1-9]|[12]\d|3[01])(?=-|:|$)")
_ROUTER_PREFIXES = (
    "openai/",
    "azure/",
    "azure_openai/",
    "anthropic/",
    "bedrock/",
    "aws/",
    "vertex_ai/",
    "vertex/",
    "google/",
    "models/",
)
_regex_cache: dict[str, re.Pattern[str]] = {}


def canonical_provider(provider: str | None) -> str | None:
    """Our provider name for ``provider`` (``"azure"`` -> ``"azure_openai"``), or ``None`` if unknown."""
    if not provider:
        return None
    return PROVIDER_ALIASES.get(provider.strip().lower())


def clause_matches(clause: Mapping[str, Any], text: str) -> bool:
    """Evaluate a genai-prices match rule (as stored in the generated file) against a lower-cased name."""
    kind, value = next(iter(clause.items()))
    if kind == "or":
        return any(clause_matches(c, text) for c in value)
    if kind == "and":
        return all(clause_matches(c, text) for c in value)
    literal: str = value
    if kind == "equals":
        return text == literal.lower()
    if kind == "starts_with":
        return text.startswith(literal.lower())
    if kind == "ends_with":
        return text.endswith(literal.lower())
    if kind == "contains":
        return literal.lower() in text
    if kind == "regex":
        pattern = _regex_cache.get(literal)
        if pattern is None:
            pattern = _regex_cache[literal] = re.compile(literal)
        return pattern.search(text) is not None
    raise ValueError(f"unknown match clause {kind!r}")


def describe_clause(clause: Mapping[str, Any], text: str) -> str:
    """The first leaf of ``clause`` that matches ``text``, for ``explain`` (e.g. ``starts_with 'claude-3-5'``)."""
    kind, value = next(iter(clause.items()))
    if kind in ("or", "and"):
        parts = [describe_clause(c, text) for c in value if clause_matches(c, text)]
        return parts[0] if kind == "or" and parts else " and ".join(parts)
    return f"{kind} {value!r}"


def _expand_compact_date(name: str) -> str:
    def replace(match: re.Match[str]) -> str:
        year, month, day = (int(match.group(i)) for i in range(2, 5))
        try:
            date(year, month, day)
        except ValueError:
            return match.group(0)
        return f"{match.group(1)}{year:04d}-{month:02d}-{day:02d}"

    return _COMPACT_DATE.sub(replace, name)


def _strip(name: str) -> str:
    if name.startswith("arn:") or "/models/" in name or "inference-profile/" in name:
        name = name.rsplit("/", 1)[-1]
    for prefix in _ROUTER_PREFIXES:
        if name.startswith(prefix):
            return name[len(prefix) :]
    return name


def candidate_names(name: str) -> Iterable[tuple[str, str | None]]:
    """The lower-cased spellings to try for ``name``, each with the normalisation that produced it."""
    lowered = name.strip().lower()
    yield lowered, None
    expanded = _expand_compact_date(lowered)
    if expanded != lowered:
        yield expanded, "compact date expanded"
    stripped = _strip(lowered)
    if stripped != lowered:
        yield stripped, "provider prefix or ARN path removed"
        expanded = _expand_compact_date(stripped)
        if expanded != stripped:
            yield expanded, "provider prefix or ARN path removed, compact date expanded"


def find_first(
    models: Iterable[Mapping[str, Any]], text: str, matches: Callable[[Mapping[str, Any], str], bool] = clause_matches
) -> Mapping[str, Any] | None:
    for model in models:
        if matches(model["match"], text):
            return model
    return None
