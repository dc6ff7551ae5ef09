"""The OpenTelemetry destination against a real OTLP/HTTP receiver on 127.0.0.1: the protobuf bodies it is sent are
decoded with opentelemetry-proto (``ExportMetricsServiceRequest``), so what is checked is the wire format, for events
of real metered calls. Skipped, with the reason, when the ``otel`` extra is not installed."""

from __future__ import annotations

import math
import subprocess
import sys
from collections import defaultdict
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

SKIP = "the otel extra is not installed (pip install 'metricaos-sdk[otel]' opentelemetry-proto)"
pytest.importorskip("opentelemetry.sdk.metrics", reason=SKIP)
pytest.importorskip("opentelemetry.exporter.otlp.proto.http.metric_exporter", reason=SKIP)
metrics_service = pytest.importorskip("opentelemetry.proto.collector.metrics.v1.metrics_service_pb2", reason=SKIP)

from metricaos_sdk import Meter, UsageEvent  # noqa: E402
from metricaos_sdk.delivery.otel import OpenTelemetry, measurements  # noqa: E402
from metricaos_sdk.testing import SimulatedAnthropic, SimulatedOpenAI  # noqa: E402
from tests.anthropic_models import current_claude  # noqa: E402
from tests.delivery_support import ASK, FAST  # noqa: E402
from tests.receiver import Answer, Received, Receiver, running  # noqa: E402

OK = Answer(200, headers={"content-type": "application/x-protobuf"}, body=b"")  # an empty ExportMetricsServiceResponse
USAGE = "gen_ai.client.inference.usage"
COUNTERS = {f"{USAGE}.input_tokens": "input_tokens", f"{USAGE}.output_tokens": "output_tokens",
            f"{USAGE}.cache_read.input_tokens": "cached_input_tokens",
            f"{USAGE}.cache_write.input_tokens": "cache_write_tokens",
            f"{USAGE}.reasoning.output_tokens": "reasoning_tokens"}
CUMULATIVE, DELTA = 2, 1  # opentelemetry.proto.metrics.v1.AggregationTemporality


@pytest.fixture(autouse=True)
def no_otel_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The SDK reads OTEL_* itself; a developer's own settings must not steer these tests."""
    import os

    for name in [n for n in os.environ if n.startswith("OTEL_")]:
        monkeypatch.delenv(name)


class Collector:
    """Decodes what the receiver stored: ``points`` are (metric name, unit, kind, temporality, attributes, value)."""

    def __init__(self, receiver: Receiver) -> None:
        self.receiver = receiver
        self.stored: list[Received] = []
        receiver.ids = lambda request: []  # the bodies are protobuf, not our JSON
        receiver.decide = self._store

    def _store(self, request: Received) -> Answer:
        self.stored.append(request)
        return OK

    @property
    def url(self) -> str:
        return self.receiver.url + "/v1/metrics"

    def requests(self) -> Iterator[Any]:
        for request in self.stored:
            yield metrics_service.ExportMetricsServiceRequest.FromString(request.body)

    def points(self) -> list[dict[str, Any]]:
        found = []
        for export in self.requests():
            for resource in export.resource_metrics:
                for scope in resource.scope_metrics:
                    for metric in scope.metrics:
                        kind = metric.WhichOneof("data")
                        data = getattr(metric, kind)
                        for point in data.data_points:
                            found.append({"name": metric.name, "unit": metric.unit, "kind": kind,
                                          "temporality": data.aggregation_temporality, "point": point,
                                          "start": point.start_time_unix_nano, "time": point.time_unix_nano,
                                          "attributes": attributes(point.attributes), "scope": scope.scope.name,
                                          "resource": attributes(resource.resource.attributes)})
        return found

    def series(self) -> dict[tuple[str, frozenset[tuple[str, Any]]], dict[str, float]]:
        """Totals per (metric, attributes): the latest value of a cumulative series, the sum of delta points."""
        latest: dict[tuple[Any, ...], dict[str, Any]] = {}
        totals: dict[tuple[str, frozenset[tuple[str, Any]]], dict[str, float]] = defaultdict(
            lambda: {"sum": 0.0, "count": 0})
        for p in self.points():
            key = (p["name"], frozenset(p["attributes"].items()))
            if p["temporality"] == CUMULATIVE:
                held = latest.get((*key, p["start"]))
                if held is None or held["time"] <= p["time"]:
                    latest[(*key, p["start"])] = p
            else:
                add(totals[key], p)
        for (name, attrs, _start), p in latest.items():
            add(totals[(name, attrs)], p)
        return dict(totals)

    def total(self, name: str, field: str = "sum", **where: Any) -> float:
        return sum(v[field] for (n, attrs), v in self.series().items()
                   if n == name and all(dict(attrs).get(k) == w for k, w in where.items()))


