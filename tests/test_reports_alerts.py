"""Spike alerts over real SQLite stores: the detector, its guard and floor, the watcher thread, the CLI."""

from __future__ import annotations

import json
import logging
import math
import random
import re
import statistics
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from metricaos_sdk.cli import cli
from metricaos_sdk.errors import ConfigurationError
from metricaos_sdk.reports.alerts import Spike, SpikeRules, detect_spikes
from metricaos_sdk.reports.source import open_source
from metricaos_sdk.reports.spike_watch import SpikeWatcher
from metricaos_sdk.storage.database import Database
from metricaos_sdk.testing.sample import write_sample
from tests.billing_support import event, store

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
NOW = datetime(2026, 11, 20, 12, tzinfo=timezone.utc)  # on a boundary: the hour 11:00–12:00 is scored
START = NOW - 15 * HOUR  # 14 baseline hours, then the scored one
BY_CUSTOMER = SpikeRules(by=("customer",), metric="requests")
SECRET = "sk-test-" + "key and the prompt text"  # built, so that no logged source line holds it


def calls(customer: str, counts: list[int], *, start: datetime = START, size: timedelta = HOUR, span: float = 1.0,
          cost: str = "0.10", event_type: str = "chat_completion", **fields: Any) -> Iterator[Any]:
    """``counts[i]`` events of ``customer`` spread over the first ``span`` of window ``i`` from ``start``."""
    for i, n in enumerate(counts):
        for j in range(n):
            at = start + i * size + size * span * j / n
            yield event(at=at, customer=customer, cost=cost, tokens=(100, 50), event_type=event_type, **fields)


def write(path: Path, *groups: Iterator[Any]) -> Path:
    database = Database(path)
    store(database, [e for group in groups for e in group])
    database.close()
    return path


def noise(seed: int, n: int = 14, low: int = 20, high: int = 40) -> list[int]:
    rng = random.Random(seed)
    return [rng.randint(low, high) for _ in range(n)]


def robust_z(history: list[float], x: float, *, min_value: float = 20, threshold: float = 5) -> float:
    """The documented MAD score, computed here with the statistics module as an oracle."""
    m = statistics.median(history)
    deviations = [abs(v - m) for v in history]
    scale = 1.4826 * statistics.median(deviations) or 1.2533 * statistics.fmean(deviations)
    return (x - m) / max(scale, 0.1 * abs(m), min_value / threshold)


def ewma_z(history: list[float], x: float, *, alpha: float = 0.2, min_value: float = 20, threshold: float = 5) -> float:
    mean, var = history[0], 0.0
    for v in history[1:]:
        d = v - mean
        mean += alpha * d
        var = (1 - alpha) * (var + alpha * d * d)
    return (x - mean) / max(math.sqrt(var), 0.1 * abs(mean), min_value / threshold)


def detect(path: Path, rules: SpikeRules = BY_CUSTOMER, now: datetime = NOW) -> list[Spike]:
    source = open_source(path)
    try:
        return detect_spikes(source, rules, now=now)
    finally:
        source.close()


# --- the detector ---------------------------------------------------------------------------------------------

def test_a_planted_spike_is_found_with_its_key_and_score(tmp_path):
    a, b = noise(1), noise(2)
    path = write(tmp_path / "m.db", calls("cus_a", a + [31]), calls("cus_b", b + [200]))
    spikes = detect(path)
    assert [(s.dimension, s.key) for s in spikes] == [("customer", "cus_b")]
    spike = spikes[0]
    assert spike.value == 200 and isinstance(spike.value, int)
    assert spike.score == pytest.approx(robust_z(b, 200), rel=1e-9)
    assert spike.baseline == Decimal(str(statistics.median(b)))
    assert (spike.window_start, spike.window_end, spike.partial) == (NOW - HOUR, NOW, False)
    assert spike.baseline_windows == 14 and spike.method == "mad"
    assert "customer cus_b: 200 requests in the hour from 2026-11-20 11:00 UTC" in spike.message
    assert "so far" not in spike.message


def test_money_is_summed_exactly_including_amounts_sql_cannot_sum(tmp_path):
    small = calls("cus_b", [0] * 14 + [100], cost="0.1234567")
    large = calls("cus_b", [0] * 14 + [1], cost="250.5")  # over $100: summed apart, as Decimal
    path = write(tmp_path / "m.db", calls("cus_b", noise(2) + [0]), small, large)
    [spike] = detect(path, SpikeRules(by=("customer",), metric="cost_usd"))
    assert spike.value == Decimal("262.84567")
    assert spike.as_json()["value"] == "262.84567"
    assert json.loads(json.dumps(spike.as_json()))["baseline"] == str(spike.baseline)


