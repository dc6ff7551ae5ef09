"""Estimates for calls without provider usage: tiktoken when its encoding is on disk, else characters."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from metricaos_sdk.providers.estimate import estimate_input_tokens

BODY = {"model": "gpt-4.1-mini", "messages": [{"role": "system", "content": "You are terse."},
                                             {"role": "user", "content": "Where is my order number 1042?"}]}
SHARED_CACHE = Path(__file__).resolve().parents[2] / "shared" / "tiktoken-cache"


@pytest.mark.skipif(not SHARED_CACHE.is_dir(), reason="the verified tiktoken cache (../shared/tiktoken-cache) is not here")
def test_tiktoken_counts_chat_messages_when_the_encoding_is_on_disk():
    import tiktoken

    tokens, method = estimate_input_tokens("gpt-4.1-mini", BODY, str(SHARED_CACHE))
    os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(SHARED_CACHE))
    enc = tiktoken.get_encoding("o200k_base")
    expected = sum(len(enc.encode(m["content"])) for m in BODY["messages"]) + 3 * 2 + 3
    assert tokens == expected and "tiktoken o200k_base" in method


def test_falls_back_to_characters_without_the_encoding_and_says_so(tmp_path):
    tokens, method = estimate_input_tokens("gpt-4.1-mini", BODY, str(tmp_path))
    chars = sum(len(m["content"]) for m in BODY["messages"])
    assert tokens == (chars + 3) // 4
    assert "not available offline" in method


def test_unknown_model_uses_the_character_heuristic(tmp_path):
    tokens, method = estimate_input_tokens("my-local-llama", BODY, str(tmp_path))
    assert tokens > 0 and "no tokenizer" in method