def add(total: dict[str, float], p: dict[str, Any]) -> None:
    point = p["point"]
    if p["kind"] == "sum":
        total["sum"] += point.as_int if point.WhichOneof("value") == "as_int" else point.as_double
        total["count"] += 1
    else:
        total["sum"] += point.sum
        total["count"] += point.count


def attributes(pairs: Any) -> dict[str, Any]:
    return {kv.key: getattr(kv.value, kv.value.WhichOneof("value")) for kv in pairs}


@pytest.fixture
def collector() -> Iterator[Collector]:
    with running() as receiver:
        yield Collector(receiver)


def metered(db_path: Any, destination: OpenTelemetry) -> Meter:
    meter = Meter(db_path, deliver_to=[destination])
    assert meter.delivery is not None
    meter.delivery.policy = FAST
    return meter


def traffic(meter: Meter) -> list[UsageEvent]:
    """Chat calls with cache hits and reasoning for two customers, a failed call, an embedding and Anthropic messages
    with cache writes: every event the call made, as committed."""
    openai = SimulatedOpenAI(reply_words=5, cached_tokens=4, reasoning_tokens=3)
    client = meter.wrap(openai.client(max_retries=0))
    claude = meter.wrap(SimulatedAnthropic(reply_words=4, cached_tokens=6, cache_write_tokens=5).client())
    with meter.context(customer_id="cus_a", feature="support", user_id="u_1"):
        for _ in range(3):
            client.chat.completions.create(**ASK)
        client.embeddings.create(model="text-embedding-3-small", input="where is my order")
        openai.fail_next(1, 400)
        with pytest.raises(Exception, match="400"):
            client.chat.completions.create(**ASK)
    with meter.context(customer_id="cus_b", feature="search"):
        client.chat.completions.create(**ASK)
        claude.messages.create(model=current_claude(), max_tokens=64,
                               messages=[{"role": "user", "content": "Summarise my order history"}])
    meter.sink.flush()
    return list(meter.sink.events())


