"""A priced Claude model the installed anthropic SDK does not call deprecated.

Each release deprecates more models (and warns on every call with them, which the suite turns into an error);
a test that needs a real, priced model takes it from here instead of naming one that a later release retires.
"""

from __future__ import annotations

import pytest

CANDIDATES = ("claude-haiku-4-5", "claude-opus-4-5", "claude-opus-4-1")
"""Priced in the bundled rate table; newest first."""


def current_claude() -> str:
    try:
        from anthropic.resources.messages.messages import DEPRECATED_MODELS
    except ImportError:  # an SDK without the list deprecates nothing
        DEPRECATED_MODELS = {}  # noqa: N806
    for model in CANDIDATES:
        if model not in DEPRECATED_MODELS:
            return model
    pytest.skip(f"the installed anthropic SDK calls every candidate model deprecated: {', '.join(CANDIDATES)}")
