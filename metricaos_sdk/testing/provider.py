"""What the simulated providers share: failures on demand, the requests received, word counting, replies."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Mapping
from typing import Any

import httpx2

__all__ = ["SimulatedProvider", "text_of", "words_of"]

VOCABULARY = ("your", "order", "ships", "today", "and", "arrives", "within", "three", "days", "thanks", "for",
              "asking", "we", "can", "help", "with", "returns", "too", "just", "reply", "here")


def _texts(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):  # a content part or block: its text, else what it wraps
        for key in ("text", "content", "output"):
            if key in value:
                yield from _texts(value[key])
                return
    elif isinstance(value, list):
        for item in value:
            yield from _texts(item)


def text_of(value: Any) -> str:
    """The text of a message's content: a string, or the ``text`` of its parts (images and the like have none)."""
    return " ".join(_texts(value))


def words_of(value: Any) -> int:
    """How many words the text of ``value`` has: the simulators' token count."""
    return len(text_of(value).split())


class SimulatedProvider:
    """The shared machinery; see :class:`~metricaos_sdk.testing.SimulatedOpenAI` for what it offers."""

    def __init__(self, *, reply: str | None, reply_words: int, piece_size: int | None) -> None:
        self.reply = reply
        """The reply to every request; None makes one of ``reply_words`` words from the prompt."""
        self.reply_words = reply_words
        self.piece_size = piece_size
        """Cut streams every ``piece_size`` bytes; None sends one event per read, as servers flush them."""
        self.requests: list[dict[str, Any]] = []
        """Every request body received, failed ones included, in order."""
        self._failures: list[tuple[int, float | None]] = []
        self._lock = threading.Lock()
        self._counter = 0

    def fail_next(self, count: int = 1, status: int = 500, *, retry_after: float | None = 0.001) -> None:
        """Answer the next ``count`` requests with ``status`` and the provider's error body.

        ``retry_after`` (seconds) is sent as ``retry-after-ms``, which the SDKs wait instead of their own
        backoff of half a second and more: retries stay fast. None sends no such header."""
        with self._lock:
            self._failures.extend([(status, retry_after)] * count)

    def reply_for(self, body: Mapping[str, Any]) -> str:
        """The reply to ``body``: ``reply``, else ``reply_words`` words chosen by the prompt's words."""
        if self.reply is not None:
            return self.reply
        words = text_of([body.get("messages", []), body.get("input", [])]).split()
        seed = sum(len(w) for w in words)
        return " ".join(VOCABULARY[(seed + i * 7) % len(VOCABULARY)] for i in range(self.reply_words))

    def _receive(self, request: httpx2.Request) -> tuple[int, dict[str, Any] | None, tuple[int, float | None] | None]:
        """The request's number, its JSON body (None if it has none) and the failure to answer, if one is due."""
        try:
            body = json.loads(request.content)
        except ValueError:
            body = None
        with self._lock:
            self._counter += 1
            self.requests.append(body if isinstance(body, dict) else {})
            failure = self._failures.pop(0) if self._failures else None
            return self._counter, body if isinstance(body, dict) else None, failure

    @staticmethod
    def _error(status: int, retry_after: float | None, body: Mapping[str, Any],
               headers: Mapping[str, str]) -> httpx2.Response:
        extra = {"retry-after-ms": f"{retry_after * 1000:g}"} if retry_after is not None else {}
        return httpx2.Response(status, json=body, headers={**headers, **extra})

    @staticmethod
    def _deltas(text: str) -> list[str]:
        """The reply as streamed, one word per delta (each after the first with its leading space)."""
        return [(" " if i else "") + w for i, w in enumerate(text.split(" "))]
