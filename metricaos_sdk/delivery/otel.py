"""The OpenTelemetry destination: GenAI semantic-convention metrics over OTLP, for dashboards — not for billing.

Needs the ``otel`` extra (``pip install 'metricaos-sdk[otel]'``: ``opentelemetry-sdk`` and the OTLP/HTTP exporter).
Each delivered :class:`~metricaos_sdk.UsageEvent` is recorded on instruments of a ``MeterProvider`` of this
destination's own (never the global one, so the host's telemetry set-up is untouched and untouching), whose only
reader exports when :meth:`OpenTelemetry.deliver` collects it: a batch is recorded, exported at once, and is a
delivery only when the exporter says the export succeeded; any failure is a retry.

What is recorded (``conventions="latest"``, the default). The GenAI conventions moved out of
open-telemetry/semantic-conventions (#3696) to open-telemetry/semantic-conventions-genai, where they are in
Development and changed after v1.41.0, the last release there
(``docs/gen-ai/non-normative/migration.md``: ``gen_ai.client.token.usage`` removed in #374, inference duration
renamed in #521, ``cache_creation`` renamed ``cache_write`` in #440):

- inference calls (every event type but embeddings), ``docs/gen-ai/client-inference.md``,
  ``docs/gen-ai/gen-ai-token-metrics.md``: ``gen_ai.client.inference.duration`` (histogram, ``s``, from
  ``duration_ms``); counters (``{token}``) ``gen_ai.client.inference.usage.input_tokens``, ``.output_tokens``,
  ``.cache_read.input_tokens``, ``.cache_write.input_tokens``, ``.reasoning.output_tokens`` — our inclusive buckets,
  the last three subsets of the first two, as the conventions define them — each with ``gen_ai.token.modality``
  ``unknown`` (we do not split by modality); histograms ``gen_ai.client.inference.operation.input_tokens`` and
  ``.output_tokens`` (per-call distributions: percentiles, not totals). Recorded for failed calls too (0 without
  usage), as the conventions ask.
- embeddings, ``docs/gen-ai/client-embeddings.md`` (the newest definition found; an older snapshot kept them on
  ``gen_ai.client.operation.duration``): ``gen_ai.client.embeddings.duration`` and
  ``gen_ai.client.embeddings.operation.input_tokens``.

``conventions="v1.41"`` records what v1.41.0 (``docs/gen-ai/gen-ai-metrics.md``) defined, which many dashboards
still query: ``gen_ai.client.operation.duration`` and ``gen_ai.client.token.usage`` (histogram, ``{token}``) with
``gen_ai.token.type`` ``input`` or ``output`` — its only values: cache and reasoning tokens are subsets of those, so
a type of their own would be counted twice by every sum over types; calls without usage are not recorded there.
Two destinations (two names) can send both shapes to one collector while dashboards move.

Attributes: ``gen_ai.operation.name`` (``chat`` for chat completions, Responses and Anthropic messages,
``text_completion``, ``embeddings``; other event types as they are), ``gen_ai.provider.name`` (``openai``,
``anthropic``, ``azure.ai.openai``, ``aws.bedrock``, ``gcp.vertex_ai``; it replaces the deprecated
``gen_ai.system``), ``gen_ai.request.model``, ``gen_ai.response.model`` (when the provider answered),
``openai.response.service_tier`` (OpenAI's refinement), ``error.type`` on failed calls (the error's type, else the
HTTP status, else ``_OTHER``) on durations and per-call histograms, and ``server.address`` (the host the call was
sent to, without its port) on events that carry one. OpenAI-compatible providers keep their own names (``deepseek``,
``groq``, ``mistral_ai``, ``x_ai``, ``gcp.gemini``: the spec's; ``openrouter``, ``ollama`` …: ours).

Cost, NOT yet a convention: ``gen_ai.client.operation.cost`` (histogram, ``{USD}``) with
``gen_ai.usage.cost.currency`` ``USD`` and ``gen_ai.usage.cost.source`` ``local`` (priced here, from our rate
table), the names proposed by open-telemetry/semantic-conventions-genai#443 (open) for issue #287; they may change
before they land. Only priced calls record it (unknown is not zero). The value is ``float(cost_usd)``, the nearest
double: one call's value reads back as its exact decimal cost (up to 15 significant digits); sums are float sums.

Attribution, under the ``metricaos.`` prefix (ours, not a convention): ``metricaos.customer.id``,
``metricaos.workspace.id``, ``metricaos.feature``, ``metricaos.environment`` by default; ``metricaos.user.id`` and
``metricaos.tag.<key>`` only when asked for (``attribution=``, ``tags=``); ``metricaos.usage.status`` marks
estimated or invalid usage. Mind cardinality: every distinct combination of attribute values is a time series in
this process and in the backend (customers × models × operations × …). The SDK keeps at most 2,000 series per
instrument (``cardinality_limit``) and folds the rest into one ``otel.metric.overflow=true`` series; per-user or
per-customer totals at scale belong in the billing destinations or ``metricaos`` reports, not here.

Delivery semantics, honestly: metrics are aggregates, not events. They carry no event id a receiver could
deduplicate on, so the outbox's at-least-once stays at-least-once here, never exactly once. Nothing is lost (a failed
export is a retry); what may count twice depends on the temporality (the SDK's default is CUMULATIVE;
``OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE``, read by the exporter, or ``temporality=`` choose):

- DELTA: an export carries what was recorded since the previous one; a failed export's data is dropped by the SDK
  and the batch is recorded again on retry. If the failed export did arrive (the answer was lost, a timeout), the
  batch is counted twice.
- CUMULATIVE: an export carries running totals since this destination started; a retry re-exports the totals
  without recording the batch again, so an export that arrived but failed is not counted twice by this process. A
  new process starts new series (a reset, which backends handle), and a batch exported just before a crash, before
  its cursor moved, is recorded again there: counted twice.

Fine for dashboards and alerts; wrong for invoices. Bill from the billing destinations, whose receivers deduplicate
on ``event.id``.

The exporter is the SDK's (its endpoint, headers, timeout, TLS and compression default to the standard
``OTEL_EXPORTER_OTLP_*`` variables, read by the SDK, never by us), or any SDK ``MetricExporter`` you pass (gRPC …).
With the SDK disabled (``OTEL_SDK_DISABLED=true``) events are skipped, not queued.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from .._version import __version__
from ..errors import ConfigurationError
from ..events import UsageEvent
from ..faults import describe, safe_url
from .destination import Result

try:
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.metrics import Counter as CounterInstrument
    from opentelemetry.metrics import Histogram as HistogramInstrument
    from opentelemetry.metrics import NoOpMeter
    from opentelemetry.sdk.metrics import Counter, Histogram, MeterProvider
    from opentelemetry.sdk.metrics.export import (
        AggregationTemporality,
        MetricExporter,
        MetricExportResult,
        MetricReader,
        MetricsData,
    )
    from opentelemetry.sdk.resources import Resource
except ImportError as exc:  # pragma: no cover - exercised by the skip in tests/test_delivery_otel.py
    raise ImportError("metricaos_sdk.delivery.otel needs the otel extra: pip install 'metricaos-sdk[otel]' "
                      f"(opentelemetry-sdk and opentelemetry-exporter-otlp-proto-http); {exc}") from exc

__all__ = ["DEFAULT_ATTRIBUTION", "INSTRUMENTS", "Instrument", "Measurement", "OpenTelemetry", "measurements"]

Conventions = Literal["latest", "v1.41"]
AttributeValue = str | int


@dataclass(frozen=True, slots=True)
class Instrument:
    """One metric: its name, kind, unit, description and histogram bucket advice (the conventions')."""

    name: str
    kind: Literal["counter", "histogram"]
    unit: str
    description: str
    buckets: tuple[float, ...] | None = None


@dataclass(frozen=True, slots=True)
class Measurement:
    """One value to record on the instrument ``name``, with its attributes."""

    name: str
    value: float
    attributes: Mapping[str, AttributeValue]


_SECONDS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)
_TOKENS = (1.0, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864)
_DOLLARS = (0.00001, 0.0001, 0.001, 0.01, 0.1, 1.0, 10.0, 100.0)  # ours: the proposal names no buckets
_USAGE = "gen_ai.client.inference.usage"
_FLUSH_MILLIS = 60_000.0
INSTRUMENTS: dict[str, Instrument] = {i.name: i for i in (
    Instrument("gen_ai.client.inference.duration", "histogram", "s", "GenAI client inference operation duration.",
               _SECONDS),
    Instrument(f"{_USAGE}.input_tokens", "counter", "{token}", "The number of input (prompt) tokens used, "
               "including cached tokens."),
    Instrument(f"{_USAGE}.output_tokens", "counter", "{token}", "The number of output (completion) tokens used, "
               "including reasoning tokens."),
    Instrument(f"{_USAGE}.cache_read.input_tokens", "counter", "{token}", "The number of input tokens served from "
               "a provider-managed cache."),
    Instrument(f"{_USAGE}.cache_write.input_tokens", "counter", "{token}", "The number of input tokens written to a "
               "provider-managed cache."),
    Instrument(f"{_USAGE}.reasoning.output_tokens", "counter", "{token}", "The number of output tokens used for "
               "reasoning."),
    Instrument("gen_ai.client.inference.operation.input_tokens", "histogram", "{token}", "The number of input "
               "(prompt) tokens used per inference operation.", _TOKENS),
    Instrument("gen_ai.client.inference.operation.output_tokens", "histogram", "{token}", "The number of output "
               "(completion) tokens used per inference operation.", _TOKENS),
    Instrument("gen_ai.client.embeddings.duration", "histogram", "s", "GenAI client embeddings operation duration.",
               _SECONDS),
    Instrument("gen_ai.client.embeddings.operation.input_tokens", "histogram", "{token}", "The number of input "
               "tokens used per embeddings operation.", _TOKENS),
    Instrument("gen_ai.client.operation.duration", "histogram", "s", "GenAI operation duration.", _SECONDS),
    Instrument("gen_ai.client.token.usage", "histogram", "{token}", "Number of input and output tokens used.",
               _TOKENS),
    Instrument("gen_ai.client.operation.cost", "histogram", "{USD}", "Cost of the GenAI operation (proposed "
               "convention, not yet standard).", _DOLLARS),
)}