def test_one_aggregate_per_dimension(tmp_path):
    path = write(tmp_path / "m.db", calls("cus_b", noise(2) + [200], feature="chat"))
    source = open_source(path)
    queries: list[str] = []
    real = source.query
    source.query = lambda sql, params=(): queries.append(sql) or real(sql, params)  # type: ignore[method-assign]
    spikes = detect_spikes(source, SpikeRules(by=("customer", "feature", "model"), metric="requests"), now=NOW)
    source.close()
    assert len(queries) == 3 and all("GROUP BY" in q for q in queries)
    assert sorted((s.dimension, s.key) for s in spikes) == [("customer", "cus_b"), ("feature", "chat"),
                                                           ("model", "gpt-4.1-mini")]
    assert [s.score for s in spikes] == sorted((s.score for s in spikes), reverse=True)


def test_steady_noisy_series_are_not_flagged(tmp_path):
    groups = [calls(f"cus_{i}", noise(10 + i, n=40)) for i in range(6)]
    path = write(tmp_path / "m.db", *groups)
    for method in ("mad", "ewma"):
        for hours in range(15, 41):
            rules = SpikeRules(by=("customer", "feature"), metric="requests", method=method)
            assert detect(path, rules, now=START + hours * HOUR) == [], (method, hours)


def test_a_realistic_month_is_quiet_and_a_planted_hour_stands_out(tmp_path):
    path = write_sample(tmp_path / "sample.db", 10_000)
    nows = [datetime(2026, 11, 20, h, tzinfo=timezone.utc) for h in (0, 7, 13, 19)]
    for method in ("mad", "ewma"):
        for window in ("hour", "day"):
            for metric in ("cost_usd", "requests"):
                rules = SpikeRules(window=window, metric=metric, method=method)
                assert [s.message for now in nows for s in detect(path, rules, now)] == []
    burst = calls("cus_c", [300], start=datetime(2026, 11, 20, 6, tzinfo=timezone.utc), cost="0.01",
                  user_id="cus_c_u03", feature="search")
    write(path, burst)
    at = datetime(2026, 11, 20, 7, tzinfo=timezone.utc)
    spikes = detect(path, SpikeRules(metric="requests"), now=at)
    assert {(s.dimension, s.key) for s in spikes} == {("customer", "cus_c"), ("feature", "search"),
                                                       ("model", "gpt-4.1-mini")}
    assert all(s.score >= 5 and s.value >= 300 for s in spikes)
    # one user has too few busy hours for the guard's default (half the baseline); a looser guard scores it
    users = detect(path, SpikeRules(by=("user",), metric="requests", min_windows=1), now=at)
    assert [s.key for s in users] == ["cus_c_u03"]


def test_the_guard_suppresses_a_new_key_and_tiny_counts(tmp_path):
    path = write(tmp_path / "m.db", calls("cus_new", [0] * 14 + [500]), calls("cus_tiny", [1] * 14 + [15]))
    assert detect(path) == []
    new = detect(path, SpikeRules(by=("customer",), metric="requests", min_windows=0))
    assert [(s.key, s.score) for s in new] == [("cus_new", 125.0)]  # 500 / (min_value 20 / threshold 5)
    tiny = detect(path, SpikeRules(by=("customer",), metric="requests", min_value=5))
    assert [(s.key, s.score) for s in tiny] == [("cus_tiny", 14.0)]  # (15 - 1) / (5 / 5)


def test_a_flat_baseline_uses_the_scale_floor(tmp_path):
    path = write(tmp_path / "m.db", calls("cus_40", [100] * 14 + [140]), calls("cus_60", [100] * 14 + [160]),
                 calls("cus_same", [100] * 15))
    spikes = detect(path)
    assert [(s.key, s.score, s.baseline, s.scale) for s in spikes] == [("cus_60", 6.0, 100, 10)]


