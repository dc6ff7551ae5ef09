"""``SimulatedAnthropic``: the Messages API, in process, with deterministic usage."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import httpx2

from .bodies import anthropic_message, anthropic_stream_events, sse
from .provider import SimulatedProvider, words_of
from .streams import streamed_response

if TYPE_CHECKING:
    import anthropic

__all__ = ["ANTHROPIC_BASE_URL", "SimulatedAnthropic"]

ANTHROPIC_BASE_URL = "https://simulated-anthropic.metricaos.invalid"
_ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error", 529: "overloaded_error"}


def _anthropic() -> Any:
    try:
        import anthropic
    except ImportError as exc:
        raise ImportError("SimulatedAnthropic.client() needs the anthropic package: "
                          "pip install 'metricaos-sdk[anthropic]'") from exc
    return anthropic


class SimulatedAnthropic(SimulatedProvider):
    """A deterministic Anthropic Messages provider, usable as an ``httpx2.MockTransport`` handler.

    Answers ``POST /v1/messages``, plain and ``stream=True``; any other path is a 404. Tokens are words:

    - the prompt = the words of each message's content + 3 per message, and of ``system`` + 3 when given;
      of it, ``cached_tokens`` are reported as cache reads and the next ``cache_write_tokens`` as cache
      writes, and ``input_tokens`` is the rest, as Anthropic reports them (three disjoint counts);
    - output = the reply's words (``reply``, else ``reply_words`` words).

    Streams arrive as a live body, one event per read (``piece_size=N``: cut every N bytes): ``message_start``
    with the input-side counts (``output_tokens`` 1, a placeholder), then one ``content_block_delta`` per word
    and ``message_delta`` with the cumulative counts. ``fail_next(n, status)`` makes the next ``n`` requests
    answer ``status`` with Anthropic's error body; ``requests`` lists every request body received.
    """

    def __init__(self, *, reply: str | None = None, reply_words: int = 24, cached_tokens: int = 0,
                 cache_write_tokens: int = 0, piece_size: int | None = None) -> None:
        super().__init__(reply=reply, reply_words=reply_words, piece_size=piece_size)
        self.cached_tokens = cached_tokens
        self.cache_write_tokens = cache_write_tokens

    def client(self, **kwargs: Any) -> anthropic.Anthropic:
        """A real ``anthropic.Anthropic`` whose HTTP goes to this simulator (``max_retries`` 2 unless given)."""
        kwargs.setdefault("max_retries", 2)
        client: anthropic.Anthropic = _anthropic().Anthropic(
            api_key="sk-ant-simulated", base_url=ANTHROPIC_BASE_URL,
            http_client=httpx2.Client(transport=httpx2.MockTransport(self)), **kwargs)
        return client

    def async_client(self, **kwargs: Any) -> anthropic.AsyncAnthropic:
        """A real ``anthropic.AsyncAnthropic`` whose HTTP goes to this simulator (``max_retries`` 2 unless given)."""
        kwargs.setdefault("max_retries", 2)
        client: anthropic.AsyncAnthropic = _anthropic().AsyncAnthropic(
            api_key="sk-ant-simulated", base_url=ANTHROPIC_BASE_URL,
            http_client=httpx2.AsyncClient(transport=httpx2.MockTransport(self)), **kwargs)
        return client

    @staticmethod
    def prompt_tokens(body: Mapping[str, Any]) -> int:
        """A request's prompt tokens, cache reads and writes included: each message's words + 3, and the
        ``system`` prompt's + 3 when given."""
        count = sum(words_of(m) + 3 for m in body.get("messages", []))
        return count + (words_of(body["system"]) + 3 if body.get("system") else 0)

    def usage_for(self, body: Mapping[str, Any], output_tokens: int) -> dict[str, int]:
        """The ``usage`` object of the answer to ``body``."""
        prompt = self.prompt_tokens(body)
        reads = min(self.cached_tokens, prompt)
        writes = min(self.cache_write_tokens, prompt - reads)
        return {"input_tokens": prompt - reads - writes, "cache_creation_input_tokens": writes,
                "cache_read_input_tokens": reads, "output_tokens": output_tokens}

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        number, body, failure = self._receive(request)
        headers = {"request-id": f"req_sim{number}"}
        if failure is not None:
            status, retry_after = failure
            return self._error(status, retry_after, _error_body(_ERROR_TYPES.get(status, "api_error"), "simulated failure"),
                               headers)
        if request.method != "POST" or request.url.path != "/v1/messages":
            return httpx2.Response(404, json=_error_body("not_found_error", f"no route {request.method} {request.url.path}"),
                                   headers=headers)
        if body is None:
            return httpx2.Response(400, json=_error_body("invalid_request_error", "the body must be a JSON object"),
                                   headers=headers)
        model = str(body.get("model", "claude-sonnet-4-6"))
        text = self.reply_for(body)
        deltas = self._deltas(text)
        usage = self.usage_for(body, len(deltas))
        mid = f"msg_sim{number}"
        if not body.get("stream"):
            return httpx2.Response(200, json=anthropic_message(model=model, text=text, usage=usage, id=mid), headers=headers)
        # message_delta carries every cumulative count, as the API sends it today (input and cache counts too).
        events = anthropic_stream_events(model=model, words=deltas, usage=usage, id=mid, delta_usage=usage)
        return streamed_response([sse([e], event_names=[e["type"]]) for e in events], piece_size=self.piece_size,
                                 headers=headers)


def _error_body(kind: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": kind, "message": message}}