_OPERATIONS = {"chat_completion": "chat", "response": "chat", "message": "chat", "completion": "text_completion",
               "embedding": "embeddings"}
_PROVIDERS = {"azure_openai": "azure.ai.openai", "bedrock": "aws.bedrock", "vertex": "gcp.vertex_ai",
              # Claude run by Anthropic on another cloud's marketplace: the registry has no name of its own for
              # these, and the anthropic SDK's own tracing calls them "anthropic" (its platform attribute says which).
              "anthropic_foundry": "anthropic", "anthropic_aws": "anthropic", "anthropic_google_cloud": "anthropic"}
_ATTRIBUTION = {"customer_id": "metricaos.customer.id", "workspace_id": "metricaos.workspace.id",
                "user_id": "metricaos.user.id", "feature": "metricaos.feature", "environment": "metricaos.environment"}
DEFAULT_ATTRIBUTION = ("customer_id", "workspace_id", "feature", "environment")
"""The event fields sent as attributes by default; ``user_id`` is left out for its cardinality."""


def _common(event: UsageEvent, attribution: Collection[str], tags: Collection[str]) -> dict[str, AttributeValue]:
    attributes: dict[str, AttributeValue] = {
        "gen_ai.operation.name": _OPERATIONS.get(event.event_type, event.event_type),
        "gen_ai.provider.name": _PROVIDERS.get(event.provider, event.provider),
    }
    requested = event.requested_model or event.model
    if requested:
        attributes["gen_ai.request.model"] = requested
    if event.model and (event.status == "ok" or event.model != requested):  # the provider named it
        attributes["gen_ai.response.model"] = event.model
    if event.provider == "openai" and event.service_tier:
        attributes["openai.response.service_tier"] = event.service_tier
    if event.server_address:  # server.port is its own attribute in the spec: the address is the host alone
        attributes["server.address"] = event.server_address.rpartition(":")[0] \
            if event.server_address.rpartition(":")[2].isdigit() else event.server_address
    for name in attribution:
        value = getattr(event, name)
        if value is not None:
            attributes[_ATTRIBUTION[name]] = value
    for key in tags:
        if key in event.tags:
            attributes[f"metricaos.tag.{key}"] = event.tags[key]
    return attributes