def test_silent_windows_count_as_zero(tmp_path):
    sparse = [40, 0, 0] * 4 + [40, 0]  # 5 busy hours of 14
    path = write(tmp_path / "m.db", calls("cus_sparse", sparse + [120]))
    [spike] = detect(path, SpikeRules(by=("customer",), metric="requests", min_windows=5))
    assert spike.baseline == 0 and spike.baseline_windows == 5
    assert spike.score == pytest.approx(robust_z([float(v) for v in sparse], 120), rel=1e-9)
    assert float(spike.scale) == pytest.approx(1.2533 * 200 / 14, rel=1e-9)


def test_ewma_and_mad_differ_on_a_past_outlier(tmp_path):
    history = [20, 21, 19, 20, 22, 20, 19, 21, 20, 400, 20, 21, 20, 20]
    path = write(tmp_path / "m.db", calls("cus_out", history + [80]), calls("cus_b", noise(2) + [200]))
    mad = {s.key: s for s in detect(path)}
    ewma = {s.key: s for s in detect(path, SpikeRules(by=("customer",), metric="requests", method="ewma"))}
    assert set(mad) == {"cus_out", "cus_b"} and set(ewma) == {"cus_b"}
    assert mad["cus_out"].score == pytest.approx(robust_z(history, 80), rel=1e-9)
    assert ewma_z(history, 80) < 5  # the outlier inflates the EWMA deviation: no spike
    assert ewma["cus_b"].score == pytest.approx(ewma_z(noise(2), 200), rel=1e-9)
    assert ewma["cus_b"].method == "ewma" and "EWMA mean" in ewma["cus_b"].message
    alpha = detect(path, SpikeRules(by=("customer",), metric="requests", method="ewma", alpha=0.5))
    assert alpha[0].score == pytest.approx(ewma_z(noise(2), 200, alpha=0.5), rel=1e-9)


def test_product_events_only_count_credits(tmp_path):
    days = [calls("cus_b", noise(2) + [30]),
            calls("cus_b", noise(3) + [300], event_type="action", cost="1", credits=5, action_name="answer")]
    path = write(tmp_path / "m.db", *days)
    for metric in ("requests", "cost_usd", "total_tokens"):
        assert detect(path, SpikeRules(by=("customer",), metric=metric)) == [], metric
    spikes = detect(path, SpikeRules(by=("customer", "action"), metric="credits"))
    assert [(s.dimension, s.key, s.value) for s in spikes] == [("action", "answer", 1500), ("customer", "cus_b", 1500)]
    assert spikes[0].as_json()["value"] == "1500" and isinstance(spikes[0].value, Decimal)


def test_a_day_in_progress_counts_its_usage_so_far(tmp_path):
    now = datetime(2026, 11, 20, 15, 30, tzinfo=timezone.utc)
    start = datetime(2026, 11, 6, tzinfo=timezone.utc)
    path = write(tmp_path / "m.db", calls("cus_b", noise(2) + [300], start=start, size=DAY, span=0.6),
                 calls("cus_late", noise(4) + [0], start=start, size=DAY),
                 calls("cus_late", [500], start=now + timedelta(minutes=10), size=HOUR))  # after now: not counted
    [spike] = detect(path, SpikeRules(by=("customer",), window="day", metric="requests"), now=now)
    assert (spike.key, spike.value, spike.partial) == ("cus_b", 300, True)
    assert (spike.window_start, spike.window_end) == (datetime(2026, 11, 20, tzinfo=timezone.utc), now + 8.5 * HOUR)
    assert "cus_b: 300 requests on 2026-11-20 (UTC) so far" in spike.message


BAD_RULES = [
    ({"window": "week"}, "window 'week' is not supported: use one of hour, day."),
    ({"metric": "tokens"}, "metric 'tokens' is not supported"),
    ({"method": "zscore"}, "method 'zscore' is not supported"),
    ({"by": ("team",)}, "by 'team' is not a dimension"),
    ({"by": ()}, "by is empty"),
    ({"threshold": 0}, "threshold 0 is not above 0"),
    ({"threshold": float("nan")}, "threshold nan is not a number"),
    ({"threshold": "5"}, "threshold '5' is not a number"),
    ({"baseline": 2}, "baseline 2 is outside 3 to 1000 windows"),
    ({"baseline": 2.5}, "baseline 2.5 is not a whole number"),
    ({"min_windows": 15}, "min_windows 15 is outside 0 to the baseline's 14 windows"),
    ({"min_value": 0}, "min_value 0 is not a positive number"),
    ({"min_value": "lots"}, "min_value 'lots' is not a positive number"),
    ({"alpha": 1}, "alpha 1 is not between 0 and 1"),
    ({"floor_ratio": -0.1}, "floor_ratio -0.1 is negative"),
]


