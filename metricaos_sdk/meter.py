"""Meter: wires attribution, quotas, pricing and the sink around wrapped provider clients."""

from __future__ import annotations

import atexit
import logging
import os
import threading
import weakref
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, TypeVar

from ._version import __version__
from .config import MeterConfig
from .context import Attribution, AttributionScope, current_attribution
from .errors import ConfigurationError, QuotaExceeded
from .events import UsageEvent
from .pricing import RateTable
from .providers.estimate import estimate_input_tokens
from .quota import InMemoryQuotaStore, Quota, QuotaStore, check_quotas, period_bounds, quota_status
from .quota.sqlite import SQLiteQuotaStore
from .reports import UsageSummary, summarize
from .sinks import EventQuery, Sink, SQLiteSink
from .storage.database import Database
from .usage import Usage
from .wrappers.call import MeteredCall
from .wrappers.clients import SUPPORTED, ClientKind, client_kind
from .wrappers.hooks import instrument
from .wrappers.transport import install_transport

__all__ = ["Meter"]

log = logging.getLogger("metricaos_sdk")
C = TypeVar("C")
_warned_unpriced: set[tuple[str, str | None]] = set()
# Bedrock bills the model id or inference profile that was invoked (``global.`` and regional profiles have
# different prices), while its response names only Anthropic's model: price what was invoked.
_PRICED_AS_INVOKED = frozenset({"bedrock"})


