"""Which provider clients can be wrapped, and what each one bills.

Adding a provider is a row here plus an endpoint table in ``providers/``: the hook and the tap are shared.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..providers.base import Endpoint

__all__ = ["ClientKind", "client_kind"]


@dataclass(frozen=True, slots=True)
class ClientKind:
    provider: str
    endpoints: Mapping[str, Endpoint]
    is_async: bool
    deployment: Callable[[Any, Mapping[str, Any] | None], str | None] | None = None
    """``(client, request body) -> deployment name`` for providers that route by deployment (Azure)."""
    by_base_url: bool = False
    """The provider is named by the client's base URL (``providers/hosts.py``), not by its class: a plain
    ``openai.OpenAI`` reaching DeepSeek, Groq, OpenRouter, a vLLM server …"""


def azure_deployment(client: Any, body: Mapping[str, Any] | None) -> str | None:
    """The Azure OpenAI deployment a request is routed to: the client's ``azure_deployment=``, else the
    ``/deployments/{name}`` of its ``base_url``, else the request's ``model`` (which Azure reads as the
    deployment name: the SDK puts it in the URL)."""
    pinned = getattr(client, "_azure_deployment", None)
    if isinstance(pinned, str) and pinned:
        return pinned
    path: str = client.base_url.path
    at = path.find("/deployments/")
    if at >= 0:
        name = path[at + len("/deployments/"):].split("/", 1)[0]
        if name:
            return name
    model = body.get("model") if body else None
    return model if isinstance(model, str) else None


def requested_deployment(client: Any, body: Mapping[str, Any] | None) -> str | None:
    """The Foundry deployment a request is routed to: the request's ``model``, which Microsoft Foundry reads as
    a deployment name (by default the model's own id). Priced like an Azure deployment: the user's deployment
    map first (``RateTable.with_deployments``), then the model the answer names, then this name."""
    model = body.get("model") if body else None
    return model if isinstance(model, str) else None


SUPPORTED = (
    "openai.OpenAI, openai.AsyncOpenAI, openai.AzureOpenAI, openai.AsyncAzureOpenAI, "
    "anthropic.Anthropic, anthropic.AsyncAnthropic, anthropic.AnthropicBedrock, anthropic.AsyncAnthropicBedrock, "
    "anthropic.AnthropicBedrockMantle, anthropic.AsyncAnthropicBedrockMantle, "
    "anthropic.AnthropicVertex, anthropic.AsyncAnthropicVertex, anthropic.AnthropicFoundry, "
    "anthropic.AsyncAnthropicFoundry, anthropic.AnthropicAWS, anthropic.AsyncAnthropicAWS, "
    "anthropic.AnthropicGoogleCloud, anthropic.AsyncAnthropicGoogleCloud"
)

# anthropic's platform clients -> our provider name (and the deployment rule where the platform routes by one).
# Checked in order, before the first-party classes: Foundry, AWS and Google Cloud subclass Anthropic /
# AsyncAnthropic, and each bills elsewhere at its own prices. Looked up by name: a release without a class
# simply has nothing of that kind to pass in.
#   bedrock                 AnthropicBedrock (InvokeModel, AWS event-stream) and AnthropicBedrockMantle
#                           (bedrock-mantle.{region}.api.aws/anthropic, SSE): Amazon Bedrock operates and bills
#                           both; the SDK itself names them gen_ai.provider.name "aws.bedrock".
#   vertex                  AnthropicVertex: Google's Vertex AI ("gcp.vertex_ai").
#   anthropic_foundry       AnthropicFoundry: Claude in Microsoft Foundry ({resource}.services.ai.azure.com/anthropic),
#                           billed through Azure Marketplace; genai-prices prices it as its ``azure`` provider.
#   anthropic_aws           AnthropicAWS: Claude Platform on AWS (aws-external-anthropic.{region}.api.aws), operated
#                           by Anthropic, billed through AWS Marketplace; not in genai-prices (unpriced).
#   anthropic_google_cloud  AnthropicGoogleCloud: Claude Models on Google Cloud, Anthropic managed
#                           (claude.googleapis.com), billed through Google Cloud Marketplace; not in genai-prices.
# The last three are Anthropic's own API served through a cloud's account and billing: OpenTelemetry has no value
# for them, and the SDK's own tracing names them all "anthropic" (with platform "foundry", "aws", "google_cloud").
_PLATFORMS: tuple[tuple[tuple[str, ...], str, Callable[[Any, Mapping[str, Any] | None], str | None] | None], ...] = (
    (("AnthropicBedrock", "AsyncAnthropicBedrock", "AnthropicBedrockMantle", "AsyncAnthropicBedrockMantle"),
     "bedrock", None),
    (("AnthropicVertex", "AsyncAnthropicVertex"), "vertex", None),
    (("AnthropicFoundry", "AsyncAnthropicFoundry"), "anthropic_foundry", requested_deployment),
    (("AnthropicAWS", "AsyncAnthropicAWS"), "anthropic_aws", None),
    (("AnthropicGoogleCloud", "AsyncAnthropicGoogleCloud"), "anthropic_google_cloud", None),
)


def client_kind(client: Any) -> ClientKind | None:
    """The kind of a supported client, or None. Imports each provider SDK only if it is installed."""
    try:
        import openai
    except ImportError:  # pragma: no cover - openai is a dependency
        openai = None  # type: ignore[assignment]
    if openai is not None and isinstance(client, (openai.OpenAI, openai.AsyncOpenAI)):
        from ..providers.openai import ENDPOINTS

        is_async = isinstance(client, openai.AsyncOpenAI)
        if isinstance(client, (openai.AzureOpenAI, openai.AsyncAzureOpenAI)):
            return ClientKind("azure_openai", ENDPOINTS, is_async, azure_deployment)
        bedrock = tuple(getattr(openai, name) for name in ("BedrockOpenAI", "AsyncBedrockOpenAI") if hasattr(openai, name))
        if bedrock and isinstance(client, bedrock):  # OpenAI models served by Amazon Bedrock: Bedrock bills them
            return ClientKind("bedrock", ENDPOINTS, is_async)
        return ClientKind("openai", ENDPOINTS, is_async, by_base_url=True)
    return _anthropic_kind(client)


def _anthropic_kind(client: Any) -> ClientKind | None:
    try:
        import anthropic
    except ImportError:  # the optional extra is not installed: nothing of anthropic's can be passed in
        return None
    from anthropic import _base_client

    if not isinstance(client, _base_client.BaseClient):
        return None
    # Every platform client shares the Messages resource, and the hook sees the first-party path (/v1/messages)
    # before Bedrock or Vertex rewrite it; the others send it as it is, under their own base URL.
    deployment = None
    for names, platform, rule in _PLATFORMS:
        classes = tuple(getattr(anthropic, name) for name in names if hasattr(anthropic, name))
        if classes and isinstance(client, classes):
            provider, deployment = platform, rule
            break
    else:
        if not isinstance(client, (anthropic.Anthropic, anthropic.AsyncAnthropic)):
            return None
        provider = "anthropic"
    from ..providers.anthropic import ENDPOINTS

    return ClientKind(provider, ENDPOINTS, isinstance(client, _base_client.AsyncAPIClient), deployment)