@pytest.mark.parametrize(("options", "says"), BAD_RULES)
def test_bad_rules_say_what_is_wrong_in_one_sentence(options, says):
    with pytest.raises(ConfigurationError) as caught:
        SpikeRules(**options)
    message = str(caught.value)
    assert message.startswith(says)
    assert re.fullmatch(r"[^\n]+: [^\n]+\.", message) and ". " not in message


def test_a_naive_now_is_refused(tmp_path):
    path = write(tmp_path / "m.db", calls("cus_b", [1]))
    with pytest.raises(ConfigurationError, match="has no time zone"):
        detect(path, now=NOW.replace(tzinfo=None))


# --- the watcher ----------------------------------------------------------------------------------------------

class Runs:
    """A source factory that counts the watcher's runs and lets a test wait for one."""

    def __init__(self, path: Path, fail_first: bool = False) -> None:
        self.path, self.fail_first, self.count = path, fail_first, 0
        self.changed = threading.Condition()

    def __call__(self) -> Any:
        with self.changed:
            self.count += 1
            self.changed.notify_all()
            if self.fail_first and self.count == 1:
                raise OSError("disk unavailable")
        return open_source(self.path)

    def wait_for(self, n: int) -> None:
        with self.changed:
            assert self.changed.wait_for(lambda: self.count >= n, timeout=10), f"only {self.count} runs"


def test_the_watcher_calls_back_once_per_spike_across_intervals(tmp_path):
    path = write(tmp_path / "m.db", calls("cus_b", noise(2) + [200]), calls("cus_c", noise(3) + [30]))
    runs, got, arrived = Runs(path), [], threading.Semaphore(0)

    def callback(spike: Spike) -> None:
        got.append(spike)
        arrived.release()

    with SpikeWatcher(runs, BY_CUSTOMER, callback, interval=0.05, clock=lambda: NOW) as watcher:
        assert arrived.acquire(timeout=10)
        write(path, calls("cus_c", [0] * 14 + [300]))  # a second spike, seen by a later run
        assert arrived.acquire(timeout=10)
        seen = runs.count
        runs.wait_for(seen + 2)
        assert watcher.running
    assert not watcher.running and watcher.faults == 0
    assert [s.id for s in got] == [("customer", "cus_b", NOW - HOUR), ("customer", "cus_c", NOW - HOUR)]
    assert "__del__" not in vars(SpikeWatcher)


def test_the_watcher_survives_a_callback_that_raises(tmp_path, caplog):
    path = write(tmp_path / "m.db", calls("cus_b", noise(2) + [200]), calls("cus_d", noise(5) + [400]))
    runs, got = Runs(path), []

    def callback(spike: Spike) -> None:
        got.append(spike)
        if len(got) == 1:
            raise ValueError(SECRET)

    with caplog.at_level(logging.ERROR, logger="metricaos_sdk"):
        with SpikeWatcher(runs, BY_CUSTOMER, callback, interval=0.05, clock=lambda: NOW) as watcher:
            runs.wait_for(3)
            assert watcher.running
    assert sorted(s.key for s in got) == ["cus_b", "cus_d"]  # the second spike still came, once
    assert watcher.faults == 1 and watcher.last_fault is not None
    records = [r for r in caplog.records if "the spike callback raised" in r.getMessage()]
    assert len(records) == 1 and records[0].levelno == logging.ERROR and "ValueError" in records[0].getMessage()
    assert "sk-test-key" not in caplog.text and "prompt" not in caplog.text and "cus_" not in caplog.text


def test_the_watcher_survives_a_detector_fault(tmp_path, caplog):
    path = write(tmp_path / "m.db", calls("cus_b", noise(2) + [200]))
    runs, got = Runs(path, fail_first=True), threading.Event()
    with caplog.at_level(logging.ERROR, logger="metricaos_sdk"):
        watcher = SpikeWatcher(runs, BY_CUSTOMER, lambda s: got.set(), interval=0.05, clock=lambda: NOW).start()
        assert got.wait(10)
        assert watcher.stop(timeout=5)
    assert watcher.faults == 1 and runs.count >= 2
    assert any("spike detection failed (OSError: disk unavailable)" in r.getMessage() for r in caplog.records)


