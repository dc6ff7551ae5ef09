"""The part of the :class:`~metricaos_sdk.Meter` the wrappers call: a call opened before the SDK sends anything
(attribution, provider, quota reservation, the stream usage request), and finished into its one event.

Kept apart from ``meter.py`` (the public API and its wiring) so the hot path reads in one place. The wrappers
reach it only through these methods; what crosses back is a :class:`~metricaos_sdk.outcome.CallOutcome`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .actions import current_action
from .context import Attribution, current_attribution
from .errors import QuotaExceeded, QuotaUnavailable, UnpricedModel
from .event_builder import build_event, quote_call
from .faults import safe_url
from .providers.hosts import provider_for, server_address
from .providers.openai import rejects_stream_options, sends_stream_usage_unasked
from .usage import Usage
from .wrappers.call import MeteredCall

if TYPE_CHECKING:
    from .config import MeterConfig
    from .events import UsageEvent
    from .outcome import CallOutcome
    from .quota import QuotaEngine
    from .sinks import Sink
    from .wrappers.clients import ClientKind

__all__ = ["CallPath"]

log = logging.getLogger("metricaos_sdk")


class CallPath:
    """Mixed into :class:`~metricaos_sdk.Meter`: the methods its wrappers call, and the state they keep."""

    config: MeterConfig
    sink: Sink
    unpriced: str
    _quotas: QuotaEngine
    _closed: bool
    _warned_closed: bool
    _lock: threading.Lock
    _open_calls: set[MeteredCall]
    _servers: dict[tuple[str, str], tuple[str, str | None]]
    _provider_hosts: dict[str, str]
    _asks: dict[str, bool]
    _refused_usage_request: set[str]
    _priceable_cache: dict[tuple[str, str | None, str | None], bool]

    def _fault(self, what: str) -> None:  # Meter's
        raise NotImplementedError

    def _begin_call(self, kind: ClientKind, options: Any, client: Any = None) -> tuple[MeteredCall, Any] | None:
        """Before the SDK sends anything: None for unmetered paths; raises QuotaExceeded when exhausted."""
        endpoint = kind.endpoints.get(options.url)
        if endpoint is None or options.method.lower() != "post":
            return None
        if self._closed:
            if not self._warned_closed:
                self._warned_closed = True
                log.warning("metricaos_sdk: a client of a closed meter made a call; it is not metered (nor are "
                            "later ones): close the meter only when its clients are done")
            return None
        attribution = current_attribution()
        if attribution.environment is None and self.config.environment is not None:
            attribution = attribution.merged(Attribution(environment=self.config.environment))
        call = None
        try:
            body = options.json_data
            if type(body) is not dict and not isinstance(body, Mapping):
                body = None
            deployment = kind.deployment(client, body) if kind.deployment is not None and client is not None else None
            provider, address = self._server_of(kind, client)
            path = options.url if "?" not in options.url else options.url.partition("?")[0]  # /v1/messages?beta=true
            call = MeteredCall(self, endpoint, provider, path, body, attribution, deployment=deployment)
            call.server_address = address
            call.action = current_action()
            if deployment is not None:
                call.requested_model = deployment  # Azure: what the request was routed to; the event's model is the answer's
            if self.unpriced == "refuse" and not self._priceable(call):
                raise UnpricedModel(call.provider, call.requested_model)
            if attribution.customer_id is not None:
                self._quotas.begin(call)  # reserve; raises QuotaExceeded / RateLimited / QuotaUnavailable only
            if body is not None and endpoint.injects_stream_usage and call.streamed and "stream_options" not in body \
                    and "stream_options" not in (options.extra_json or {}) and self._asks_stream_usage(client):
                options = options.model_copy(update={"json_data": {**body, "stream_options": {"include_usage": True}}})
                call.injected_usage = True
            if call.streamed:
                self._track_open(call)
            return call, options
        except (QuotaExceeded, QuotaUnavailable, UnpricedModel):
            raise  # the decisions the caller asked for: nothing is sent
        except Exception:
            if call is not None:
                self._quotas.abandon(call)
            self._fault("could not start metering a call; it runs unmetered")
            return None

    def _server_of(self, kind: ClientKind, client: Any) -> tuple[str, str | None]:
        """The provider and server host of a call by ``client``: a plain openai client is named by its base URL
        (``providers/hosts.py``, the user's ``provider_hosts`` first); the others by their class. Cached per
        base URL (``with_options(base_url=...)`` copies share the hook, not the URL)."""
        base_url = getattr(client, "base_url", None)
        if base_url is None:
            return kind.provider, None
        key = (kind.provider, str(base_url))
        known = self._servers.get(key)
        if known is None:
            provider = provider_for(key[1], self._provider_hosts) if kind.by_base_url else kind.provider
            known = self._servers[key] = (provider, server_address(key[1]))
        return known

    def _asks_stream_usage(self, client: Any) -> bool:
        """Whether to ask ``client``'s server for stream usage: not where it refused the request, nor where it
        sends usage unasked anyway (the meter would hide a chunk the caller is used to); cached per base URL."""
        base_url = str(client.base_url)
        asks = self._asks.get(base_url)
        if asks is None:
            asks = self._asks[base_url] = not sends_stream_usage_unasked(base_url)
        return asks and base_url not in self._refused_usage_request

    def _priceable(self, call: MeteredCall) -> bool:
        """Whether the rate table can price the requested model (or a fallback rate covers it); cached."""
        key = (call.provider, call.requested_model, call.deployment)
        known = self._priceable_cache.get(key)
        if known is None:
            quote = quote_call(self, call, call.requested_model, Usage(), None)
            known = self._priceable_cache[key] = quote.price_status != "unpriced"
        return known

    def _usage_request_refused(self, call: MeteredCall, exc: BaseException, client: Any) -> bool:
        """Whether ``exc`` is a server refusing the ``stream_options`` we added; if so, its base URL is
        remembered (later streams there are sent as the caller wrote them, their usage estimated) and the
        hook sends the call once more without it. Never raises."""
        try:
            if not rejects_stream_options(exc):
                return False
            base_url = str(client.base_url)
            self._refused_usage_request.add(base_url)
            call.injected_usage = False
            log.warning("metricaos_sdk: %s refused stream_options.include_usage; its streams are sent as written "
                        "and their usage is estimated", safe_url(base_url))
            return True
        except Exception:
            self._fault("could not handle a refused stream usage request")
            return False

    def _track_open(self, call: MeteredCall) -> None:
        """Count ``call`` among the open ones, which :meth:`close` finishes as cancelled."""
        with self._lock:
            self._open_calls.add(call)
            call.open = True

    def _finish_abandoned(self, call: MeteredCall) -> None:
        tap = call.tap() if call.tap is not None else None
        if tap is not None:
            try:
                tap.abandon()  # with what its body showed so far: text received, counts of a cut stream
            except Exception:
                self._fault("could not finish an abandoned stream from what it showed; recorded without it")
        call.finish("cancelled")  # a no-op once the tap has finished it

    def _finish_call(self, call: MeteredCall, outcome: CallOutcome) -> None:
        try:
            if call.open:
                with self._lock:
                    self._open_calls.discard(call)
            event = build_event(self, call, outcome)
        except Exception:
            self._quotas.finish(call, None)  # the reservation is settled at its estimate, never left held
            self._fault("could not record a call")
            return
        # Settle the reservation (or release it: not billable) and add credits/overage; never raises.
        event = self._quotas.finish(call, event)  # type: ignore[assignment]
        if call.action is not None:
            call.action.note_call(event.cost_usd, event.input_tokens, event.output_tokens)
        self._record(event)

    def _record(self, event: UsageEvent) -> None:
        try:
            self.sink.write([event])
        except Exception:
            self._fault(f"sink {type(self.sink).__name__} failed to write event {event.id}")
