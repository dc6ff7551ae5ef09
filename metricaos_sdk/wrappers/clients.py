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


SUPPORTED = (
    "openai.OpenAI, openai.AsyncOpenAI, openai.AzureOpenAI, openai.AsyncAzureOpenAI, "
    "anthropic.Anthropic, anthropic.AsyncAnthropic, anthropic.AnthropicBedrock, anthropic.AsyncAnthropicBedrock, "
    "anthropic.AnthropicVertex, anthropic.AsyncAnthropicVertex"
)

# Subclasses of anthropic.Anthropic that reach another platform (other URLs, auth and prices): not metered
# as first-party Anthropic until each has its own provider name and test.
_OTHER_PLATFORMS = ("AnthropicFoundry", "AsyncAnthropicFoundry", "AnthropicAWS", "AsyncAnthropicAWS",
                    "AnthropicGoogleCloud", "AsyncAnthropicGoogleCloud")


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
    # AnthropicBedrock and AnthropicVertex do not subclass Anthropic; they share the Messages resource, and
    # the hook sees the first-party path before they rewrite it.
    if isinstance(client, (anthropic.AnthropicBedrock, anthropic.AsyncAnthropicBedrock)):
        provider = "bedrock"
    elif isinstance(client, (anthropic.AnthropicVertex, anthropic.AsyncAnthropicVertex)):
        provider = "vertex"
    elif isinstance(client, (anthropic.Anthropic, anthropic.AsyncAnthropic)) and not isinstance(
        client, tuple(getattr(anthropic, name) for name in _OTHER_PLATFORMS if hasattr(anthropic, name))
    ):
        provider = "anthropic"
    else:
        return None
    from ..providers.anthropic import ENDPOINTS

    return ClientKind(provider, ENDPOINTS, isinstance(client, _base_client.AsyncAPIClient))