def _error_type(event: UsageEvent) -> str | None:
    if event.status != "error":
        return None
    return event.error_type or (str(event.http_status) if event.http_status else "_OTHER")


def measurements(event: UsageEvent, *, conventions: Conventions = "latest",
                 attribution: Collection[str] = DEFAULT_ATTRIBUTION, tags: Collection[str] = ()) -> list[Measurement]:
    """What ``event`` records, in the shape ``conventions`` names (see the module docstring). Pure: no I/O, no SDK."""
    base = _common(event, attribution, tags)
    error = _error_type(event)
    failed = {**base, "error.type": error} if error else base
    usage = {**base, "metricaos.usage.status": event.usage_status} if event.usage_status != "reported" else base
    usage_failed = {**usage, "error.type": error} if error else usage
    seconds = max(event.duration_ms, 0.0) / 1000.0
    embeddings = base["gen_ai.operation.name"] == "embeddings"
    out: list[Measurement] = []
    if conventions == "latest" and embeddings:
        out += [Measurement("gen_ai.client.embeddings.duration", seconds, failed),
                Measurement("gen_ai.client.embeddings.operation.input_tokens", event.input_tokens, usage_failed)]
    elif conventions == "latest":
        counted = {**usage, "gen_ai.token.modality": "unknown"}
        out += [Measurement("gen_ai.client.inference.duration", seconds, failed),
                Measurement(f"{_USAGE}.input_tokens", event.input_tokens, counted),
                Measurement(f"{_USAGE}.output_tokens", event.output_tokens, counted),
                Measurement(f"{_USAGE}.cache_read.input_tokens", event.cached_input_tokens, counted),
                Measurement(f"{_USAGE}.cache_write.input_tokens", event.cache_write_tokens, counted),
                Measurement(f"{_USAGE}.reasoning.output_tokens", event.reasoning_tokens, counted),
                Measurement("gen_ai.client.inference.operation.input_tokens", event.input_tokens, usage_failed),
                Measurement("gen_ai.client.inference.operation.output_tokens", event.output_tokens, usage_failed)]
    elif conventions == "v1.41":
        out.append(Measurement("gen_ai.client.operation.duration", seconds, failed))
        if event.usage_status in ("reported", "estimated"):  # v1.41: no usage metric without the counts
            out.append(Measurement("gen_ai.client.token.usage", event.input_tokens,
                                   {**usage, "gen_ai.token.type": "input"}))
            if not embeddings:
                out.append(Measurement("gen_ai.client.token.usage", event.output_tokens,
                                       {**usage, "gen_ai.token.type": "output"}))
    else:
        raise ValueError(f"conventions must be 'latest' or 'v1.41', not {conventions!r}")
    if event.cost_usd is not None:
        out.append(Measurement("gen_ai.client.operation.cost", float(event.cost_usd),
                               {**usage_failed, "gen_ai.usage.cost.currency": "USD",
                                "gen_ai.usage.cost.source": "local"}))
    return out


