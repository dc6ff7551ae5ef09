"""Which provider clients can be wrapped, and what each one bills.

Adding a provider is a row here plus an endpoint table in ``providers/``: the hook and the tap are shared.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..providers.base import Endpoint

__all__ = ["ClientKind", "client_kind"]


@dataclass(frozen=True, slots=True)
class ClientKind:
    provider: str
    endpoints: Mapping[str, Endpoint]
    is_async: bool


SUPPORTED = "openai.OpenAI, openai.AsyncOpenAI, openai.AzureOpenAI, openai.AsyncAzureOpenAI"


def client_kind(client: Any) -> ClientKind | None:
    """The kind of a supported client, or None. Imports each provider SDK only if it is installed."""
    try:
        import openai
    except ImportError:  # pragma: no cover - openai is a dependency
        openai = None  # type: ignore[assignment]
    if openai is not None and isinstance(client, (openai.OpenAI, openai.AsyncOpenAI)):
        from ..providers.openai import ENDPOINTS

        azure = isinstance(client, (openai.AzureOpenAI, openai.AsyncAzureOpenAI))
        return ClientKind("azure_openai" if azure else "openai", ENDPOINTS, isinstance(client, openai.AsyncOpenAI))
    return None