def test_check_runs_once_and_can_stop_from_the_callback(tmp_path):
    path = write(tmp_path / "m.db", calls("cus_b", noise(2) + [200]))
    watcher = SpikeWatcher(path, BY_CUSTOMER, lambda s: None, clock=lambda: NOW)
    assert [s.key for s in watcher.check()] == ["cus_b"]
    assert watcher.check() == []  # the same spike is never reported twice
    assert watcher.check(now=NOW + HOUR) == []  # the next hour is quiet
    assert watcher.stop() and not watcher.running  # never started: nothing to stop
    stopped = threading.Event()
    selfstop = SpikeWatcher(path, BY_CUSTOMER, lambda s: (selfstop.stop(), stopped.set()), interval=0.05,
                            clock=lambda: NOW).start()
    assert stopped.wait(10)
    assert selfstop.stop(timeout=5) and not selfstop.running


@pytest.mark.parametrize(("options", "says"), [
    ({"interval": 0}, "interval 0 is not a positive number of seconds"),
    ({"callback": "print"}, "callback must be callable"),
    ({"source": 42}, "source must be a database path or URL"),
    ({"rules": {"window": "day"}}, "rules must be a SpikeRules"),
])
def test_bad_watcher_arguments_are_refused(options, says):
    arguments: dict[str, Any] = {"source": "m.db", "rules": None, "callback": print, **options}
    with pytest.raises(ConfigurationError, match=re.escape(says)):
        SpikeWatcher(arguments.pop("source"), arguments.pop("rules"), arguments.pop("callback"), **arguments)


# --- the CLI --------------------------------------------------------------------------------------------------

