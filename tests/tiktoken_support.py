"""tiktoken in the suite: an encoding is never downloaded, so a test that asserts tiktoken counts needs it on disk.

Mark such a test ``@pytest.mark.tiktoken`` (or ``@pytest.mark.tiktoken("cl100k_base")``): conftest skips it,
saying why, when the encoding cannot be loaded offline — as in a clone without ``../shared/tiktoken-cache``
beside it. Inside the test, :func:`o200k` / :func:`encoding` give the encoding. Tests of the character-count
fallback do not need the mark: they point the meter at an empty directory and run everywhere.
"""

from __future__ import annotations

from typing import Any

import pytest

from metricaos_sdk import MeterConfig
from metricaos_sdk.providers.estimate import _load


def cache_dir() -> str:
    """Where a ``Meter()`` built from the environment looks for encodings: ``TIKTOKEN_CACHE_DIR`` (which
    conftest points at ``../shared/tiktoken-cache`` when that exists), else tiktoken's own default."""
    return MeterConfig.from_env().tiktoken_cache_dir


def unavailable(name: str = "o200k_base") -> str | None:
    """Why tiktoken's ``name`` cannot be loaded offline, or ``None`` when it can (loaded as the SDK loads it)."""
    if _load(name, cache_dir()) is not None:
        return None
    return (f"tiktoken {name} is not on disk in {cache_dir()} and the suite never downloads it "
            "(set TIKTOKEN_CACHE_DIR, or keep ../shared/tiktoken-cache beside the repository)")


def encoding(name: str = "o200k_base") -> Any:
    """tiktoken's ``name`` as the SDK loads it, else skip the test with the reason."""
    reason = unavailable(name)
    if reason is not None:
        pytest.skip(reason)
    return _load(name, cache_dir())


def o200k() -> Any:
    """tiktoken's ``o200k_base`` (the encoding of current OpenAI models), else skip the test."""
    return encoding("o200k_base")
