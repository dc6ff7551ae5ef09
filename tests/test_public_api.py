"""The public API is what __init__ exports, sorted, and every name is documented."""

from __future__ import annotations

import metricaos_sdk


def test_all_is_sorted_and_complete():
    assert metricaos_sdk.__all__ == sorted(metricaos_sdk.__all__)
    for name in metricaos_sdk.__all__:
        assert hasattr(metricaos_sdk, name), name


def test_stable_names_exist():
    for name in ("Meter", "QuotaExceeded", "UsageEvent", "Sink", "MemorySink", "SQLiteSink", "Usage"):
        assert name in metricaos_sdk.__all__
    meter_api = {"wrap", "track", "context", "set_quota", "usage", "events", "flush", "close"}
    assert meter_api <= set(dir(metricaos_sdk.Meter))


def test_public_names_have_docstrings():
    for name in metricaos_sdk.__all__:
        obj = getattr(metricaos_sdk, name)
        if callable(obj) and not name.startswith("_"):
            assert obj.__doc__, f"{name} has no docstring"


def test_py_typed_is_shipped():
    from importlib.resources import files

    assert files("metricaos_sdk").joinpath("py.typed").is_file()