def test_events_arrive_as_the_current_genai_metrics(db_path, collector):
    meter = metered(db_path, OpenTelemetry(collector.url, resource={"service.name": "shop"}))
    events = traffic(meter)
    assert meter.flush(timeout=30)
    assert len(events) == 7 and {e.status for e in events} == {"ok", "error"}
    first = collector.stored[0]
    assert first.path == "/v1/metrics" and first.headers["content-type"] == "application/x-protobuf"
    points = collector.points()
    assert {p["scope"] for p in points} == {"metricaos_sdk"}
    assert {p["resource"]["service.name"] for p in points} == {"shop"}
    names = {p["name"] for p in points}
    assert names >= {*COUNTERS, "gen_ai.client.inference.duration", "gen_ai.client.inference.operation.input_tokens",
                     "gen_ai.client.inference.operation.output_tokens", "gen_ai.client.embeddings.duration",
                     "gen_ai.client.embeddings.operation.input_tokens", "gen_ai.client.operation.cost"}
    assert not names & {"gen_ai.client.token.usage", "gen_ai.client.operation.duration"}
    keys = {k for p in points for k in p["attributes"]}
    assert "gen_ai.system" not in keys and "metricaos.user.id" not in keys  # deprecated; opt-in only
    units = {p["name"]: p["unit"] for p in points}
    assert units[f"{USAGE}.input_tokens"] == "{token}" and units["gen_ai.client.inference.duration"] == "s"
    assert units["gen_ai.client.operation.cost"] == "{USD}"
    assert {p["kind"] for p in points if p["name"] in COUNTERS} == {"sum"}

    inference = [e for e in events if e.event_type != "embedding"]
    for name, field in COUNTERS.items():  # every token type: per provider and customer, as the events say
        for provider, otel_name in (("openai", "openai"), ("anthropic", "anthropic")):
            for customer in ("cus_a", "cus_b"):
                expected = sum(getattr(e, field) for e in inference if e.provider == provider
                               and e.customer_id == customer)
                assert collector.total(name, **{"gen_ai.provider.name": otel_name,
                                                "metricaos.customer.id": customer}) == expected, (name, customer)
    for name, field in COUNTERS.items():  # and in all; each token type occurs (Anthropic's cache writes included)
        assert collector.total(name) == sum(getattr(e, field) for e in inference) > 0, name
    chat = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4.1-mini",
            "gen_ai.token.modality": "unknown", "metricaos.customer.id": "cus_a", "metricaos.feature": "support"}
    [(name, attrs)] = [k for k in collector.series() if k[0] == f"{USAGE}.input_tokens" and chat.items() <= dict(k[1])
                       .items() and "gen_ai.response.model" in dict(k[1])]
    assert dict(attrs)["gen_ai.response.model"].startswith("gpt-4.1-mini")

    assert collector.total("gen_ai.client.inference.duration", "count") == len(inference)
    seconds = sum(e.duration_ms for e in inference) / 1000
    assert math.isclose(collector.total("gen_ai.client.inference.duration"), seconds, rel_tol=1e-9)
    [failed] = [e for e in events if e.status == "error"]
    assert collector.total("gen_ai.client.inference.duration", "count", **{"error.type": failed.error_type}) == 1
    assert collector.total("gen_ai.client.inference.operation.input_tokens", "count") == len(inference)
    assert collector.total("gen_ai.client.inference.operation.output_tokens") == sum(e.output_tokens for e in inference)
    [embedding] = [e for e in events if e.event_type == "embedding"]
    assert collector.total("gen_ai.client.embeddings.operation.input_tokens",
                           **{"gen_ai.operation.name": "embeddings"}) == embedding.input_tokens > 0
    assert collector.total("gen_ai.client.embeddings.duration", "count") == 1

    priced = [e for e in events if e.cost_usd is not None]
    assert priced and {p["attributes"]["gen_ai.usage.cost.currency"] for p in points
                       if p["name"] == "gen_ai.client.operation.cost"} == {"USD"}
    exact = sum((e.cost_usd for e in priced), Decimal(0))
    assert math.isclose(collector.total("gen_ai.client.operation.cost"), float(exact), rel_tol=1e-12)
    assert collector.total("gen_ai.client.operation.cost", "count") == len(priced)
    meter.close()


def test_one_call_s_cost_is_its_exact_cost(db_path, collector):
    meter = metered(db_path, OpenTelemetry(collector.url))
    client = meter.wrap(SimulatedOpenAI(reply_words=7).client())
    for customer in ("cus_1", "cus_2", "cus_3"):  # one call per series: each point is one call's cost
        with meter.context(customer_id=customer):
            client.chat.completions.create(**ASK)
    assert meter.flush(timeout=30)
    for event in meter.sink.events():
        assert event.cost_usd is not None and event.cost_usd > 0
        [point] = [p["point"] for p in collector.points() if p["name"] == "gen_ai.client.operation.cost"
                   and p["attributes"]["metricaos.customer.id"] == event.customer_id][-1:]
        assert point.count == 1 and Decimal(repr(point.sum)) == event.cost_usd
        assert point.min == point.max == point.sum
    meter.close()