_NOT_MODEL_CALLS = frozenset({"action", "usage", "outcome"})
"""Events of the business layer (actions, custom usage, outcomes): their calls are recorded, they are not."""


class _ExportWhenCollected(MetricReader):
    """The destination's only reader: exports what each collection gathered and keeps the exporter's answer."""

    def __init__(self, exporter: MetricExporter, temporality: dict[type, AggregationTemporality],
                 cardinality_limit: int) -> None:
        limits: dict[str, Any] = {}
        if "cardinality_limits" in inspect.signature(MetricReader.__init__).parameters:
            # OpenTelemetry SDK 1.45+; older ones keep their own fixed limit of 2,000 series per instrument.
            limits["cardinality_limits"] = {Counter: cardinality_limit, Histogram: cardinality_limit}
        super().__init__(preferred_temporality=temporality, preferred_aggregation=exporter._preferred_aggregation,
                         **limits)
        self.exporter = exporter
        self.outcome: MetricExportResult | None = None
        self.error: BaseException | None = None

    def _receive_metrics(self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any) -> None:
        try:
            self.outcome = self.exporter.export(metrics_data, timeout_millis=timeout_millis)
        except Exception as exc:  # an exporter that raises is a failed export, retried
            self.outcome, self.error = MetricExportResult.FAILURE, exc

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        self.exporter.shutdown(timeout_millis=timeout_millis)


