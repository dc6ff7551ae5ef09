"""Token estimates for calls the provider did not report usage for (abandoned or failed streams).

Input: tiktoken over the request's text when the model's encoding is on disk (``o200k_base`` for current
OpenAI models, ``cl100k_base`` for older ones), counted the way OpenAI's cookbook counts chat messages
(3 tokens per message, 3 to prime the reply). Where no encoding fits or is available: one token per four
characters. Output: the same over the text the caller received, for endpoints whose ``text_pattern`` finds it
(:mod:`.output_text`); otherwise one token per streamed event — providers send about one token per delta.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections.abc import Mapping
from typing import Any

__all__ = ["estimate_input_tokens"]

log = logging.getLogger("metricaos_sdk")

_ENCODING_URLS = {
    "o200k_base": "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken",
    "cl100k_base": "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken",
}
_encodings: dict[tuple[str, str], Any] = {}
_lock = threading.Lock()


def _encoding_name(model: str | None) -> str | None:
    if not model:
        return None
    name = model.lower()
    if name.startswith(("gpt-3.5", "gpt-4-", "gpt-4", "text-embedding")) and not name.startswith(("gpt-4o", "gpt-4.1", "gpt-4.5")):
        return "cl100k_base"
    if name.startswith(("gpt-", "o1", "o3", "o4", "chatgpt", "codex", "omni")):
        return "o200k_base"
    return None


def _load(name: str, cache_dir: str) -> Any:
    key = (name, cache_dir)
    if key in _encodings:
        return _encodings[key]
    with _lock:
        encoding = None
        path = os.path.join(cache_dir, hashlib.sha1(_ENCODING_URLS[name].encode()).hexdigest())
        if os.path.exists(path):  # never let tiktoken reach for the network from inside a metered call
            try:
                import tiktoken

                previous = os.environ.get("TIKTOKEN_CACHE_DIR")
                os.environ["TIKTOKEN_CACHE_DIR"] = cache_dir
                try:
                    encoding = tiktoken.get_encoding(name)
                finally:
                    if previous is None:
                        os.environ.pop("TIKTOKEN_CACHE_DIR", None)
                    else:
                        os.environ["TIKTOKEN_CACHE_DIR"] = previous
            except Exception:  # a corrupt cache file, or tiktoken missing
                log.warning("metricaos_sdk: could not load tiktoken encoding %s; estimating by characters", name)
        _encodings[key] = encoding
        return encoding


def _texts(value: Any) -> list[str]:
    """Every string in a request's messages/input (content parts included), nothing else."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, Mapping):
        out: list[str] = []
        for key in ("content", "text", "input", "instructions", "system", "prompt", "arguments"):
            if key in value:
                out.extend(_texts(value[key]))
        return out
    if isinstance(value, (list, tuple)):
        return [t for item in value for t in _texts(item)]
    return []


def estimate_input_tokens(model: str | None, body: Mapping[str, Any] | None, cache_dir: str) -> tuple[int, str]:
    """``(tokens, method)`` for a request body; method says how it was counted."""
    if not body:
        return 0, "no request body"
    messages = body.get("messages")
    texts = _texts([body.get(k) for k in ("messages", "input", "prompt", "system", "instructions")])
    name = _encoding_name(model)
    encoding = _load(name, cache_dir) if name else None
    if encoding is None:
        chars = sum(len(t) for t in texts)
        reason = f"tiktoken {name} not available offline" if name else "no tokenizer for this model"
        return (chars + 3) // 4, f"input estimated at 4 characters per token ({reason})"
    tokens = sum(len(encoding.encode_ordinary(t)) for t in texts)
    if isinstance(messages, list):
        tokens += 3 * len(messages) + 3
    return tokens, f"input counted with tiktoken {name}"
