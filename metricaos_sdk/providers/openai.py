"""OpenAI usage extraction: chat completions, legacy completions, Responses and embeddings.

OpenAI's buckets are already inclusive: ``prompt_tokens`` contains ``cached_tokens`` (and the newer
``cache_write_tokens``); ``completion_tokens`` contains ``reasoning_tokens``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..usage import Usage
from .base import Endpoint, InvalidUsage, checked, count
from .base import details as _details

__all__ = ["ENDPOINTS", "chat_usage", "responses_usage"]


def chat_usage(usage: Any) -> Usage | None:
    """Chat and legacy completions: ``prompt_tokens``/``completion_tokens`` with their details."""
    if usage is None:
        return None
    if not isinstance(usage, Mapping):
        raise InvalidUsage(f"usage={usage!r}")
    prompt = _details(usage, "prompt_tokens_details")
    completion = _details(usage, "completion_tokens_details")
    return checked(
        Usage(
            input_tokens=count(usage, "prompt_tokens"),
            output_tokens=count(usage, "completion_tokens"),
            cached_input_tokens=count(prompt, "cached_tokens"),
            cache_write_tokens=count(prompt, "cache_write_tokens"),
            reasoning_tokens=count(completion, "reasoning_tokens"),
        ),
        usage,
    )


def responses_usage(usage: Any) -> Usage | None:
    """Responses API: ``input_tokens``/``output_tokens`` with their details."""
    if usage is None:
        return None
    if not isinstance(usage, Mapping):
        raise InvalidUsage(f"usage={usage!r}")
    inp = _details(usage, "input_tokens_details")
    out = _details(usage, "output_tokens_details")
    return checked(
        Usage(
            input_tokens=count(usage, "input_tokens"),
            output_tokens=count(usage, "output_tokens"),
            cached_input_tokens=count(inp, "cached_tokens"),
            cache_write_tokens=count(inp, "cache_write_tokens"),
            reasoning_tokens=count(out, "reasoning_tokens"),
        ),
        usage,
    )


def embeddings_usage(usage: Any) -> Usage | None:
    """Embeddings: ``prompt_tokens`` only."""
    if usage is None:
        return None
    if not isinstance(usage, Mapping):
        raise InvalidUsage(f"usage={usage!r}")
    return Usage(input_tokens=count(usage, "prompt_tokens"))


class ChatStreamState:
    """Chat/completions stream: id and model from the first chunk, usage from the chunk that carries it."""

    __slots__ = ("injected", "usage", "problem", "model", "response_id", "service_tier", "done")

    def __init__(self, injected: bool) -> None:
        self.injected = injected
        self.done = False
        self.usage: Usage | None = None
        self.problem: str | None = None
        self.model: str | None = None
        self.response_id: str | None = None
        self.service_tier: str | None = None

    def on_event(self, name: str | None, data: Mapping[str, Any], *, first: bool) -> bool:
        if first:
            self.response_id = data.get("id")
            self.model = data.get("model")
        if data.get("service_tier") is not None:
            self.service_tier = data.get("service_tier")
        raw = data.get("usage")
        if raw is None:
            return False
        try:
            self.usage = chat_usage(raw)
        except InvalidUsage as exc:
            self.problem = str(exc)
        # Hide only the usage-only chunk we asked for; a provider that puts usage on a chunk that still
        # carries a choice keeps it, since the caller needs the choice.
        return self.injected and data.get("choices") == []


class ResponsesStreamState:
    """Responses stream: everything arrives on the terminal ``response.*`` event."""

    __slots__ = ("usage", "problem", "model", "response_id", "service_tier", "done")
    _TERMINAL = frozenset({"response.completed", "response.incomplete", "response.failed"})

    def __init__(self, injected: bool) -> None:
        self.done = False
        self.usage: Usage | None = None
        self.problem: str | None = None
        self.model: str | None = None
        self.response_id: str | None = None
        self.service_tier: str | None = None

    def on_event(self, name: str | None, data: Mapping[str, Any], *, first: bool) -> bool:
        response = data.get("response")
        if not isinstance(response, Mapping):
            return False
        if data.get("type") in self._TERMINAL:
            self.done = True
        self.response_id = response.get("id") or self.response_id
        self.model = response.get("model") or self.model
        self.service_tier = response.get("service_tier") or self.service_tier
        if response.get("usage") is not None:
            try:
                self.usage = responses_usage(response.get("usage"))
            except InvalidUsage as exc:
                self.problem = str(exc)
        return False


def _body_usage(reader):  # type: ignore[no-untyped-def]
    return lambda body: reader(body.get("usage"))


CHAT = Endpoint("openai", "chat_completion", _body_usage(chat_usage), ChatStreamState, injects_stream_usage=True,
                terminal_event=b"data: [DONE]")
COMPLETIONS = Endpoint("openai", "completion", _body_usage(chat_usage), ChatStreamState, injects_stream_usage=True,
                       terminal_event=b"data: [DONE]")
RESPONSES = Endpoint("openai", "response", _body_usage(responses_usage), ResponsesStreamState)
EMBEDDINGS = Endpoint("openai", "embedding", _body_usage(embeddings_usage))

ENDPOINTS: dict[str, Endpoint] = {
    "/chat/completions": CHAT,
    "/completions": COMPLETIONS,
    "/responses": RESPONSES,
    "/embeddings": EMBEDDINGS,
}
"""Billable paths as the SDK's resources name them (``FinalRequestOptions.url``), before any base URL."""
