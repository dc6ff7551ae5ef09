"""The benchmarks run (no timing is asserted: figures belong in their output, not in tests).

``overhead.py --stages`` reaches into internals to cut metering off after each stage; this run makes a
renamed internal fail here rather than leave the benchmark measuring nothing.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def test_overhead_runs_every_case_and_stage() -> None:
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / "overhead.py"), "--calls", "20", "--chunks", "5", "--stages", "--json"],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout.splitlines()[-1])
    assert [row["case"] for row in rows] == [
        "chat plain", "chat stream 5 chunks", "responses stream 5 chunks", "anthropic stream 5 deltas",
        "plain, hook only", "plain, call opened and closed", "plain, usage read", "plain, event built and priced",
        "plain, event recorded",
    ]
    for row in rows:
        assert row["bare_us"] > 0 and row["wrapped_us"] > 0
        low, high = row["overhead_iqr_us"]
        assert low <= high
    assert "metricaos_sdk:" not in result.stderr  # no metering fault logged while measuring


def test_stream_memory_runs_every_variant(tmp_path: Path) -> None:
    out = tmp_path / "rows.json"
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / "stream_memory.py"), "--chunks", "1200", "--every", "400", "--per-stream",
         "50", "--json", str(out)],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "metricaos_sdk:" not in result.stderr  # no metering fault logged while measuring
    rows = json.loads(out.read_text())
    assert [row["variant"] for row in rows] == [
        "long-bare", "long-memory", "long-sqlite", "many-bare", "many-memory", "many-sqlite",
    ]
    for row in rows:
        assert [c["chunks"] for c in row["checkpoints"]] == [0, 400, 800, 1200]
        assert row["chunks"] == 1200 and row["rss_bytes_per_chunk"] is not None
    assert "B/chunk" in result.stdout


def test_reports_benchmark_measures_every_part(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / "reports.py"), "--events", "2000", "--repeat", "1", "--write-events", "500",
         "--store", str(tmp_path / "s.db"), "--json"],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.splitlines()[-1])
    assert set(out["cli"]) >= {"report_by_customer_s", "report_by_user_s", "python_start_and_import_s"}
    assert all(v > 0 for v in out["sqlite"].values())
    assert set(out["pages"]) == {"business_page_s", "customer_page_s", "customer_json_s"}
    assert out["write_events_per_s"]["with_rollup"] > 0 and out["write_events_per_s"]["without_rollup"] > 0
    assert isinstance(out["postgres"], (str, dict))


def test_suite_runs_every_case_and_counts_what_each_variant_recorded(tmp_path: Path) -> None:
    """``python -m benchmarks --quick``: every case, figures > 0, and each variant's spans/events checked against
    the calls it made (a peer installed beside us must have recorded its core case, chat plain sync, one per call)."""
    out = tmp_path / "suite.json"
    result = subprocess.run([sys.executable, "-m", "benchmarks", "--quick", "--json", str(out)],
                            cwd=BENCHMARKS.parent, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    assert report["machine"]["cores"] and report["machine"]["python"] and report["packages"]["openai"]
    assert [case["id"] for case in report["cases"]] == [
        "chat-sync", "chat-async", "chat-stream", "responses-stream", "anthropic-stream",
        "threads-1", "threads-8", "threads-32", "import", "pricing",
    ]
    sys.path.insert(0, str(BENCHMARKS))
    import variants

    for case in report["cases"]:
        names = [row["variant"] for row in case["rows"]]
        assert names[0] == ("metricaos" if case["kind"] == "pricing" else "bare") and "metricaos" in names
        if case["kind"] in ("call", "threads"):
            assert names[:4] == ["bare", "metricaos", "floor-noop-hook", "floor-usage-hook"]
            skipped = {skip["variant"]: skip["reason"] for skip in case["skipped"]}
            assert sorted(names[4:] + list(skipped)) == sorted(variants.PEERS), case  # each peer measured or skipped
            assert all(reason for reason in skipped.values())
        for row in case["rows"]:
            assert row["value"] > 0 and row["baseline_value"] > 0, (case["case"], row)
            if "records" in row and row["variant"] != "bare":
                assert (row["status"] == "ok") == (row["records"] == row["calls_made"]), row
                if row["variant"] == "metricaos" or case["id"] == "chat-sync":
                    assert row["status"] == "ok", (case["case"], row)
    assert "metricaos_sdk:" not in result.stderr  # no metering fault logged while measuring
