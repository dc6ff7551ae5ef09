"""Meter: wires attribution, quotas, pricing and the sink around wrapped provider clients."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeVar, overload

import httpx2

from ._fork import close_at_exit, forget_at_exit, renew_after_fork
from .actions import ON_FAILURE, ActionRun, ActionScope, ActionSpec, OnFailure
from .billable import BillableRules
from .call_path import CallPath
from .config import MeterConfig, load_delivery_file
from .context import Attribution, AttributionScope, current_attribution
from .errors import ConfigurationError
from .events import UsageEvent
from .faults import Fault, log_fault
from .pricing import RateTable
from .quota import (
    CreditRule,
    CreditRules,
    Customers,
    InMemoryQuotaStore,
    Plans,
    Quota,
    QuotaEngine,
    QuotaStore,
    SQLiteQuotaStore,
    period_bounds,
)
from .quota.amounts import check_amount
from .quota.periods import PERIODS
from .quota.statuses import limit_statuses
from .reports import UsageSummary, summarize
from .sinks import EventQuery, Sink, SQLiteSink
from .storage.database import Database
from .worker import BackgroundWorker
from .wrappers.call import MeteredCall
from .wrappers.clients import SUPPORTED, client_kind
from .wrappers.hooks import instrument

if TYPE_CHECKING:
    from .delivery import Delivery, Destination
    from .health import Health

# Delivery, actions' product events and the health record are imported when first used: a metered app that
# never uses them does not pay for them at ``import metricaos_sdk`` (issue 16's import budget).

__all__ = ["Meter"]

log = logging.getLogger("metricaos_sdk")
C = TypeVar("C")
F = TypeVar("F", bound=Callable[..., Any])


class Meter(CallPath):
    """Meters every LLM call of the clients it wraps.

    ``Meter("metricaos.db")`` records into a local SQLite file (events, quotas and reservations in one
    place, shared by every process that opens it). Pass ``sink=`` to send events elsewhere; quotas then
    live in memory unless you pass ``quota_store=`` (or set ``quota_url`` to a Redis URL).

    Quotas: ``meter.plans`` defines plans, ``meter.customers`` assigns them and grants credits,
    ``meter.credits`` sets the credit rules, ``meter.set_quota`` sets a customer's own hard limits.
    """

    def __init__(
        self,
        database: str | os.PathLike[str] | None = None,
        *,
        sink: Sink | None = None,
        quota_store: QuotaStore | None = None,
        rates: Any = None,
        unpriced: str = "count",
        environment: str | None = None,
        deliver_to: Sequence[Destination] = (),
        config: MeterConfig | None = None,
        billable: BillableRules | None = None,
    ) -> None:
        if unpriced not in ("count", "refuse"):
            raise ConfigurationError(
                f"unpriced={unpriced!r} is not a policy: use 'count' (record tokens, cost None) or 'refuse' (raise "
                "UnpricedModel before sending); to charge a fallback rate, pass rates=RateTable.bundled().with_fallback(...)."
            )
        if billable is not None and not isinstance(billable, BillableRules):
            raise ConfigurationError(f"billable= takes a BillableRules object, like BillableRules(failed=False); got "
                                     f"{type(billable).__name__}.")
        if database is not None and sink is not None:
            raise ConfigurationError("Pass either a database path or sink=, not both: the path configures the default SQLite sink.")
        self.config = config or MeterConfig.from_env(
            database=os.fspath(database) if database is not None else None, environment=environment
        )
        if sink is None:
            db = Database(self.config.database, durable=self.config.durable)
            sink = SQLiteSink(db, on_fault=self._fault)
        elif isinstance(sink, SQLiteSink) and sink.on_fault is None:
            sink.on_fault = self._fault
        if not isinstance(sink, Sink):
            raise ConfigurationError(f"sink= must have write(events), flush() and close() methods; got {type(sink).__name__}.")
        self.sink: Sink = sink
        self._owns_quota_store = quota_store is None
        if quota_store is None:
            quota_store = _default_quota_store(self.config, sink)
        self.quota_store: QuotaStore = quota_store
        self.rates: RateTable = RateTable.coerce(rates)
        self.unpriced = unpriced
        """What a call to a model without a price does: ``count`` it (tokens recorded, ``cost_usd=None``) or
        ``refuse`` it (:class:`UnpricedModel`, nothing sent). A fallback rate (``RateTable.with_fallback``)
        prices such calls instead (``price_status="fallback"``)."""
        self._priceable_cache: dict[tuple[str, str | None, str | None], bool] = {}
        self.credits = CreditRules()
        """Credit rules by feature: ``meter.credits.set("summarize_document", per_call=50)``."""
        self._quotas = QuotaEngine(quota_store, config=self.config, rates=self.rates, credits=self.credits,
                                   fault=self._fault, billable=billable)
        self.billable: BillableRules = self._quotas.billable
        """The billable rules: which events count (``Meter(billable=BillableRules(...))``; see ``billable.py``)."""
        if isinstance(sink, EventQuery):  # a limit set mid-period counts the period's earlier events
            self._quotas.history = lambda customer_id, since, until: self.events(
                customer_id=customer_id, since=since, until=until)
        self.plans = Plans(self._quotas)
        """The plan catalogue: ``meter.plans.define("starter", credits=2000)``, ``meter.plans.on_alert(fn)``."""
        self.customers = Customers(self._quotas)
        """Assign plans and grant credits: ``meter.customers.assign("cus_1", "starter")``, ``.grant(...)``."""
        self.faults = 0
        """How many metering faults were logged and swallowed (never raised into a call)."""
        self.last_fault: Fault | None = None
        """The last of them: what failed, the exception's type (and message when it is ours), and when."""
        self._open_calls: set[MeteredCall] = set()
        self._spike_watchers: list[Any] = []
        self._refused_usage_request: set[str] = set()  # base URLs that answered 400 to stream_options
        self._asks: dict[str, bool] = {}  # base URL -> whether its streams are asked for usage
        self._provider_hosts = _provider_hosts(self.config.provider_hosts)
        self._servers: dict[tuple[str, str], tuple[str, str | None]] = {}  # (kind, base URL) -> provider, host
        self._lock = threading.Lock()
        self._worker = BackgroundWorker("metricaos-meter", self._fault)
        self._quotas.attach(self._worker)
        renew_after_fork(self, _lock=threading.Lock, _open_calls=set)  # the parent's open calls are its own
        if not deliver_to and self.config.delivery_config:
            from .delivery.settings import destinations_from

            deliver_to = destinations_from(load_delivery_file(self.config.delivery_config))
        self.delivery: Delivery | None = None
        if deliver_to:
            from .delivery.attach import attach

            self.delivery = attach(sink, deliver_to, self.config, self._fault)
        """Where committed events are sent on (``deliver_to=``): its ``status()`` says how far each destination is."""
        self._closed = False
        self._warned_closed = False
        close_at_exit(self, Meter.close)

    # -- public API ---------------------------------------------------------------------------------
    def wrap(self, client: C) -> C:
        """Meter ``client`` in place and return it (the same object: ``isinstance`` and types hold).

        Supported: ``openai.OpenAI``, ``openai.AsyncOpenAI`` and their Azure and Bedrock variants (any
        OpenAI-compatible server through ``base_url``: docs/providers.md); ``anthropic.Anthropic``,
        ``anthropic.AsyncAnthropic`` and their Bedrock, Bedrock Mantle, Vertex, Foundry, AWS and Google Cloud
        variants. Copies made with
        ``client.with_options()`` / ``client.copy()`` are metered too.
        """
        kind = client_kind(client)
        if kind is None:
            raise TypeError(f"meter.wrap() supports {SUPPORTED}; got {type(client).__module__}.{type(client).__qualname__}.")
        if not self.config.enabled:
            return client
        http_client = getattr(client, "_client", None)
        if not isinstance(http_client, (httpx2.Client, httpx2.AsyncClient)):
            log.warning(
                "metricaos_sdk: %s uses a %s HTTP client, not httpx2; it is left unmetered. "
                "Pass an httpx2 client (or none) to meter it.", type(client).__name__, type(http_client).__name__,
            )
            return client
        instrument(client, self, kind)
        return client

    def context(self, *, customer_id: str | None = None, user_id: str | None = None, workspace_id: str | None = None,
                feature: str | None = None, environment: str | None = None, tags: Mapping[str, str] | None = None) -> AttributionScope:
        """Attribute every call inside a ``with`` / ``async with`` block (or a decorated function)."""
        return AttributionScope(Attribution(customer_id, user_id, workspace_id, feature, environment, dict(tags or {})))

    @overload
    def track(self, feature: F, /) -> F: ...

    @overload
    def track(self, feature: str | None = None, *, customer_id: str | None = None, user_id: str | None = None,
              workspace_id: str | None = None, environment: str | None = None,
              tags: Mapping[str, str] | None = None) -> AttributionScope: ...

    def track(self, feature: str | Callable[..., Any] | None = None, *, customer_id: str | None = None,
              user_id: str | None = None, workspace_id: str | None = None, environment: str | None = None,
              tags: Mapping[str, str] | None = None) -> Any:
        """Decorator (``def`` and ``async def``) attributing the calls a function makes, usually to a feature.

        ``@meter.track(feature="summarize")`` names the feature; bare ``@meter.track`` names it after the function.
        """
        if callable(feature):  # used without parentheses: the argument is the decorated function
            function = feature
            return self.context(feature=getattr(function, "__name__", None))(function)
        return self.context(customer_id=customer_id, user_id=user_id, workspace_id=workspace_id, feature=feature,
                            environment=environment, tags=tags)

    def action(self, name: str, *, credits: int | Decimal | str | CreditRule | None = None,
               on_failure: OnFailure = "free", customer_id: str | None = None, user_id: str | None = None,
               workspace_id: str | None = None, feature: str | None = None, environment: str | None = None,
               tags: Mapping[str, str] | None = None, reserve: int | Decimal | str | None = None,
               lease_seconds: float | None = None) -> ActionScope:
        """A unit of product work billed once, however many LLM calls it makes: ``with meter.action(...)``,
        ``async with``, or a decorator (``def`` / ``async def``). See ``docs/actions.md``.

        ``credits``: its price — a fixed number of credits, or a :class:`CreditRule` (``per_call`` is per action;
        cost- or token-based rules price the sum of its calls, holding ``reserve`` credits while it runs). None:
        the meter's credit rule for the action's feature. Its credits are reserved when it starts
        (:class:`QuotaExceeded` before anything inside runs when they do not fit) and settled when it ends.
        ``on_failure`` (an exception leaves it, or ``run.fail()``): ``"free"`` charges nothing, ``"at_cost"``
        what its calls would have cost under their own credit rules, ``"charge"`` the full price. ``feature``
        defaults to ``name``; the other attribution arguments work as in :meth:`context`. ``lease_seconds``:
        how long its reservation outlives a process that dies inside it (``MeterConfig.quota_lease_seconds``)."""
        if not isinstance(name, str) or not name.strip() or len(name) > 200:
            raise ConfigurationError(f"meter.action() needs a name (a non-empty str of at most 200 characters), got "
                                     f"{name!r}: name the product work, like 'summarize_document'.")
        if on_failure not in ON_FAILURE:
            raise ConfigurationError(f"meter.action(on_failure={on_failure!r}) is not a rule: use 'free' (not charged), "
                                     "'at_cost' (charged what its calls cost) or 'charge' (charged in full).")
        fixed = rule = None
        if isinstance(credits, CreditRule):
            rule = credits
        elif credits is not None:
            fixed = check_amount("credits", credits, f"meter.action({name!r}) credits")
        held = None if reserve is None else check_amount("credits", reserve, f"meter.action({name!r}) reserve")
        if lease_seconds is not None and (isinstance(lease_seconds, bool) or not isinstance(lease_seconds, (int, float))
                                          or not lease_seconds > 0):
            raise ConfigurationError(f"meter.action({name!r}) lease_seconds must be a positive number of seconds, "
                                     f"got {lease_seconds!r}.")
        attribution = Attribution(customer_id, user_id, workspace_id, feature if feature is not None else name,
                                  environment, dict(tags or {}))
        return ActionScope(self, ActionSpec(name, fixed, rule, on_failure, attribution, held, lease_seconds))

    def record_usage(self, unit: str, quantity: int | Decimal | str, *, idempotency_key: str,
                     customer_id: str | None = None, user_id: str | None = None, workspace_id: str | None = None,
                     feature: str | None = None, environment: str | None = None,
                     tags: Mapping[str, str] | None = None, timestamp: datetime | None = None,
                     cost_usd: Decimal | int | str | None = None) -> UsageEvent:
        """Record ``quantity`` of a custom ``unit`` (``"page"``, ``"minute"``, ``"image"``, ``"workflow_run"`` …);
        the event (``event_type="usage"``). Recording the same ``idempotency_key`` again (for the same customer
        and unit, in any process) is one event and counts once. Priced by the feature's credit rule
        (``CreditRule(per_unit={"page": "0.5"})``) and drawn from the customer's credits; never refused —
        the usage happened (run the work in :meth:`action` to refuse it beforehand). ``cost_usd``: what it cost
        you, if known. Attribution as in :meth:`context`; the current context fills what is not given."""
        from . import product_events

        return product_events.record_usage(
            self, unit, quantity, idempotency_key=idempotency_key, event_type="usage", timestamp=timestamp,
            attribution=Attribution(customer_id, user_id, workspace_id, feature, environment, dict(tags or {})),
            cost_usd=cost_usd)

    def record_outcome(self, name: str, *, idempotency_key: str, customer_id: str | None = None,
                       user_id: str | None = None, workspace_id: str | None = None, feature: str | None = None,
                       environment: str | None = None, tags: Mapping[str, str] | None = None,
                       timestamp: datetime | None = None) -> UsageEvent:
        """Record an outcome the customer pays for (``"resolved_ticket"``): custom usage of unit ``name``,
        quantity 1, ``event_type="outcome"``. Events are never edited: an outcome reversed later (the ticket was
        reopened) is reversed by an adjustment in the billing ledger, not here."""
        from . import product_events

        return product_events.record_usage(
            self, name, 1, idempotency_key=idempotency_key, event_type="outcome", timestamp=timestamp,
            attribution=Attribution(customer_id, user_id, workspace_id, feature, environment, dict(tags or {})))

    def set_quota(self, customer_id: str, *, tokens: int | None = None, cost_usd: Decimal | int | str | None = None,
                  requests: int | None = None, period: str = "month") -> None:
        """Set hard limits for ``customer_id`` per calendar ``period`` ("day", "month" or "year", UTC).

        Each unit given replaces that unit's previous limit; units not given are left as they were.
        When a limit is reached, the next call raises :class:`QuotaExceeded` before any request is sent.
        """
        _check_customer(customer_id, "set_quota")
        if tokens is None and cost_usd is None and requests is None:
            raise ConfigurationError("set_quota() needs at least one of tokens=, cost_usd= or requests=.")
        limits = [("tokens", tokens), ("cost_usd", cost_usd), ("requests", requests)]
        quotas = [Quota(customer_id, unit, limit, period) for unit, limit in limits if limit is not None]  # type: ignore[arg-type]
        self.customers.set_limits(quotas)

    def remove_quota(self, customer_id: str) -> None:
        """Remove every limit of ``customer_id``."""
        _check_customer(customer_id, "remove_quota")
        self.customers.remove_limits(customer_id)

    def usage(self, customer_id: str, *, period: str | None = None, now: datetime | None = None) -> UsageSummary:
        """The customer's usage in the current period (their plan's or first limit's, else the calendar month):
        plan, allowance, used, reserved, remaining, overage, projected, and totals by feature, user, model, day.

        ``period`` ("day", "month" or "year") asks for that calendar period instead."""
        _check_customer(customer_id, "usage")
        if period is not None and period not in PERIODS:
            raise ConfigurationError(f"usage(period={period!r}): {period!r} is not a period; use "
                                     f"{', '.join(map(repr, PERIODS))}.")
        now = now or datetime.now(timezone.utc)
        policy, limits = limit_statuses(self._quotas, customer_id, now)
        if period is None and limits and limits[0].period_start is not None:
            period, bounds = limits[0].period, (limits[0].period_start, limits[0].resets_at)
        else:
            period = period or "month"
            bounds = period_bounds(period, now)
            limits = [lim for lim in limits if lim.period == period]  # the statuses of this period's limits only
        events = self.events(customer_id=customer_id, since=bounds[0], until=bounds[1])
        plan = policy.plan.name if policy is not None and policy.plan is not None else None
        return summarize(customer_id, period, bounds, events, limits, plan=plan)

    def events(self, *, customer_id: str | None = None, since: datetime | None = None, until: datetime | None = None,
               limit: int | None = None) -> list[UsageEvent]:
        """Recorded events in time order (the sink must be readable: SQLite and memory sinks are)."""
        if not isinstance(self.sink, EventQuery):
            raise ConfigurationError(f"{type(self.sink).__name__} cannot read events back; query your collector instead.")
        self._worker.drain()  # streams finished in the background (abandoned ones) are recorded first
        return list(self.sink.events(customer_id=customer_id, since=since, until=until, limit=limit))

    def flush(self, timeout: float | None = None) -> bool:
        """Record what the background still holds (abandoned streams, settlements waiting for the quota store),
        commit every recorded event, and wait for the delivery destinations to take them — for at most
        ``timeout`` seconds (default ``MeterConfig.delivery_timeout``) for the last part. True if all went."""
        self._worker.drain()
        self._guard(self.sink.flush)
        if self.delivery is None:
            return True
        try:
            return self.delivery.flush(self.config.delivery_timeout if timeout is None else timeout)
        except Exception:
            self._fault("could not wait for delivery")
            return False

    def close(self) -> None:
        """Record streams still open as cancelled, flush and close the sink. Also runs at interpreter exit.

        Clients wrapped by a closed meter keep working, unmetered (a warning says so once)."""
        if self._closed:
            return
        for call in list(self._open_calls):
            self._finish_abandoned(call)
        for watcher in self._spike_watchers:
            self._guard(watcher.stop, 5.0)
        self._worker.stop()
        self._quotas.close()  # release reservations of calls cut off mid-flight (other threads at exit)
        self._worker.drain()
        self._guard(self.sink.flush)
        self._closed = True
        forget_at_exit(self)
        if self.delivery is not None:  # what it cannot deliver in time stays in the outbox for the next process
            self._guard(self.delivery.stop, self.config.delivery_timeout)
        self._guard(self.sink.close)
        if self._owns_quota_store:
            self._guard(self.quota_store.close)

    def watch_spikes(self, callback: Callable[[Any], object], rules: Any = None, *, interval: float = 60.0) -> Any:
        """Call ``callback(spike)`` once per usage spike in this meter's events — a customer, user, feature or model
        far above its own baseline (:class:`~metricaos_sdk.reports.SpikeRules`; docs/alerts.md) — checked every
        ``interval`` seconds on a daemon thread. A fault of the check or the callback is logged and counted, never
        raised. Returns the :class:`~metricaos_sdk.reports.SpikeWatcher`; ``close()`` stops it."""
        from .reports.spike_watch import SpikeWatcher

        if not isinstance(self.sink, SQLiteSink):
            raise ConfigurationError("watch_spikes() reads the meter's SQLite file: give the meter a database path, "
                                     "or run SpikeWatcher(open_source(url), rules, callback) on the store your sink fills.")
        watcher = SpikeWatcher(self.sink.database.path, rules, callback, interval=interval).start()
        self._spike_watchers.append(watcher)
        return watcher

    def health(self) -> Health:
        """What the meter holds and how it fared: faults, events not yet committed (and those held in memory only,
        the journal being unavailable), open streams, and the quota store's state."""
        from .health import Health

        sink_health = getattr(self.sink, "health", None)
        sink = sink_health() if callable(sink_health) else {}
        deliveries = self.delivery.status() if self.delivery is not None else []
        return Health(faults=self.faults, last_fault=self.last_fault, open_streams=len(self._open_calls),
                      closed=self._closed, deliveries=deliveries, **sink, **self._quotas.health())

    def __enter__(self) -> Meter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- used by actions ----------------------------------------------------------------------------
    def _start_action(self, run: ActionRun) -> None:
        if self._closed or not self.config.enabled:
            run.attribution = current_attribution().merged(run.spec.attribution)
            return
        from . import product_events

        product_events.start_action(self, run)

    def _end_action(self, run: ActionRun, exc: BaseException | None) -> None:
        if not self._closed and self.config.enabled:
            from . import product_events

            product_events.end_action(self, run, exc)

    def _plan_of(self, customer_id: str) -> str | None:
        """The customer's plan (for plan billable rules); None when unknown. Never raises."""
        try:
            policy = self._quotas.policy(customer_id)
        except Exception:
            self._fault("could not read the customer's plan for the billable rules")
            return None
        return policy.plan.name if policy is not None and policy.plan is not None else None

    def _guard(self, fn: Any, *args: Any) -> None:
        try:
            fn(*args)
        except Exception:
            self._fault(f"{getattr(fn, '__qualname__', fn)} failed")

    def _fault(self, what: str) -> None:
        """Count and log a metering fault (inside ``except``: the exception being handled is described)."""
        self.faults += 1
        self.last_fault = log_fault(log, what)

    def _defer(self, work: Callable[[], Any]) -> None:
        """Run ``work`` on the background thread: what code that may run in a finalizer does instead of it."""
        self._worker.put(work)

    def _start_worker(self) -> None:
        self._worker.start()


