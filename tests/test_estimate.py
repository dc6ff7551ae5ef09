"""Estimates for calls without provider usage: tiktoken when its encoding is on disk, else characters."""

from __future__ import annotations

import pytest

from metricaos_sdk.providers.estimate import estimate_input_tokens
from tests.tiktoken_support import cache_dir, o200k

BODY = {"model": "gpt-4.1-mini", "messages": [{"role": "system", "content": "You are terse."},
                                             {"role": "user", "content": "Where is my order number 1042?"}]}


@pytest.mark.tiktoken
def test_tiktoken_counts_chat_messages_when_the_encoding_is_on_disk():
    tokens, method = estimate_input_tokens("gpt-4.1-mini", BODY, cache_dir())
    expected = sum(len(o200k().encode(m["content"])) for m in BODY["messages"]) + 3 * 2 + 3
    assert tokens == expected and "tiktoken o200k_base" in method


def test_falls_back_to_characters_without_the_encoding_and_says_so(tmp_path):
    tokens, method = estimate_input_tokens("gpt-4.1-mini", BODY, str(tmp_path))
    chars = sum(len(m["content"]) for m in BODY["messages"])
    assert tokens == (chars + 3) // 4
    assert "not available offline" in method


def test_unknown_model_uses_the_character_heuristic(tmp_path):
    tokens, method = estimate_input_tokens("my-local-llama", BODY, str(tmp_path))
    assert tokens > 0 and "no tokenizer" in method