def test_the_v1_41_shape_for_dashboards_that_still_query_it(db_path, collector):
    meter = metered(db_path, OpenTelemetry(collector.url, conventions="v1.41", name="otel-v1.41"))
    events = traffic(meter)
    assert meter.flush(timeout=30)
    names = {p["name"] for p in collector.points()}
    assert names == {"gen_ai.client.token.usage", "gen_ai.client.operation.duration", "gen_ai.client.operation.cost"}
    counted = [e for e in events if e.usage_status in ("reported", "estimated")]
    for token_type, field in (("input", "input_tokens"), ("output", "output_tokens")):
        assert collector.total("gen_ai.client.token.usage", **{"gen_ai.token.type": token_type}) == sum(
            getattr(e, field) for e in counted)
    types = {p["attributes"]["gen_ai.token.type"] for p in collector.points()
             if p["name"] == "gen_ai.client.token.usage"}
    assert types == {"input", "output"}  # cached and reasoning are subsets: a type of their own would count twice
    assert collector.total("gen_ai.client.operation.duration", "count") == len(events)
    meter.close()


def test_with_the_sdk_disabled_events_are_skipped_not_queued(db_path, collector, monkeypatch):
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")  # read by the SDK, as every OTEL_* variable
    meter = metered(db_path, OpenTelemetry(collector.url))
    client = meter.wrap(SimulatedOpenAI(reply_words=2).client())
    client.chat.completions.create(**ASK)
    assert meter.flush(timeout=30)
    [status] = meter.health().deliveries
    assert (status.skipped, status.queued, status.delivered) == (1, 0, 0) and not collector.receiver.requests
    meter.close()


@pytest.mark.parametrize("temporality", ["cumulative", "delta"])
def test_a_receiver_answering_503_gets_every_event_counted_once_when_it_recovers(db_path, collector, temporality):
    collector.receiver.script = [Answer(503), Answer(503), Answer(503)]
    meter = metered(db_path, OpenTelemetry(collector.url, timeout=2.0, temporality=temporality))
    events = traffic(meter)
    assert meter.flush(timeout=30)
    [status] = meter.health().deliveries
    # Who retried depends on the SDK release (older OTLP exporters retry a 503 themselves, newer ones leave it to
    # the delivery worker); what matters is that the 503s were answered, nothing stored twice, nothing left.
    assert status.delivered == len(events) and status.queued == 0 and status.failed == 0
    assert len(collector.receiver.requests) > len(collector.stored)  # the 503s were answered and not stored
    wanted = {CUMULATIVE if temporality == "cumulative" else DELTA}
    assert {p["temporality"] for p in collector.points() if p["kind"] == "sum"} == wanted
    for name, field in COUNTERS.items():
        assert collector.total(name) == sum(getattr(e, field) for e in events if e.event_type != "embedding")
    meter.close()


@pytest.mark.parametrize(("temporality", "times"), [("cumulative", 1), ("delta", 2)])
def test_an_export_that_arrived_but_was_answered_as_failed(db_path, collector, temporality, times):
    """What the module docstring says: metrics cannot be deduplicated. Cumulative totals sent again are the same
    totals; a delta sent again is counted again."""
    lost_answer: list[Received] = []

    def arrived_then_503(request: Received) -> Answer:
        if not lost_answer:
            lost_answer.append(request)
            collector.stored.append(request)  # the receiver kept it; the client saw a failure
            return Answer(503)
        return collector._store(request)

    collector.receiver.decide = arrived_then_503
    meter = metered(db_path, OpenTelemetry(collector.url, timeout=2.0, temporality=temporality))
    client = meter.wrap(SimulatedOpenAI(reply_words=5).client())
    client.chat.completions.create(**ASK)
    assert meter.flush(timeout=30)
    [event] = meter.sink.events()
    assert collector.total(f"{USAGE}.input_tokens") == times * event.input_tokens
    meter.close()