def _check_customer(customer_id: object, what: str) -> None:
    if not isinstance(customer_id, str) or not customer_id:
        raise ConfigurationError(f"{what}() needs a customer id (a non-empty str), got {customer_id!r}.")


def _provider_hosts(value: Any) -> dict[str, str]:
    """``MeterConfig.provider_hosts`` checked and lower-cased: host or ``host:port`` -> provider name."""
    if not isinstance(value, Mapping):
        raise ConfigurationError(f"provider_hosts must map a host to a provider, like {{'gpu-box:8000': 'vllm'}}; got "
                                 f"{type(value).__name__}.")
    hosts = {}
    for host, provider in value.items():
        if not isinstance(host, str) or not host.strip() or "/" in host or not isinstance(provider, str) \
                or not provider.strip():
            raise ConfigurationError(f"provider_hosts entry {host!r}: {provider!r} is not a host (or host:port, no "
                                     "scheme or path) mapped to a provider name, like 'gpu-box:8000': 'vllm'.")
        hosts[host.strip().lower().rstrip(".")] = provider.strip()
    return hosts


def _default_quota_store(config: MeterConfig, sink: Sink) -> QuotaStore:
    """Redis when ``quota_url`` says so; else the SQLite sink's file; else memory."""
    url = config.quota_url
    if url and url.startswith(("redis://", "rediss://", "unix://")):
        from .quota.backends.redis import RedisQuotaStore

        return RedisQuotaStore.from_url(url, timeout=config.quota_timeout)
    if url and url != "sqlite" and url != "memory":
        raise ConfigurationError(f"quota_url {url!r} is not understood: use redis://host:port/db, 'sqlite' or 'memory'.")
    if isinstance(sink, SQLiteSink) and url != "memory":
        return SQLiteQuotaStore(sink.database, timeout=config.quota_timeout)
    return InMemoryQuotaStore()
