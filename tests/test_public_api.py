"""The public API is what __init__ exports, sorted, and every name is documented."""

from __future__ import annotations

import pytest

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


def test_reports_and_billing_names_load_when_first_used():
    """``import metricaos_sdk`` loads neither billing, nor the reports beyond the usage summary, nor a delivery
    destination (a metered app pays for its import at start); every listed name still resolves."""
    import subprocess
    import sys

    code = ("import sys, metricaos_sdk; print(sorted(m for m in sys.modules if m.startswith('metricaos_sdk.billing') "
            "or (m.startswith('metricaos_sdk.reports.') and m != 'metricaos_sdk.reports.summary') or m in "
            "('metricaos_sdk.delivery.openmeter', 'metricaos_sdk.delivery.stripe', 'metricaos_sdk.delivery.lago', "
            "'metricaos_sdk.delivery.http_json', 'metricaos_sdk.delivery.otel', 'metricaos_sdk.delivery.postgres')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    import metricaos_sdk
    import metricaos_sdk.reports as reports

    assert sorted(reports.__all__) == sorted({"LimitStatus", "Totals", "UsageSummary", "combine", "summarize",
                                              "totals_text", *reports._WHERE})
    for name in reports.__all__:
        assert getattr(reports, name) is not None
    import metricaos_sdk.delivery as delivery

    for name in ("HTTPJSON", "Lago", "OpenMeter", "StripeMeter"):
        assert getattr(delivery, name).__module__.startswith("metricaos_sdk.delivery.")
    for name in ("Billing", "PricePlan", "Invoice", "Replay"):
        assert getattr(metricaos_sdk, name).__module__.startswith("metricaos_sdk.billing")
    with pytest.raises(AttributeError):
        metricaos_sdk.NoSuchName  # noqa: B018
