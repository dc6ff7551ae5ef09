"""Shared fixtures: real SQLite files, the real openai client, HTTP mocked by respx at httpcore2."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import pytest_httpx2._plugin  # noqa: F401  (registers respx's "httpcore2" mocker)
import respx
from hypothesis import HealthCheck, settings

# Property tests: a few seconds in CI; HYPOTHESIS_PROFILE=long runs them for real before an issue is closed.
settings.register_profile("ci", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("long", max_examples=3000, deadline=None, suppress_health_check=list(HealthCheck))
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

_SHARED_TIKTOKEN = Path(__file__).resolve().parents[2] / "shared" / "tiktoken-cache"
if _SHARED_TIKTOKEN.is_dir() and "TIKTOKEN_CACHE_DIR" not in os.environ:
    os.environ["TIKTOKEN_CACHE_DIR"] = str(_SHARED_TIKTOKEN)
os.environ.pop("METRICAOS_DB", None)
os.environ.pop("METRICAOS_ENVIRONMENT", None)
os.environ.pop("METRICAOS_DISABLED", None)

OPENAI_BASE = "https://api.openai.com/v1"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "tiktoken(name='o200k_base'): asserts tiktoken counts; skipped, with the "
                                       "reason, when the encoding cannot be loaded offline (tests/tiktoken_support.py)")


def pytest_runtest_setup(item: pytest.Item) -> None:
    from tests.tiktoken_support import unavailable

    for mark in item.iter_markers("tiktoken"):
        reason = unavailable(*mark.args, **mark.kwargs)
        if reason is not None:
            pytest.skip(reason)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "metricaos.db"


@pytest.fixture
def meter(db_path: Path) -> Iterator[object]:
    from metricaos_sdk import Meter

    m = Meter(db_path)
    yield m
    m.close()


@pytest.fixture
def router() -> Iterator[respx.Router]:
    with respx.mock(using="httpcore2", assert_all_called=False) as r:
        yield r


@pytest.fixture
def sdk_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.WARNING, logger="metricaos_sdk")
    return caplog