def test_cli_json_matches_the_detector(tmp_path):
    path = write(tmp_path / "m.db", calls("cus_a", noise(1) + [31]), calls("cus_b", noise(2) + [200]))
    result = CliRunner().invoke(cli, ["alerts", "--db", str(path), "--by", "customer", "--metric", "requests",
                                      "--now", "2026-11-20T12:00:00Z", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert (data["window_start"], data["window_end"], data["partial"]) == (
        "2026-11-20T11:00:00+00:00", "2026-11-20T12:00:00+00:00", False)
    assert data["rules"]["by"] == ["customer"] and data["rules"]["min_windows"] == 7
    [expected] = detect(path)
    assert data["spikes"] == [json.loads(json.dumps(expected.as_json()))]
    assert data["spikes"][0]["key"] == "cus_b" and data["spikes"][0]["value"] == 200


def test_cli_text_and_the_environment(tmp_path, monkeypatch):
    path = write(tmp_path / "m.db", calls("cus_b", noise(2) + [200]))
    monkeypatch.setenv("METRICAOS_DB", str(path))
    runner = CliRunner()
    found = runner.invoke(cli, ["alerts", "--by", "customer", "--metric", "requests", "--now", "2026-11-20T12:00"])
    assert found.exit_code == 0, found.output
    first = found.output.splitlines()[0]
    assert first.startswith("1 spike in the hour from 2026-11-20 11:00 UTC (requests by customer")
    assert "customer cus_b: 200 requests" in found.output
    quiet = runner.invoke(cli, ["alerts", "--method", "ewma", "--threshold", "1000", "--now", "2026-11-20T12:00"])
    assert quiet.exit_code == 0 and quiet.output.startswith("No spikes in the hour from 2026-11-20 11:00 UTC")


@pytest.mark.parametrize(("args", "says"), [
    (["--window", "week"], "window 'week' is not supported: use one of hour, day."),
    (["--metric", "latency"], "metric 'latency' is not supported: use one of cost_usd, total_tokens, requests, "
                              "credits."),
    (["--threshold", "-1"], "threshold -1.0 is not above 0: pass a positive score, such as 5."),
    (["--baseline", "1"], "baseline 1 is outside 3 to 1000 windows"),
    (["--min-value", "zero"], "min_value 'zero' is not a positive number"),
    (["--by", "team"], "by 'team' is not a dimension spikes can be found in"),
    (["--now", "yesterday"], "--now 'yesterday' is not an ISO 8601 moment: pass one like 2026-11-15T10:00:00Z."),
])
def test_cli_bad_values_give_one_sentence(tmp_path, args, says):
    path = write(tmp_path / "m.db", calls("cus_b", [1]))
    result = CliRunner().invoke(cli, ["alerts", "--db", str(path), *args])
    assert result.exit_code == 1
    assert result.output.startswith(f"Error: {says}") and result.output.count("\n") == 1


def test_cli_without_a_database_says_how_to_fix_it(tmp_path):
    result = CliRunner().invoke(cli, ["alerts", "--db", str(tmp_path / "missing.db")])
    assert result.exit_code == 1
    assert "No metrics database at" in result.output and "METRICAOS_DB" in result.output


# --- PostgreSQL -----------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    from tests import postgres_support

    yield from postgres_support.server_url()


def test_postgresql_finds_the_same_spikes(tmp_path, postgres_url):
    from metricaos_sdk.delivery.postgres import PostgreSQL
    from tests import postgres_support

    events = [*calls("cus_a", noise(1) + [31], feature="chat"), *calls("cus_b", noise(2) + [200], cost="0.0123"),
              *calls("cus_b", [0] * 14 + [1], cost="250.5"),
              *calls("cus_b", noise(3) + [300], event_type="action", cost="1", credits="2.5", action_name="answer")]
    path = write(tmp_path / "m.db", iter(events))
    schemas = postgres_support.own_schema(postgres_url)
    schema = next(schemas)
    destination = PostgreSQL(postgres_url, schema=schema)
    try:
        assert destination.deliver(events).outcome == "delivered"
        pg = open_source(postgres_url, schema=schema)
        for metric in ("cost_usd", "requests", "total_tokens", "credits"):
            rules = SpikeRules(metric=metric)
            expected = [s.as_json() for s in detect(path, rules)]
            assert expected, metric
            assert [s.as_json() for s in detect_spikes(pg, rules, now=NOW)] == expected, metric
        pg.close()
    finally:
        destination.close()
        next(schemas, None)


# --- the docs -------------------------------------------------------------------------------------------------

def test_every_python_block_of_the_alerts_page_runs_and_shows_what_it_says(tmp_path, monkeypatch, capsys):
    page = (Path(__file__).resolve().parents[1] / "docs" / "alerts.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", page, re.S)
    assert len(blocks) >= 3
    monkeypatch.chdir(tmp_path)
    exec(compile("\n".join(blocks), "docs/alerts.md", "exec"), {})
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "[]"
    for shown in re.findall(r"^((?:customer|feature) \S+: .*)$", page, re.M):
        assert shown in lines, shown
    alerts = [line for line in lines if line.startswith("ALERT ")]
    assert len(alerts) == 1 and alerts[0].startswith("ALERT customer cus_a: cost $2.88 on 2026-11-20 (UTC)")
    result = CliRunner().invoke(cli, ["alerts", "--db", "alerts-demo.db", "--window", "day", "--metric", "requests",
                                      "--by", "customer", "--now", "2026-11-21T00:00Z"])
    assert result.output.strip() in page


def test_guard_defaults_follow_the_baseline_and_the_metric():
    from dataclasses import replace

    rules = SpikeRules()
    assert (rules.required_windows, rules.required_value) == (7, Decimal("0.50"))
    longer = replace(rules, baseline=28, metric="requests")
    assert (longer.required_windows, longer.required_value) == (14, Decimal(20))
    assert SpikeRules(min_windows=0, min_value="0.05").required_windows == 0
    assert SpikeRules(min_value=0.05).required_value == Decimal("0.05")


def test_meter_watch_spikes_calls_back_and_close_stops_it(tmp_path):
    from metricaos_sdk import Meter

    now = datetime.now(timezone.utc)
    current = now.replace(minute=0, second=0, microsecond=0)
    baseline = calls("cus_w", noise(9), start=current - 14 * HOUR)
    spike = (event(at=current + timedelta(microseconds=j), customer="cus_w", cost="0.10", tokens=(100, 50))
             for j in range(300))
    path = write(tmp_path / "m.db", baseline, spike)
    got, arrived = [], threading.Semaphore(0)

    def callback(found: Spike) -> None:
        got.append(found)
        arrived.release()

    meter = Meter(path)
    watcher = meter.watch_spikes(callback, BY_CUSTOMER, interval=0.05)
    assert arrived.acquire(timeout=20)
    assert watcher.running
    meter.close()
    assert not watcher.running
    assert [(s.dimension, s.key) for s in got] == [("customer", "cus_w")]
    with pytest.raises(ConfigurationError, match="reads the meter's SQLite file"):
        from metricaos_sdk import MemorySink

        Meter(sink=MemorySink()).watch_spikes(callback)
