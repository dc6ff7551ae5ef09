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


SUPPORTED = "openai.OpenAI, openai.AsyncOpenAI, openai.AzureOpenAI, openai.AsyncAzureOpenAI"


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
        return ClientKind("openai", ENDPOINTS, is_async)
    return None