class OpenTelemetry:
    """Record delivered events as GenAI metrics and export them over OTLP (HTTP/protobuf unless ``exporter``).

    ``endpoint`` is the full metrics URL (``http://collector:4318/v1/metrics``); ``endpoint``, ``headers`` and
    ``timeout`` left ``None`` fall back to the SDK's ``OTEL_EXPORTER_OTLP_*`` handling. ``temporality`` overrides the
    exporter's preference for counters and histograms. ``resource`` attributes are merged by the SDK with
    ``OTEL_RESOURCE_ATTRIBUTES``/``OTEL_SERVICE_NAME``.
    """

    def __init__(self, endpoint: str | None = None, *, headers: Mapping[str, str] | None = None,
                 timeout: float | None = None, name: str = "otel", max_batch: int = 1000,
                 conventions: Conventions = "latest", attribution: Collection[str] = DEFAULT_ATTRIBUTION,
                 tags: Collection[str] = (), resource: Mapping[str, str] | None = None,
                 temporality: Literal["cumulative", "delta"] | None = None, cardinality_limit: int = 2000,
                 exporter: MetricExporter | None = None) -> None:
        if conventions not in ("latest", "v1.41"):
            raise ConfigurationError(f"conventions={conventions!r} is not one we know: use 'latest' or 'v1.41'.")
        unknown = [a for a in attribution if a not in _ATTRIBUTION]
        if unknown:
            raise ConfigurationError(f"attribution names event fields; {unknown} are not among {sorted(_ATTRIBUTION)}.")
        self.name = name
        self.max_batch = max_batch
        self.endpoint = endpoint
        self.conventions: Conventions = conventions
        self.attribution = tuple(attribution)
        self.tags = tuple(tags)
        if exporter is None:
            exporter = OTLPMetricExporter(endpoint=endpoint, headers=dict(headers) if headers else None,
                                          timeout=timeout)
        preferred = dict(exporter._preferred_temporality or {})  # the exporter's, from the SDK's env handling
        if temporality is not None:
            chosen = AggregationTemporality.DELTA if temporality == "delta" else AggregationTemporality.CUMULATIVE
            preferred.update({Counter: chosen, Histogram: chosen})
        cumulative = AggregationTemporality.CUMULATIVE
        self._cumulative = {"counter": preferred.get(Counter, cumulative) == cumulative,
                            "histogram": preferred.get(Histogram, cumulative) == cumulative}
        self._reader = _ExportWhenCollected(exporter, preferred, cardinality_limit)
        self._provider = MeterProvider(metric_readers=[self._reader], resource=Resource.create(dict(resource or {})),
                                       shutdown_on_exit=False)
        meter = self._provider.get_meter("metricaos_sdk", __version__)
        self._disabled = isinstance(meter, NoOpMeter)  # OTEL_SDK_DISABLED=true, as the SDK read it
        self._counters: dict[str, CounterInstrument] = {}
        self._histograms: dict[str, HistogramInstrument] = {}
        for spec in INSTRUMENTS.values():
            if spec.kind == "counter":
                self._counters[spec.name] = meter.create_counter(spec.name, unit=spec.unit,
                                                                 description=spec.description)
            else:
                self._histograms[spec.name] = meter.create_histogram(
                    spec.name, unit=spec.unit, description=spec.description,
                    explicit_bucket_boundaries_advisory=list(spec.buckets) if spec.buckets else None)
        self._held: set[str] = set()
        """Events recorded on cumulative instruments and not yet exported: a retry must not record them again."""
        self._lock = threading.Lock()
        self._closed = False

    def accepts(self, event: UsageEvent) -> str | None:
        if self._disabled:
            return "the OpenTelemetry SDK is disabled (OTEL_SDK_DISABLED)"
        if event.event_type in _NOT_MODEL_CALLS:
            return f"not a model call ({event.event_type}): the GenAI metrics describe model calls"
        return None

    def deliver(self, events: Sequence[UsageEvent]) -> Result:
        with self._lock:
            if self._closed:
                return Result.again("the OpenTelemetry destination is closed")
            for event in events:
                held = event.id in self._held
                for m in measurements(event, conventions=self.conventions, attribution=self.attribution,
                                      tags=self.tags):
                    kind = INSTRUMENTS[m.name].kind
                    if held and self._cumulative[kind]:
                        continue  # already in the running totals this process exports
                    if kind == "counter":
                        self._counters[m.name].add(m.value, attributes=m.attributes)
                    else:
                        self._histograms[m.name].record(m.value, attributes=m.attributes)
                if any(self._cumulative.values()):
                    self._held.add(event.id)
            self._reader.outcome, self._reader.error = None, None
            try:
                self._provider.force_flush(timeout_millis=_FLUSH_MILLIS)
            except Exception as exc:
                return Result.again(f"the OpenTelemetry SDK could not collect the metrics ({describe(exc)})")
            if self._reader.outcome is MetricExportResult.SUCCESS:
                self._held.clear()
                return Result.ok()
            where = f" to {safe_url(self.endpoint)}" if self.endpoint else ""
            why = f" ({describe(self._reader.error)})" if self._reader.error else " (the exporter logged why)"
            return Result.again(f"the OTLP metrics export{where} failed{why}")

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._provider.shutdown()

    def __repr__(self) -> str:  # never the headers (they carry the credentials), nor credentials in the URL
        endpoint = safe_url(self.endpoint) if self.endpoint else None
        return f"OpenTelemetry({endpoint!r}, name={self.name!r}, conventions={self.conventions!r})"
