"""OpenAI usage extraction: chat and legacy completions, Responses, embeddings, images and transcriptions.

OpenAI's buckets are already inclusive: ``prompt_tokens`` contains ``cached_tokens`` (and the newer
``cache_write_tokens``); ``completion_tokens`` contains ``reasoning_tokens``. The Responses API names them
``input_tokens``/``output_tokens`` with ``input_tokens_details``/``output_tokens_details``, the same way.
Every reader goes through :func:`~.base.count` and :func:`~.base.checked`, so a string, a negative number or
cached > input raises :class:`~.base.InvalidUsage` (an event flagged ``invalid``, never the caller's error).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from ..usage import Usage
from .base import Endpoint, InvalidUsage, checked, count, shown
from .base import details as _details

__all__ = [
    "ENDPOINTS",
    "chat_usage",
    "embeddings_usage",
    "image_usage",
    "rejects_stream_options",
    "reported_cost",
    "reported_cost_header",
    "responses_usage",
    "sends_stream_usage_unasked",
    "transcription_usage",
]


def _mapping(usage: Any) -> Mapping[str, Any] | None:
    if usage is None or type(usage) is dict:
        return usage
    if not isinstance(usage, Mapping):
        raise InvalidUsage(f"usage={shown(usage)}")
    return usage


def chat_usage(usage: Any) -> Usage | None:
    """Chat and legacy completions: ``prompt_tokens``/``completion_tokens`` with their details, as OpenAI and the
    compatible providers report them.

    - DeepSeek: ``prompt_cache_hit_tokens`` + ``prompt_cache_miss_tokens`` (their sum is ``prompt_tokens``); the
      hits are the cached input when ``prompt_tokens_details.cached_tokens`` is absent.
    - xAI: reasoning tokens are reported outside ``completion_tokens`` (but inside ``total_tokens``). Decided by
      the numbers, never by the host: when ``prompt + completion != total`` and ``prompt + completion +
      reasoning == total``, the reasoning is added to the output (our output bucket includes it).
    """
    if (usage := _mapping(usage)) is None:
        return None
    prompt = _details(usage, "prompt_tokens_details")
    completion = _details(usage, "completion_tokens_details")
    input_tokens = count(usage, "prompt_tokens")
    output_tokens = count(usage, "completion_tokens")
    reasoning = count(completion, "reasoning_tokens")
    hits = count(usage, "prompt_cache_hit_tokens")
    cached = count(prompt, "cached_tokens") if prompt.get("cached_tokens") is not None else hits
    if "prompt_tokens" not in usage and "prompt_cache_miss_tokens" in usage:
        input_tokens = hits + count(usage, "prompt_cache_miss_tokens")
    total = usage.get("total_tokens")
    if reasoning and type(total) is int and input_tokens + output_tokens != total \
            and input_tokens + output_tokens + reasoning == total:
        output_tokens += reasoning  # reported on top of completion_tokens (xAI)
    return checked(
        Usage(
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cached_input_tokens=cached,
            cache_write_tokens=count(prompt, "cache_write_tokens"),
            reasoning_tokens=reasoning,
        ),
        usage,
    )


_TICKS_PER_USD = Decimal(10) ** 10  # xAI's cost_in_usd_ticks


def reported_cost(usage: Any) -> Decimal | None:
    """The cost the provider reported inside ``usage``, in USD: ``cost`` (OpenRouter's credits, 1 credit = 1 USD;
    a LiteLLM proxy's computed cost) or xAI's ``cost_in_usd_ticks`` (10^10 ticks = 1 USD). None when there is
    none or it is not a non-negative number. A JSON number arrives as a float: it is taken by its shortest
    repr, which is the number as written for any cost with up to 17 significant digits."""
    if not isinstance(usage, Mapping):
        return None
    cost = usage.get("cost")
    if type(cost) is float and 0 <= cost < float("inf"):
        return Decimal(repr(cost))
    if type(cost) is int and cost >= 0:
        return Decimal(cost)
    ticks = usage.get("cost_in_usd_ticks")
    if type(ticks) is int and ticks >= 0:
        return Decimal(ticks) / _TICKS_PER_USD
    return None


def reported_cost_header(value: str | None) -> Decimal | None:
    """A LiteLLM proxy's ``x-litellm-response-cost`` header (USD, a decimal number as text)."""
    if not value:
        return None
    try:
        cost = Decimal(value.strip())
    except ArithmeticError:
        return None
    return cost if cost.is_finite() and cost >= 0 else None


def responses_usage(usage: Any) -> Usage | None:
    """Responses API (and GPT Image models): ``input_tokens``/``output_tokens`` with their details."""
    if (usage := _mapping(usage)) is None:
        return None
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


image_usage = responses_usage
"""GPT Image models: ``input_tokens`` (text + image, with ``input_tokens_details``), ``output_tokens``.
The split into text and image tokens is not kept: the rate table has one input rate (see docs/providers.md)."""


def embeddings_usage(usage: Any) -> Usage | None:
    """Embeddings: ``prompt_tokens`` only."""
    if (usage := _mapping(usage)) is None:
        return None
    return checked(Usage(input_tokens=count(usage, "prompt_tokens")), usage)


def transcription_usage(usage: Any) -> Usage | None:
    """Transcriptions: ``{"type": "tokens", input_tokens, output_tokens}`` for the GPT-4o transcribe models;
    ``{"type": "duration", "seconds"}`` for whisper-1, billed per minute, which no token bucket can hold: it
    is recorded with zero tokens (and whisper-1 has no token price, so its cost is ``None``)."""
    if (usage := _mapping(usage)) is None:
        return None
    if usage.get("type") == "duration":
        return Usage()
    return checked(Usage(input_tokens=count(usage, "input_tokens"), output_tokens=count(usage, "output_tokens")), usage)


# Hosts whose chat streams end with a usage chunk whether asked or not (OpenRouter's usage accounting: "usage
# information is always included"). Asking them changes nothing but the chunk the meter would then hide.
_USAGE_UNASKED_HOSTS = ("openrouter.ai",)


def sends_stream_usage_unasked(base_url: str) -> bool:
    """Whether the server at ``base_url`` sends stream usage unasked (so the meter does not ask)."""
    host = base_url.partition("://")[2].partition("/")[0].rpartition("@")[2].partition(":")[0].lower()
    return any(host == h or host.endswith("." + h) for h in _USAGE_UNASKED_HOSTS)


def rejects_stream_options(exc: BaseException) -> bool:
    """Whether ``exc`` is an OpenAI-compatible server refusing the ``stream_options`` we added.

    Seen in the wild: Azure's older API versions (``400 Unrecognized request argument supplied:
    stream_options``), gateways (``400 Unknown parameter: 'stream_options'``, ``param: "stream_options"``) and
    pydantic-validated servers (``extra_forbidden`` at ``('body', 'stream_options')``, sometimes as 422).
    """
    if getattr(exc, "status_code", None) not in (400, 422):
        return False
    return "stream_options" in f"{getattr(exc, 'message', '')} {getattr(exc, 'body', '')}"


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _error_name(error: Any, fallback: str) -> str:
    """What an error object in a stream is called: its ``code``, else its ``type``."""
    if isinstance(error, Mapping):
        return _text(error.get("code")) or _text(error.get("type")) or fallback
    return fallback


class _StreamTotals:
    """The running totals every stream state keeps (see ``providers.base.StreamState``)."""

    __slots__ = ("usage", "problem", "model", "response_id", "service_tier", "done", "error_type", "provider_cost")
    partial: Usage | None = None  # no counts arrive before the usage does (Anthropic's message_start does)

    def __init__(self, injected: bool) -> None:
        self.done = False
        self.provider_cost: Decimal | None = None  # what the provider said the call cost, from the last usage
        self.error_type: str | None = None  # set with done when the provider ends the stream with an error
        self.usage: Usage | None = None
        self.problem: str | None = None
        self.model: str | None = None
        self.response_id: str | None = None
        self.service_tier: str | None = None


class ChatStreamState(_StreamTotals):
    """Chat/completions stream: id and model from the first chunk, usage from the chunk that carries it.

    Azure's first chunk is a content-filter report with ``"id": ""`` and ``"model": ""``: empty values are
    skipped and taken from the usage chunk instead.
    """

    __slots__ = ("injected",)

    def __init__(self, injected: bool) -> None:
        super().__init__(injected)
        self.injected = injected

    def on_event(self, name: str | None, data: Mapping[str, Any], *, first: bool) -> bool:
        if data.get("error"):  # the SDK raises APIError on this chunk: the stream failed
            self.error_type = _error_name(data["error"], "error")
            self.done = True
            return False
        self.model = self.model or _text(data.get("model"))
        self.response_id = self.response_id or _text(data.get("id"))
        self.service_tier = _text(data.get("service_tier")) or self.service_tier
        raw = data.get("usage")
        if raw is None:
            # Groq puts the usage of a stream under ``x_groq`` on its final chunk (top-level only when asked).
            groq = data.get("x_groq")
            raw = groq.get("usage") if isinstance(groq, Mapping) else None
            if raw is None:
                return False
        # The last chunk that carries usage wins, whatever its choices: providers that repeat cumulative usage
        # (Gemini's compatible endpoint, vLLM's continuous_usage_stats) are read to the last one, never summed.
        try:
            self.usage = chat_usage(raw)
            self.problem = None
        except InvalidUsage as exc:
            self.usage, self.problem = None, str(exc)
        self.provider_cost = reported_cost(raw)
        # Hide only the usage-only chunk we asked for; a provider that puts usage on a chunk that still
        # carries a choice keeps it, since the caller needs the choice.
        return self.injected and data.get("choices") == []


class ResponsesStreamState(_StreamTotals):
    """Responses stream: everything arrives on the terminal ``response.*`` event (the response object)."""

    __slots__ = ()
    _TERMINAL = frozenset({"response.completed", "response.incomplete", "response.failed"})

    def on_event(self, name: str | None, data: Mapping[str, Any], *, first: bool) -> bool:
        kind = data.get("type")
        if kind == "error":  # the stream ends on an error event, with no response object
            self.error_type = _error_name(data, "error")
            self.done = True
            return False
        response = data.get("response")
        if not isinstance(response, Mapping):
            return False
        if kind in self._TERMINAL:
            self.done = True
            if kind == "response.failed":
                self.error_type = _error_name(response.get("error"), "response_failed")
        self.response_id = _text(response.get("id")) or self.response_id
        self.model = _text(response.get("model")) or self.model
        self.service_tier = _text(response.get("service_tier")) or self.service_tier
        if response.get("usage") is not None:
            try:
                self.usage = responses_usage(response.get("usage"))
            except InvalidUsage as exc:
                self.problem = str(exc)
        return False


class EventUsageStreamState(_StreamTotals):
    """Image and transcription streams: usage on the terminal event itself (``image_generation.completed``,
    ``image_edit.completed``, ``transcript.text.done``). They carry no model or id."""

    __slots__ = ()
    _TERMINAL = frozenset({"image_generation.completed", "image_edit.completed", "transcript.text.done"})
    _READERS: dict[str, Callable[[Any], Usage | None]] = {"transcript.text.done": transcription_usage}

    def on_event(self, name: str | None, data: Mapping[str, Any], *, first: bool) -> bool:
        kind = data.get("type")
        if kind not in self._TERMINAL:
            return False
        self.done = True
        try:
            self.usage = self._READERS.get(kind, image_usage)(data.get("usage"))
        except InvalidUsage as exc:
            self.problem = str(exc)
        return False


def _body_usage(reader: Callable[[Any], Usage | None]) -> Callable[[Mapping[str, Any]], Usage | None]:
    return lambda body: reader(body.get("usage"))


# The JSON-escaped text an event's data delivers, found without parsing the event (see OutputText), whatever
# the spacing the server writes: chat content, refusals, tool-call arguments and the reasoning text some
# compatible servers stream ...
_STRING = rb'\s*:\s*"([^"\\]*(?:\\.[^"\\]*)*)"'
CHAT_TEXT = re.compile(rb'"(?:content|refusal|arguments|reasoning_content|reasoning)"' + _STRING)
# ... legacy completions' choice text, and the ``delta`` of Responses/transcription delta events.
COMPLETION_TEXT = re.compile(rb'"text"' + _STRING)
DELTA_TEXT = re.compile(rb'"delta"' + _STRING)

_CHAT_TOKENS = (b"usage", b"error")  # the SDK raises APIError on a chunk with an ``error``
CHAT = Endpoint("openai", "chat_completion", _body_usage(chat_usage), ChatStreamState, injects_stream_usage=True,
                terminal_data=b"[DONE]", parse_tokens=_CHAT_TOKENS, text_pattern=CHAT_TEXT)
COMPLETIONS = Endpoint("openai", "completion", _body_usage(chat_usage), ChatStreamState, injects_stream_usage=True,
                       terminal_data=b"[DONE]", parse_tokens=_CHAT_TOKENS, text_pattern=COMPLETION_TEXT)
# Responses report usage in ``response.completed`` unasked: never add stream_options there.
RESPONSES = Endpoint("openai", "response", _body_usage(responses_usage), ResponsesStreamState,
                     parse_tokens=(b"usage", b"error", b"response.completed", b"response.incomplete",
                                   b"response.failed"),
                     text_pattern=DELTA_TEXT)
RESPONSES_COMPACT = Endpoint("openai", "response_compaction", _body_usage(responses_usage))
EMBEDDINGS = Endpoint("openai", "embedding", _body_usage(embeddings_usage))
_EVENT_USAGE_TOKENS = (b"usage", b"completed", b"done")
IMAGE_GENERATIONS = Endpoint("openai", "image_generation", _body_usage(image_usage), EventUsageStreamState,
                             parse_tokens=_EVENT_USAGE_TOKENS)
IMAGE_EDITS = Endpoint("openai", "image_edit", _body_usage(image_usage), EventUsageStreamState,
                       parse_tokens=_EVENT_USAGE_TOKENS)
TRANSCRIPTIONS = Endpoint("openai", "transcription", _body_usage(transcription_usage), EventUsageStreamState,
                          parse_tokens=_EVENT_USAGE_TOKENS, text_pattern=DELTA_TEXT)

ENDPOINTS: dict[str, Endpoint] = {
    "/chat/completions": CHAT,
    "/completions": COMPLETIONS,
    "/responses": RESPONSES,
    "/responses/compact": RESPONSES_COMPACT,
    # client.beta.responses: a separate resource class that marks its path with a query.
    "/responses?beta=true": RESPONSES,
    "/responses/compact?beta=true": RESPONSES_COMPACT,
    "/embeddings": EMBEDDINGS,
    "/images/generations": IMAGE_GENERATIONS,
    "/images/edits": IMAGE_EDITS,
    "/audio/transcriptions": TRANSCRIPTIONS,
}
"""Billable paths as the SDK's resources name them (``FinalRequestOptions.url``), before any base URL.

Not here, on purpose: ``/audio/speech`` and ``/audio/translations`` (their responses carry no usage),
``/images/variations`` (dall-e-2, priced per image), ``/moderations`` and ``/responses/input_tokens`` (free)."""
