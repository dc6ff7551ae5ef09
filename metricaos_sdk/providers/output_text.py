"""Output estimate of a stream whose usage never arrived: tiktoken over the text the caller received.

A stream abandoned (or failed) before its usage event still generated and billed every token it delivered.
:class:`OutputText` counts them with bounded state: the tap hands it each raw SSE event, which is only kept
(a list append) until :data:`RAW_LIMIT` bytes are held; then, or when an estimate is asked for, an
endpoint's ``text_pattern`` finds the JSON-escaped text fragments without parsing the events, the text is
tokenized, added to a running count and dropped. Memory is bounded whatever the length of the stream, and a
stream that reports its usage (the usual case) pays ~0.1 µs an event and never a tokenizer unless it is long.

Counting in slices may split a word at a slice boundary: at most one extra token per 8 kB of text.
Hidden reasoning tokens are never streamed, so a reasoning model abandoned mid-thought is under-counted.
"""

from __future__ import annotations

import json
import re
from typing import Any

from .estimate import _encoding_name, _load

__all__ = ["PENDING_LIMIT", "RAW_LIMIT", "OutputText"]

RAW_LIMIT = 256 * 1024
"""Raw event bytes kept before their text is extracted and counted."""

PENDING_LIMIT = 8 * 1024
"""Escaped text bytes kept before they are tokenized and dropped. Streams shorter than this (~2,000 tokens)
never reach the tokenizer unless their usage is missing; the bound also caps the tokenizer's transient list."""


class OutputText:
    """Running count of the text a stream delivered; ``estimate()`` gives ``(tokens, method)``."""

    __slots__ = ("_cache_dir", "_chars", "_findall", "_kept", "_model", "_pending", "_raw", "_tokens")

    def __init__(self, pattern: re.Pattern[bytes], model: str | None, cache_dir: str) -> None:
        self._findall = pattern.findall
        self._model = model
        self._cache_dir = cache_dir
        self._pending = bytearray()  # one buffer: no object kept per fragment
        self._raw: list[bytes] = []
        self._kept = 0
        self._tokens = 0
        self._chars = 0

    def feed(self, raw: bytes) -> None:
        """Keep one raw SSE event (called for every event: a list append until RAW_LIMIT bytes are held)."""
        self._raw.append(raw)
        self._kept += len(raw)
        if self._kept > RAW_LIMIT:
            self._extract()

    def _extract(self) -> None:
        """Move the text fragments of the kept events into the pending buffer, tokenizing as it fills."""
        raws, self._raw, self._kept = self._raw, [], 0
        pending = self._pending
        for raw in raws:
            for piece in self._findall(raw):
                pending += piece
            if len(pending) > PENDING_LIMIT:
                self._flush()
                pending = self._pending

    def _flush(self) -> None:
        escaped = bytes(self._pending)
        self._pending = bytearray()
        try:
            text = json.loads(b'"' + escaped + b'"')  # the fragments are JSON string bodies
        except ValueError:
            text = escaped.decode("utf-8", "replace")
        encoding = self._encoding()
        if encoding is not None:
            self._tokens += len(encoding.encode_ordinary(text))
        self._chars += len(text)

    def _encoding(self) -> Any:
        name = _encoding_name(self._model)
        return _load(name, self._cache_dir) if name else None

    def estimate(self) -> tuple[int, str]:
        """Output tokens of everything fed so far, and how they were counted."""
        if self._raw:
            self._extract()
        if self._pending:
            self._flush()
        name = _encoding_name(self._model)
        if name and self._encoding() is not None:
            return self._tokens, f"output counted with tiktoken {name} over the text received"
        reason = f"tiktoken {name} not available offline" if name else "no tokenizer for this model"
        return (self._chars + 3) // 4, f"output estimated at 4 characters per token of the text received ({reason})"