def test_headers_and_attribution_are_configurable_and_the_headers_never_shown(db_path, collector):
    destination = OpenTelemetry(collector.url, headers={"x-api-key": "key-CANARY-1"}, attribution=["user_id"],
                              tags=["team"])
    meter = metered(db_path, destination)
    client = meter.wrap(SimulatedOpenAI(reply_words=2).client())
    with meter.context(customer_id="cus_a", user_id="u_9", tags={"team": "growth", "secret": "x"}):
        client.chat.completions.create(**ASK)
    assert meter.flush(timeout=30)
    assert collector.stored[0].headers["x-api-key"] == "key-CANARY-1"
    [attrs] = {frozenset(p["attributes"].items()) for p in collector.points() if p["name"] == f"{USAGE}.input_tokens"}
    assert {k: v for k, v in attrs if k.startswith("metricaos.")} == {"metricaos.user.id": "u_9",
                                                                      "metricaos.tag.team": "growth"}
    assert "CANARY" not in repr(destination)
    meter.close()


@pytest.mark.parametrize(("provider", "name"), [("anthropic_foundry", "anthropic"), ("anthropic_aws", "anthropic"),
                                                 ("anthropic_google_cloud", "anthropic"), ("vertex", "gcp.vertex_ai"),
                                                 ("openai-compatible", "openai-compatible")])
def test_provider_names_follow_the_registry(provider, name):
    from datetime import datetime, timezone

    event = UsageEvent(timestamp=datetime.now(timezone.utc), event_type="message", provider=provider,
                       model="claude-x", endpoint="/v1/messages", input_tokens=3, total_tokens=3)
    assert {m.attributes["gen_ai.provider.name"] for m in measurements(event)} == {name}


def test_measurements_is_a_pure_function_of_the_event():
    from datetime import datetime, timezone

    event = UsageEvent(timestamp=datetime.now(timezone.utc), event_type="message", provider="bedrock",
                       model="claude-x", requested_model="claude-x", endpoint="/v1/messages", status="error",
                       http_status=529, usage_status="none", duration_ms=250.0)
    found = {m.name: m for m in measurements(event)}
    assert "gen_ai.client.operation.cost" not in found  # unpriced: unknown, not zero
    duration = found["gen_ai.client.inference.duration"]
    assert duration.value == 0.25 and duration.attributes["error.type"] == "529"
    assert duration.attributes["gen_ai.provider.name"] == "aws.bedrock"
    assert "gen_ai.response.model" not in duration.attributes  # the provider never said which model answered
    counted = found[f"{USAGE}.input_tokens"]
    assert counted.value == 0 and "error.type" not in counted.attributes
    assert counted.attributes["metricaos.usage.status"] == "none"
    assert [m.name for m in measurements(event, conventions="v1.41")] == ["gen_ai.client.operation.duration"]
    with pytest.raises(ValueError, match="attribution"):
        OpenTelemetry("http://127.0.0.1:9/v1/metrics", attribution=["prompt"])


def test_importing_the_delivery_package_does_not_import_opentelemetry():
    code = ("import sys; import metricaos_sdk, metricaos_sdk.delivery as d; "
            "assert not [m for m in sys.modules if m.startswith('opentelemetry')], 'imported too early'; "
            "assert d.OpenTelemetry.__module__ == 'metricaos_sdk.delivery.otel'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_delivery_file_names_it_otel(collector):
    from metricaos_sdk.delivery.settings import destinations_from

    [destination] = destinations_from([{"kind": "otel", "endpoint": collector.url, "conventions": "v1.41",
                                        "attribution": ["customer_id"], "resource": {"service.name": "shop"}}])
    assert isinstance(destination, OpenTelemetry) and destination.conventions == "v1.41"
    destination.close()