class Meter:
    """Meters every LLM call of the clients it wraps.

    ``Meter("metricaos.db")`` records into a local SQLite file (events, quotas and the quota ledger in one
    place, shared by every process that opens it). Pass ``sink=`` to send events elsewhere; quotas then
    live in memory unless you pass ``quota_store=``.
    """

    def __init__(
        self,
        database: str | os.PathLike[str] | None = None,
        *,
        sink: Sink | None = None,
        quota_store: QuotaStore | None = None,
        rates: Any = None,
        environment: str | None = None,
        config: MeterConfig | None = None,
    ) -> None:
        if database is not None and sink is not None:
            raise ConfigurationError("Pass either a database path or sink=, not both: the path configures the default SQLite sink.")
        self.config = config or MeterConfig.from_env(
            database=os.fspath(database) if database is not None else None, environment=environment
        )
        if sink is None:
            db = Database(self.config.database, durable=self.config.durable)
            sink = SQLiteSink(db)
        if not isinstance(sink, Sink):
            raise ConfigurationError(f"sink= must have write(events), flush() and close() methods; got {type(sink).__name__}.")
        self.sink: Sink = sink
        if quota_store is None:
            quota_store = (SQLiteQuotaStore(sink.database, pending=sink.pending_usage) if isinstance(sink, SQLiteSink)
                           else InMemoryQuotaStore())
        self.quota_store: QuotaStore = quota_store
        # The SQLite sink keeps the quota ledger in the event's own transaction; other stores are fed here.
        self._feed_quota_store = not (isinstance(sink, SQLiteSink) and isinstance(quota_store, SQLiteQuotaStore))
        self.rates: RateTable = RateTable.coerce(rates)
        self.faults = 0
        """How many metering faults were logged and swallowed (never raised into a call)."""
        self._open_calls: set[MeteredCall] = set()
        self._lock = threading.Lock()
        self._closed = False
        ref = weakref.ref(self)
        atexit.register(lambda: (m := ref()) is not None and m.close())

    # -- public API ---------------------------------------------------------------------------------
    def wrap(self, client: C) -> C:
        """Meter ``client`` in place and return it (the same object: ``isinstance`` and types hold).

        Supported: ``openai.OpenAI``, ``openai.AsyncOpenAI`` and their Azure variants; ``anthropic.Anthropic``,
        ``anthropic.AsyncAnthropic`` and their Bedrock and Vertex variants. Copies made with
        ``client.with_options()`` / ``client.copy()`` are metered too.
        """
        kind = client_kind(client)
        if kind is None:
            raise TypeError(f"meter.wrap() supports {SUPPORTED}; got {type(client).__module__}.{type(client).__qualname__}.")
        if not self.config.enabled:
            return client
        if not install_transport(client._client):
            log.warning(
                "metricaos_sdk: %s uses a %s HTTP client, not httpx2; it is left unmetered. "
                "Pass an httpx2 client (or none) to meter it.", type(client).__name__, type(client._client).__name__,
            )
            return client
        instrument(client, self, kind)
        return client

    def context(self, *, customer_id: str | None = None, user_id: str | None = None, workspace_id: str | None = None,
                feature: str | None = None, environment: str | None = None, tags: Mapping[str, str] | None = None) -> AttributionScope:
        """Attribute every call inside a ``with`` / ``async with`` block (or a decorated function)."""
        return AttributionScope(Attribution(customer_id, user_id, workspace_id, feature, environment, dict(tags or {})))

    def track(self, feature: str | None = None, *, customer_id: str | None = None, user_id: str | None = None,
              workspace_id: str | None = None, environment: str | None = None, tags: Mapping[str, str] | None = None) -> AttributionScope:
        """Decorator (``def`` and ``async def``) attributing the calls a function makes, usually to a feature."""
        return self.context(customer_id=customer_id, user_id=user_id, workspace_id=workspace_id, feature=feature,
                            environment=environment, tags=tags)

    def set_quota(self, customer_id: str, *, tokens: int | None = None, cost_usd: Decimal | int | str | None = None,
                  requests: int | None = None, period: str = "month") -> None:
        """Set hard limits for ``customer_id`` per calendar ``period`` ("day" or "month", UTC).

        Each unit given replaces that unit's previous limit; units not given are left as they were.
        When a limit is reached, the next call raises :class:`QuotaExceeded` before any request is sent.
        """
        if tokens is None and cost_usd is None and requests is None:
            raise ConfigurationError("set_quota() needs at least one of tokens=, cost_usd= or requests=.")
        if isinstance(cost_usd, float):
            raise ConfigurationError("cost_usd= must be a Decimal, int or str, not a float (money is never a binary float).")
        limits = [("tokens", tokens), ("cost_usd", Decimal(cost_usd) if cost_usd is not None else None), ("requests", requests)]
        quotas = [Quota(customer_id, unit, limit, period) for unit, limit in limits if limit is not None]  # type: ignore[arg-type]
        for quota in quotas:
            self.quota_store.set_quota(quota)

    def remove_quota(self, customer_id: str) -> None:
        """Remove every limit of ``customer_id``."""
        self.quota_store.remove_quotas(customer_id)

    def usage(self, customer_id: str, *, period: str | None = None, now: datetime | None = None) -> UsageSummary:
        """The customer's usage in the current period (their quota's, else the calendar month)."""
        now = now or datetime.now(timezone.utc)
        statuses = quota_status(self.quota_store, customer_id, now)
        period = period or (statuses[0].quota.period if statuses else "month")
        bounds = period_bounds(period, now)
        events = self.events(customer_id=customer_id, since=bounds[0], until=bounds[1])
        return summarize(customer_id, period, bounds, events, statuses)

    def events(self, *, customer_id: str | None = None, since: datetime | None = None, until: datetime | None = None,
               limit: int | None = None) -> list[UsageEvent]:
        """Recorded events in time order (the sink must be readable: SQLite and memory sinks are)."""
        if not isinstance(self.sink, EventQuery):
            raise ConfigurationError(f"{type(self.sink).__name__} cannot read events back; query your collector instead.")
        return list(self.sink.events(customer_id=customer_id, since=since, until=until, limit=limit))

    def flush(self) -> None:
        """Deliver every recorded event (a no-op for the SQLite sink, whose writes are already committed)."""
        self._guard(self.sink.flush)

    def close(self) -> None:
        """Record streams still open as cancelled, flush and close the sink. Also runs at interpreter exit."""
        if self._closed:
            return
        for call in list(self._open_calls):
            self._finish_abandoned(call)
        self.flush()
        self._closed = True
        self._guard(self.sink.close)

    def __enter__(self) -> Meter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- used by the wrappers -----------------------------------------------------------------------
    def _begin_call(self, kind: ClientKind, options: Any) -> tuple[MeteredCall, Any] | None:
        """Before the SDK sends anything: None for unmetered paths; raises QuotaExceeded when exhausted."""
        endpoint = kind.endpoints.get(options.url)
        if endpoint is None or options.method.lower() != "post":
            return None
        attribution = current_attribution()
        if attribution.environment is None and self.config.environment is not None:
            attribution = attribution.merged(Attribution(environment=self.config.environment))
        if attribution.customer_id is not None:
            try:
                check_quotas(self.quota_store, attribution.customer_id, datetime.now(timezone.utc))
            except QuotaExceeded:
                raise
            except Exception:
                self._fault("quota check failed; the call is allowed")
        try:
            body = options.json_data if isinstance(options.json_data, Mapping) else None
            call = MeteredCall(self, endpoint, kind.provider, options.url, body, attribution)
            if endpoint.injects_stream_usage and call.streamed and "stream_options" not in body \
                    and "stream_options" not in (options.extra_json or {}):
                options = options.model_copy(update={"json_data": {**body, "stream_options": {"include_usage": True}}})
                call.injected_usage = True
            if call.streamed:
                with self._lock:
                    self._open_calls.add(call)
            return call, options
        except Exception:
            self._fault("could not start metering a call; it runs unmetered")
            return None

    def _finish_abandoned(self, call: MeteredCall) -> None:
        call.finish(status="cancelled")

    def _finish_call(self, call: MeteredCall, *, status: str, usage: Usage | None, problem: str | None,
                     model: str | None, response_id: str | None, service_tier: str | None,
                     content_chunks: int | None, error_type: str | None, duration_ms: float,
                     partial: Usage | None = None) -> None:
        try:
            if call.streamed:
                with self._lock:
                    self._open_calls.discard(call)
            event = self._build_event(call, status, usage, problem, model, response_id, service_tier,
                                      content_chunks, error_type, duration_ms, partial)
            self._record(event)
        except Exception:
            self._fault("could not record a call")

    def _build_event(self, call: MeteredCall, status: str, usage: Usage | None, problem: str | None,
                     model: str | None, response_id: str | None, service_tier: str | None,
                     content_chunks: int | None, error_type: str | None, duration_ms: float,
                     partial: Usage | None = None) -> UsageEvent:
        answered = call.http_status is not None and 200 <= call.http_status < 300
        if usage is not None:
            usage_status = "reported"
        elif problem is not None and answered and status == "ok" and not problem.startswith("the response body"):
            usage_status, usage = "invalid", Usage()
        elif answered:
            # The provider answered but we have no usage: an abandoned or failed stream, or an unread body.
            if partial is not None:  # the input side arrived (Anthropic's message_start): keep it
                usage = replace(partial, output_tokens=max(partial.output_tokens, content_chunks or 0))
                method = "input as reported when the stream started"
            else:
                tokens, method = estimate_input_tokens(call.requested_model, call.body, self.config.tiktoken_cache_dir)
                usage = Usage(input_tokens=tokens, output_tokens=content_chunks or 0)
            usage_status = "estimated"
            problem = "; ".join(p for p in (problem, method, "output counted as one token per streamed event") if p)
        else:
            usage_status, usage = "none", Usage()
        billable = answered and (status == "ok" or usage.total_tokens > 0)
        model = model or call.requested_model
        priced_model = call.requested_model if call.provider in _PRICED_AS_INVOKED else model
        priced = usage_status in ("reported", "estimated")
        quote = self.rates.price(call.provider, priced_model or "", usage, at=call.started_at,
                                 service_tier=service_tier) if priced else None
        if quote is not None and quote.cost_usd is None:
            key = (call.provider, priced_model)
            if key not in _warned_unpriced:
                _warned_unpriced.add(key)
                log.warning("metricaos_sdk: no price for %s model %r; its calls are recorded with cost_usd=None",
                            call.provider, priced_model)
        a = call.attribution
        return UsageEvent.model_construct(
            id=call.id, schema_version=1, timestamp=call.started_at, event_type=call.endpoint.event_type,
            customer_id=a.customer_id, user_id=a.user_id, workspace_id=a.workspace_id, feature=a.feature,
            environment=a.environment, tags=dict(a.tags),
            provider=call.provider, model=model, requested_model=call.requested_model, endpoint=call.path,
            input_tokens=usage.input_tokens, output_tokens=usage.output_tokens,
            cached_input_tokens=usage.cached_input_tokens, cache_write_tokens=usage.cache_write_tokens,
            cache_write_5m_tokens=usage.cache_write_5m_tokens, cache_write_1h_tokens=usage.cache_write_1h_tokens,
            reasoning_tokens=usage.reasoning_tokens, total_tokens=usage.total_tokens,
            web_search_requests=usage.web_search_requests, usage_status=usage_status, usage_problem=problem,
            # An error the provider does not bill costs 0; impossible usage has an unknown cost.
            cost_usd=quote.cost_usd if quote else (Decimal(0) if usage_status == "none" else None),
            price_status=quote.price_status if quote else ("not_billed" if usage_status == "none" else "unpriced"),
            price_id=quote.price_id if quote else None,
            price_table_version=quote.table_version if quote else None,
            price_effective_from=quote.effective_from if quote else None,
            service_tier=service_tier, billable=billable, status=status, error_type=error_type,
            http_status=call.http_status, streamed=call.streamed, duration_ms=round(duration_ms, 3),
            attempts=call.attempts, request_id=response_id, sdk_version=__version__,
        )

    def _record(self, event: UsageEvent) -> None:
        try:
            self.sink.write([event])
        except Exception:
            self._fault(f"sink {type(self.sink).__name__} failed to write event {event.id}")
        if self._feed_quota_store:
            self._guard(self.quota_store.add, event)

    def _guard(self, fn: Any, *args: Any) -> None:
        try:
            fn(*args)
        except Exception:
            self._fault(f"{getattr(fn, '__qualname__', fn)} failed")

    def _fault(self, what: str) -> None:
        self.faults += 1
        log.exception("metricaos_sdk: %s", what)
