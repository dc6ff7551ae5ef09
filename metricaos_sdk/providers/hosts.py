"""Which provider an OpenAI-compatible base URL reaches, and the server host an event records.

Pure: a URL in, names out. Names are OpenTelemetry's well-known ``gen_ai.provider.name`` values where the
spec has one (``openai``, ``deepseek``, ``groq``, ``mistral_ai``, ``x_ai``, ``gcp.gemini``), stable names of
ours for the rest (``openrouter``, ``together``, ``fireworks``, ``ollama``, ``vllm``, ``litellm``). A host
nobody knows is ``openai-compatible`` — never silently ``openai``, whose prices it would get. The user's map
(``MeterConfig.provider_hosts``) is asked first: ``{"gpu-box:8000": "vllm", "llm.internal": "litellm"}``.

``azure_openai`` and ``bedrock`` are named by the client's class (``AzureOpenAI``, ``BedrockOpenAI``), not here; so
are anthropic's clients (``anthropic``, ``bedrock``, ``vertex``, ``anthropic_foundry``, ``anthropic_aws``,
``anthropic_google_cloud``: ``wrappers/clients.py``), whose events record the host through :func:`server_address`.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["COMPATIBLE", "KNOWN_PROVIDERS", "SELF_HOSTED", "provider_for", "server_address"]

COMPATIBLE = "openai-compatible"
SELF_HOSTED = frozenset({"ollama", "vllm"})
"""Servers the team runs itself: no provider bills them (cost 0, ``price_status="self_hosted"``) unless the
rate file gives their models a rate."""

# (host, or a parent domain of it) -> provider. Checked in order; a host matches itself or a subdomain.
_HOSTS: tuple[tuple[str, str], ...] = (
    ("api.openai.com", "openai"),
    ("api.deepseek.com", "deepseek"),
    ("api.groq.com", "groq"),
    ("api.mistral.ai", "mistral_ai"),
    ("api.x.ai", "x_ai"),
    ("generativelanguage.googleapis.com", "gcp.gemini"),
    ("openrouter.ai", "openrouter"),
    ("api.together.xyz", "together"),
    ("api.together.ai", "together"),
    ("api.fireworks.ai", "fireworks"),
    ("simulated.metricaos.invalid", "openai"),  # metricaos_sdk.testing's simulated OpenAI API
)
_PORTS = {11434: "ollama"}  # Ollama's own default port, on any host; vLLM's (8000) and LiteLLM's (4000) are too
# common to mean anything: map those hosts in provider_hosts.

KNOWN_PROVIDERS = frozenset({p for _, p in _HOSTS} | set(_PORTS.values()) | {"vllm", "litellm", COMPATIBLE})
"""Every provider name an OpenAI-compatible base URL can be recorded under (besides a user's own)."""


def _split(base_url: str) -> tuple[str, int | None]:
    """``(host, port)`` of ``base_url``, the host lower-cased, without credentials; port None when implicit."""
    rest = base_url.partition("://")[2] if "://" in base_url else base_url
    netloc = rest.partition("/")[0].partition("?")[0].rpartition("@")[2].lower()
    if netloc.startswith("["):  # an IPv6 literal
        host, _, tail = netloc[1:].partition("]")
        port_text = tail[1:] if tail.startswith(":") else ""
    else:
        host, _, port_text = netloc.partition(":")
    port = int(port_text) if port_text.isdigit() else None
    return host.rstrip("."), port


def server_address(base_url: str) -> str | None:
    """The host ``base_url`` points at (``api.deepseek.com``), with its port when one is given
    (``localhost:11434``); None when there is none. Never a path, a query or credentials."""
    host, port = _split(base_url)
    if not host:
        return None
    return f"{host}:{port}" if port is not None else host


def _under(host: str, domain: str) -> bool:
    return host == domain or host.endswith("." + domain)


def provider_for(base_url: str, user_hosts: Mapping[str, str] | None = None) -> str:
    """The provider ``base_url`` reaches: the user's map (``host:port``, then ``host``, then a parent domain),
    then the hosts we know, then Ollama's port; else :data:`COMPATIBLE`."""
    host, port = _split(base_url)
    if user_hosts:
        keys = ([f"{host}:{port}"] if port is not None else []) + [host]
        for key in keys:
            if key in user_hosts:
                return user_hosts[key]
        for domain, provider in user_hosts.items():
            if ":" not in domain and _under(host, domain):
                return provider
    for domain, provider in _HOSTS:
        if _under(host, domain):
            return provider
    if port in _PORTS:
        return _PORTS[port]
    return COMPATIBLE
