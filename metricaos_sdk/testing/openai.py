"""``SimulatedOpenAI``: chat completions, Responses and embeddings, in process, with deterministic usage."""

from __future__ import annotations

import base64
import math
import random
import struct
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import httpx2

from .bodies import (
    chat_chunk,
    chat_completion,
    chat_usage,
    response_object,
    response_stream_events,
    responses_usage,
    sse,
)
from .provider import SimulatedProvider, words_of
from .streams import streamed_response

if TYPE_CHECKING:
    import openai

__all__ = ["BASE_URL", "SimulatedOpenAI"]

BASE_URL = "https://simulated.metricaos.invalid/v1"
_DIMENSIONS = {"text-embedding-3-large": 3072}  # every other model: 1536


class SimulatedOpenAI(SimulatedProvider):
    """A deterministic OpenAI-compatible provider, usable as an ``httpx2.MockTransport`` handler.

    Answers ``POST /chat/completions``, ``/responses`` (plain and ``stream=True``) and ``/embeddings``; any
    other path is a 404. Tokens are words, so expected numbers are easy to compute in tests:

    - chat: prompt = the words of each message's content + 3 per message;
    - Responses: input = the same over ``input`` (a string is one message; a list, one per item) and
      ``instructions`` (one more message when given);
    - embeddings: input = the words of ``input`` (a string or a list of strings; token arrays count their
      length), with no per-message overhead;
    - output = the reply's words (``reply``, else ``reply_words`` words), plus ``reasoning_tokens``.

    ``cached_tokens`` of the prompt (at most all of it) are reported as cache hits. Streams arrive as a live
    body, one SSE event per read (``piece_size=N``: cut every N bytes), and chat streams carry usage only when
    asked (``stream_options.include_usage``), as the API does. ``fail_next(n, status)`` makes the next ``n``
    requests answer ``status``; ``requests`` lists every request body received.
    """

    def __init__(self, *, reply: str | None = None, reply_words: int = 24, cached_tokens: int = 0,
                 reasoning_tokens: int = 0, piece_size: int | None = None) -> None:
        super().__init__(reply=reply, reply_words=reply_words, piece_size=piece_size)
        self.cached_tokens = cached_tokens
        self.reasoning_tokens = reasoning_tokens

    def client(self, **kwargs: Any) -> openai.OpenAI:
        """A real ``openai.OpenAI`` whose HTTP goes to this simulator (``max_retries`` 2 unless given)."""
        import openai

        kwargs.setdefault("max_retries", 2)
        return openai.OpenAI(api_key="sk-simulated", base_url=BASE_URL,
                             http_client=httpx2.Client(transport=httpx2.MockTransport(self)), **kwargs)

    def async_client(self, **kwargs: Any) -> openai.AsyncOpenAI:
        """A real ``openai.AsyncOpenAI`` whose HTTP goes to this simulator (``max_retries`` 2 unless given)."""
        import openai

        kwargs.setdefault("max_retries", 2)
        return openai.AsyncOpenAI(api_key="sk-simulated", base_url=BASE_URL,
                                  http_client=httpx2.AsyncClient(transport=httpx2.MockTransport(self)), **kwargs)

    # -- token counts ---------------------------------------------------------------------------------------
    @staticmethod
    def prompt_tokens(body: Mapping[str, Any]) -> int:
        """A chat request's prompt tokens: each message's words + 3."""
        return sum(words_of(m) + 3 for m in body.get("messages", []))

    @staticmethod
    def responses_input_tokens(body: Mapping[str, Any]) -> int:
        """A Responses request's input tokens: each input item's words + 3 (a string input is one item), and
        the ``instructions`` as one more."""
        items = body.get("input", [])
        count = sum(words_of(item) + 3 for item in ([items] if isinstance(items, str) else items))
        return count + (words_of(body["instructions"]) + 3 if body.get("instructions") else 0)

    @staticmethod
    def embeddings_input_tokens(body: Mapping[str, Any]) -> int:
        """An embeddings request's input tokens: the words of each input (a token array: its length)."""
        return sum(len(one) if isinstance(one, list) else words_of(one) for one in _inputs(body))

    # -- the handler ----------------------------------------------------------------------------------------
    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        number, body, failure = self._receive(request)
        headers = {"x-request-id": f"req_sim{number}"}
        if failure is not None:
            return self._error(failure[0], failure[1], {"error": {"message": "simulated failure", "type": "server_error",
                                                                  "param": None, "code": None}}, headers)
        path = request.url.path
        route = next((r for r in ("/chat/completions", "/responses", "/embeddings") if path.endswith(r)), None)
        if route is None or request.method != "POST":
            return self._invalid(404, f"no route {request.method} {path}", headers)
        if body is None:
            return self._invalid(400, "the body must be a JSON object", headers)
        model = str(body.get("model", "gpt-4.1-mini"))
        if route == "/embeddings":
            return httpx2.Response(200, json=self._embeddings(body, model), headers=headers)
        text = self.reply_for(body)
        deltas = self._deltas(text)
        output = len(deltas) + self.reasoning_tokens
        if route == "/responses":
            prompt = self.responses_input_tokens(body)
            usage = responses_usage(prompt, output, cached=min(self.cached_tokens, prompt), reasoning=self.reasoning_tokens)
            rid = f"resp_sim{number}"
            if not body.get("stream"):
                return httpx2.Response(200, json=response_object(model=model, text=text, usage=usage, id=rid), headers=headers)
            events = response_stream_events(model=model, words=deltas, usage=usage, id=rid)
            return streamed_response([sse([e], event_names=[e["type"]]) for e in events], piece_size=self.piece_size,
                                     headers=headers)
        prompt = self.prompt_tokens(body)
        usage = chat_usage(prompt, output, cached=min(self.cached_tokens, prompt), reasoning=self.reasoning_tokens)
        rid = f"chatcmpl-sim{number}"
        if not body.get("stream"):
            return httpx2.Response(200, json=chat_completion(model=model, content=text, usage=usage, id=rid), headers=headers)
        include = bool((body.get("stream_options") or {}).get("include_usage"))
        chunks: list[dict[str, Any] | str] = [
            chat_chunk(model=model, delta={"role": "assistant", "content": ""}, id=rid, with_usage_field=include)]
        chunks += [chat_chunk(model=model, delta={"content": d}, id=rid, with_usage_field=include) for d in deltas]
        chunks.append(chat_chunk(model=model, delta={}, finish_reason="stop", id=rid, with_usage_field=include))
        if include:
            chunks.append(chat_chunk(model=model, delta=None, usage=usage, id=rid))
        chunks.append("[DONE]")
        return streamed_response([sse([c]) for c in chunks], piece_size=self.piece_size, headers=headers)

    @staticmethod
    def _invalid(status: int, message: str, headers: Mapping[str, str]) -> httpx2.Response:
        return httpx2.Response(status, headers=headers, json={"error": {
            "message": message, "type": "invalid_request_error", "param": None, "code": None}})

    def _embeddings(self, body: Mapping[str, Any], model: str) -> dict[str, Any]:
        dimensions = body.get("dimensions") or _DIMENSIONS.get(model, 1536)
        as_base64 = body.get("encoding_format") == "base64"
        data = []
        for index, one in enumerate(_inputs(body)):
            vector = _vector(repr(one), int(dimensions))
            encoded: Any = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode() if as_base64 else vector
            data.append({"object": "embedding", "index": index, "embedding": encoded})
        tokens = self.embeddings_input_tokens(body)
        return {"object": "list", "data": data, "model": model, "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}


def _inputs(body: Mapping[str, Any]) -> list[Any]:
    """An embeddings request's inputs: a string, a token array, or a list of either."""
    value = body.get("input", [])
    if isinstance(value, str) or (isinstance(value, list) and value and all(isinstance(t, int) for t in value)):
        return [value]
    return list(value) if isinstance(value, list) else [value]


def _vector(seed: str, dimensions: int) -> list[float]:
    """A unit vector determined by ``seed``, in float32 values (so base64 and float answers decode the same)."""
    rng = random.Random(seed)
    raw = [rng.uniform(-1.0, 1.0) for _ in range(dimensions)]
    norm = math.sqrt(sum(x * x for x in raw)) or 1.0
    return list(struct.unpack(f"<{dimensions}f", struct.pack(f"<{dimensions}f", *(x / norm for x in raw))))
