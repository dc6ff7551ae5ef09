"""QuotaEngine: which limits apply to a call; reserve before it is sent, settle when it ends.

The meter calls :meth:`QuotaEngine.begin` once per logical call before anything is sent, and
:meth:`QuotaEngine.finish` from the call's single finish point (body read, stream ended, closed,
abandoned, failed, cancelled), so a reservation is settled or released on every exit path; ``close()``
releases what is still held at exit, and a process that dies leaves reservations that lapse with their
lease. A customer nothing limits costs one dict lookup: policies are cached per process and reloaded only
when the store's settings version moves (checked every ``quota_refresh_seconds``).
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from .._fork import renew_after_fork
from ..billable import PLAN_RULE, BillableRules
from ..errors import QuotaUnavailable
from ..faults import describe
from .alerts import QuotaAlert
from .amounts import from_units, to_usage
from .credits import CreditRule, CreditRules
from .estimate import CallEstimate
from .outage import Breaker, Pending, Unsettled, demands_of
from .periods import rate_window
from .plans import Grant, Plan
from .policy import LimitSpec, Policy, RateSpec, compile_policy
from .refusals import refusal
from .reservations import Balance, Bucket, Demand, Settled

if TYPE_CHECKING:
    from ..config import MeterConfig
    from ..events import UsageEvent
    from ..pricing import RateTable
    from ..worker import BackgroundWorker
    from ..wrappers.call import MeteredCall
    from .backends.base import QuotaStore

__all__ = ["QuotaEngine"]

log = logging.getLogger("metricaos_sdk")
_MISSING: Any = object()


@dataclass(slots=True)
class _Line:
    spec: LimitSpec | RateSpec
    demand: Demand
    start: datetime
    end: datetime


@dataclass(slots=True)
class _Ticket:
    policy: Policy | None
    lines: list[_Line]
    feature: str | None
    epoch: float
    reserved: bool = True
    """False: the call was allowed without a reservation (the store did not answer); it is still settled."""


class QuotaEngine:
    """The meter's quota logic over one :class:`QuotaStore`. Thread-safe; one per meter."""

    def __init__(self, store: QuotaStore, *, config: MeterConfig, rates: RateTable, credits: CreditRules,
                 fault: Callable[[str], None], billable: BillableRules | None = None) -> None:
        self.store = store
        """The store as the call path uses it: every operation bounded by ``config.quota_timeout``."""
        patient = getattr(store, "patient", None)
        self.admin: QuotaStore = patient() if callable(patient) else store
        """The same store for work that may wait (settings, reports, settlements retried in the background)."""
        self.config = config
        self.rates = rates
        self.credits = credits
        self.alert_callbacks: list[Callable[[QuotaAlert], Any]] = []
        self.history: Callable[[str, datetime, datetime], list[UsageEvent]] | None = None
        """The period's recorded events (set by the meter when its sink can read them back)."""
        self._fault = fault
        self.billable = billable if billable is not None else BillableRules(environments=config.billable_environments)
        """The meter's billable rules (``Meter(billable=...)``)."""
        self._policies: dict[str, Policy | None] = {}
        self._plans: dict[str, Plan] = {}
        self._version: int | None = None
        self._check_at = 0.0
        self._writes = 0
        self._tickets: dict[str, _Ticket] = {}
        self._fired: set[tuple[str, str]] = set()
        self._per_call: dict[CreditRule, int] = {}
        self._lock = threading.Lock()
        self._breaker = Breaker()
        self._pending = Pending()
        self._worker: BackgroundWorker | None = None
        # The parent's reservations are the parent's to settle: a child closing would release them.
        renew_after_fork(self, _lock=threading.Lock, _tickets=dict, _pending=Pending)

    def attach(self, worker: BackgroundWorker) -> None:
        """Retry settlements that wait for the store on ``worker``'s thread."""
        self._worker = worker
        worker.every(self.retry_pending)

    def health(self) -> dict[str, Any]:
        return {"quota_store_available": self._breaker.available, "quota_settlements_pending": len(self._pending)}

    # -- settings cache -----------------------------------------------------------------------------
    def invalidate(self) -> None:
        """Forget cached settings (after a write here; writes elsewhere are seen within the refresh interval)."""
        self._writes += 1
        self._check_at = 0.0

    def _refresh(self) -> None:
        now = time.monotonic()
        if now < self._check_at:
            return
        with self._lock:
            if now < self._check_at:
                return
            writes = self._writes
            if not self._breaker.allows():
                return  # the store just failed: keep the settings we have
            try:
                version = self.store.config_version()
            except Exception:
                self._breaker.failed()
                if self._version is None:
                    raise  # nothing cached to go on with
                self._check_at = now + self.config.quota_refresh_seconds
                self._fault("could not check the quota settings for changes; the cached ones stay in force")
                return
            if version != self._version:
                self._plans = {name: Plan.from_json(doc) for name, doc in self.store.list_config("plan").items()}
                self._policies = {}
                self._version = version
            if writes == self._writes:  # a write here meanwhile: check again on the next call
                self._check_at = now + self.config.quota_refresh_seconds

    def plans(self) -> dict[str, Plan]:
        self._refresh()
        return self._plans

    def policy(self, customer_id: str) -> Policy | None:
        """The customer's compiled policy (None: nothing limits them)."""
        self._refresh()
        policy = self._policies.get(customer_id, _MISSING)
        if policy is _MISSING:
            grants = [Grant.from_json(doc) for doc in self.store.list_config(f"grant:{customer_id}").values()]
            policy = compile_policy(customer_id, self.store.get_config("customer", customer_id), self._plans, grants)
            if len(self._policies) > 100_000:  # many customers without limits: bound the memory, not the speed
                self._policies = {}
            self._policies[customer_id] = policy
        return policy  # type: ignore[no-any-return]

    def per_call_units(self, rule: CreditRule) -> int:
        units = self._per_call.get(rule)
        if units is None:
            units = self._per_call[rule] = to_usage("credits", Decimal(rule.per_call))  # type: ignore[arg-type]
        return units

    def counts(self, environment: str | None, feature: str | None = None, event_type: str | None = None,
               tags: Any = None) -> bool:
        """Whether what is made with this attribution may be billable and drawn from quotas (the rules known
        before a call: environment, feature, event type, tags)."""
        return self.billable.before(environment=environment, feature=feature, event_type=event_type,
                                    tags=tags or {})[0]

    # -- before the call ----------------------------------------------------------------------------
    def begin(self, call: MeteredCall) -> None:
        """Reserve the call's estimate, or raise QuotaExceeded / RateLimited (/ QuotaUnavailable). Nothing else.

        Waits on the store at most ``config.quota_timeout``; past it, or while the breaker is open, the call is
        allowed without a reservation (its usage is settled once the store answers) or refused, as configured."""
        attribution = call.attribution
        customer_id = attribution.customer_id
        if customer_id is None or not self.counts(attribution.environment, attribution.feature,
                                                  call.endpoint.event_type, attribution.tags):
            return
        epoch = time.time()
        if not self._breaker.allows():
            self._unavailable(call, epoch, None)
            return
        policy = None
        lines: list[_Line] = []
        try:
            policy = self.policy(customer_id)
            if policy is None:
                return
            lines = self._lines(policy, call, epoch)
            if not lines:
                return
            outcome = self.store.reserve(customer_id, call.id, [ln.demand for ln in lines],
                                         self.config.quota_lease_seconds)
        except Exception as exc:
            self._breaker.failed()
            self._fault("quota reservation failed" + ("; the call is allowed and settled when the store answers"
                                                      if self.config.quota_fail_open else "; the call is refused"))
            self._unavailable(call, epoch, exc, policy, lines)
            return
        self._breaker.succeeded()
        if not outcome.ok:
            line = lines[outcome.failed]  # type: ignore[index]
            raise refusal(self, policy, line.spec, line.demand.amount, line.end,
                          outcome.balances[outcome.failed], call)  # type: ignore[index]
        self._tickets[call.id] = _Ticket(policy, lines, attribution.feature, epoch)
        for line, bal in zip(lines, outcome.balances, strict=True):
            spec = line.spec
            if isinstance(spec, LimitSpec) and spec.mode == "soft" and bal.used + bal.reserved + line.demand.amount > bal.limit:
                self._alert(policy, line, bal, 1.0)

    def _unavailable(self, call: MeteredCall, epoch: float, exc: Exception | None, policy: Policy | None = None,
                     lines: list[_Line] | None = None) -> None:
        """The store cannot reserve for ``call``: refuse it (fail closed), or let it go unreserved, its limits
        taken from the cached settings when they are there (else worked out when the store answers)."""
        if not self.config.quota_fail_open:
            reason = f" ({describe(exc)})" if exc is not None else " (it failed moments ago)"
            raise QuotaUnavailable(f"The quota store is unavailable{reason}; the request was not sent. Retry "
                                   "later, or set MeterConfig(quota_fail_open=True) to allow calls meanwhile.") from None
        customer_id = call.attribution.customer_id
        assert customer_id is not None
        if policy is None:
            cached = self._policies.get(customer_id, _MISSING)
            if cached is None:
                return  # known to have no limits
            if cached is not _MISSING:
                policy = cached
                try:
                    lines = self._lines(policy, call, epoch)
                except Exception:
                    lines = []
        self._tickets[call.id] = _Ticket(policy, lines or [], call.attribution.feature, epoch, reserved=False)

    def _lines(self, policy: Policy, call: MeteredCall, epoch: float) -> list[_Line]:
        feature = call.attribution.feature
        estimate = CallEstimate(self, call)
        lines = []
        for index, spec in enumerate(policy.limits):
            if spec.feature is not None and spec.feature != feature:
                continue
            start, end, buckets, overflow = policy.window(index, epoch)
            demand = Demand(estimate.amount(spec.unit), buckets, spec.mode in ("hard", "throttle"), overflow)
            lines.append(_Line(spec, demand, start, end))
        for rate in policy.rates:
            ws, we = rate_window(rate.per, epoch)
            bucket = Bucket(f"rate:{rate.unit}:{rate.per}:{ws}", rate.limit, we + 60)
            lines.append(_Line(rate, Demand(estimate.amount(rate.unit), (bucket,)),
                               datetime.fromtimestamp(ws, timezone.utc), datetime.fromtimestamp(we, timezone.utc)))
        return lines

    # -- after the call -----------------------------------------------------------------------------
    def finish(self, call: MeteredCall, event: UsageEvent | None) -> UsageEvent | None:
        """Settle (billable), release (not billable) or settle at the estimate (no event); add credits and
        overage to the event. Never raises; a settlement the store does not take in time waits (``outage.py``)."""
        ticket = self._tickets.pop(call.id, None)
        if ticket is None and not self.credits:
            return event
        try:
            updates: dict[str, Any] = {}
            draws = event is not None and draws_quota(event)
            if event is not None and self.credits:
                found = self.credits.get(event.feature)
                if found is not None and found[0].prices_calls:
                    rule, name = found
                    credits = rule.credits(input_tokens=event.input_tokens, output_tokens=event.output_tokens,
                                           cost_usd=event.cost_usd) if draws else Decimal(0)
                    action = getattr(call, "action", None)
                    charging = action.charging if action is not None else None
                    if action is not None and charging is not None:  # the action charges once: the call records its cost
                        action.note_credits(credits)
                        credits, name = Decimal(0), f"charged by action {charging.name}"
                    updates.update(credits=credits, credit_rule=name)
            if ticket is not None:
                if event is not None and not draws:
                    if ticket.reserved:
                        self._release(ticket, call.id)
                else:
                    self._settle(call, ticket, event, updates)
            return _updated(event, updates) if updates and event is not None else event
        except Exception:
            self._fault("quota settlement failed; the reservation lapses with its lease")
            return event

    def _release(self, ticket: _Ticket, call_id: str) -> None:
        customer_id = ticket.policy.customer_id if ticket.policy is not None else None
        if customer_id is None or not self._breaker.allows():
            return  # nothing held, or the store is down: the reservation lapses with its lease
        try:
            self.store.release(customer_id, call_id)
        except Exception:
            self._breaker.failed()
            self._fault("could not release a reservation; it lapses with its lease")

    def _settle(self, call: MeteredCall, ticket: _Ticket, event: UsageEvent | None, updates: dict[str, Any], *,
                once: float | None = None) -> None:
        """Settle ``call``'s ticket at the event's usage. ``once`` (an expiry, epoch s): idempotent on the call's
        id until then — custom usage recorded twice is counted once."""
        customer_id = call.attribution.customer_id
        assert customer_id is not None
        if event is None:  # the event could not be built: charge the estimate rather than nothing
            actual = {ln.spec.unit: ln.demand.amount for ln in ticket.lines}
            demands = [ln.demand for ln in ticket.lines]
        else:
            actual = {"requests": 1, "tokens": event.total_tokens, "cost_usd": to_usage("cost_usd", event.cost_usd),
                      "credits": to_usage("credits", updates.get("credits"))}
            demands = [replace(ln.demand, amount=actual[ln.spec.unit]) for ln in ticket.lines]
        policy = ticket.policy
        # Over a network an answer can be lost after the store applied the settlement: a timeout says nothing
        # about whether it counted. There, every settlement counts at most once per call id for a lease's length,
        # so its retry cannot count the call twice (SQLite's either commit or not: a timeout there never applied).
        guard = once
        if guard is None and getattr(self.store, "answers_can_be_lost", False):
            guard = time.time() + self.config.quota_lease_seconds
        if policy is None or (not ticket.reserved and once is None) or not self._breaker.allows():
            self._wait(Unsettled(customer_id, call.id, demands if policy is not None else None, ticket.epoch,
                                 ticket.feature, actual, guard))
            return
        try:
            settled = (self.store.settle(policy.customer_id, call.id, demands) if guard is None
                       else settle_once(self.store, policy.customer_id, call.id, demands, guard))
        except Exception:
            self._breaker.failed()
            self._fault("quota settlement timed out; it is retried in the background")
            self._wait(Unsettled(customer_id, call.id, demands, ticket.epoch, ticket.feature, actual, guard))
            return
        self._breaker.succeeded()
        if settled is None:  # settled before (the same custom usage recorded again): nothing more counted
            return
        overage = Decimal(0)
        price: Decimal | None = None
        for line, bal, over in zip(ticket.lines, settled.balances, settled.overflow, strict=True):
            spec = line.spec
            if not isinstance(spec, LimitSpec):
                continue
            if spec.mode == "overage" and over:
                amount = Decimal(from_units(spec.unit, over))
                if amount > overage:
                    overage, price = amount, spec.overage_price
            for threshold in spec.alerts:
                if bal.used >= bal.limit * threshold:
                    self._alert(policy, line, bal, threshold)
        if overage:
            updates.update(overage=overage, overage_cost_usd=overage * price if price is not None else None)

    # -- settlements that wait for the store --------------------------------------------------------
    def _wait(self, item: Unsettled) -> None:
        self._pending.add(item)
        if self._worker is not None:
            self._worker.start()
            self._worker.poke()

    def retry_pending(self) -> bool:
        """Settle what waits for the store, oldest first, through the patient store; True while some still
        waits. Run by the worker thread (and by ``flush()``/``close()``)."""
        done = self._pending.retry(self.admin.settle, lambda item: demands_of(self.policy(item.customer_id), item),
                                   functools.partial(settle_once, self.admin))
        if done:
            self._breaker.succeeded()
        return bool(self._pending)

    def _alert(self, policy: Policy, line: _Line, bal: Balance, threshold: float) -> None:
        spec = line.spec
        mark = f"alert:{line.demand.buckets[line.demand.overflow].key}:{threshold}"
        key = (policy.customer_id, mark)
        if key in self._fired:
            return
        try:
            first = self.store.mark_once(policy.customer_id, mark, line.end.timestamp() + 86_400)
        except Exception:
            self._fault("could not record a quota alert")
            return
        self._fired.add(key)
        if len(self._fired) > 100_000:
            self._fired = set()
        if not first:
            return
        alert = QuotaAlert(customer_id=policy.customer_id, plan=policy.plan.name if policy.plan else None,
                           unit=spec.unit, feature=getattr(spec, "feature", None), threshold=threshold,
                           limit=from_units(spec.unit, bal.limit), used=from_units(spec.unit, bal.used),
                           period_start=line.start, resets_at=line.end, mode=getattr(spec, "mode", "hard"))
        for callback in list(self.alert_callbacks):
            try:
                callback(alert)
            except Exception:
                self._fault(f"quota alert callback {getattr(callback, '__qualname__', callback)} raised")

    def abandon(self, call: MeteredCall) -> None:
        """The call will not be sent after all: release its reservation. Never raises."""
        ticket = self._tickets.pop(call.id, None)
        if ticket is not None and ticket.reserved:
            self._release(ticket, call.id)

    def close(self) -> None:
        """Settle what waits for the store if it answers now, and release every reservation this meter still
        holds (calls cut off by interpreter exit)."""
        if self.retry_pending():
            self._fault(f"{len(self._pending)} quota settlement(s) could not reach the store before close; the "
                        "counters miss them")
        for call_id, ticket in list(self._tickets.items()):
            if self._tickets.pop(call_id, None) is not None and ticket.reserved and ticket.policy is not None:
                try:
                    self.admin.release(ticket.policy.customer_id, call_id)
                except Exception:
                    self._fault("could not release a reservation at close; it lapses with its lease")

    @property
    def held(self) -> int:
        """Reservations this meter holds now (calls in flight with a quota)."""
        return len(self._tickets)


def draws_quota(event: UsageEvent) -> bool:
    """Whether ``event`` draws from quotas: billable, or not billed by a plan rule (a free trial is still limited)."""
    return event.billable or (event.billable_rule is not None and event.billable_rule.startswith(PLAN_RULE))


def settle_once(store: QuotaStore, customer_id: str, settlement_id: str, demands: list[Demand],
                expires_at: float) -> Settled | None:
    """``store.settle`` at most once per ``settlement_id`` (until ``expires_at``); None when it was settled before.
    Atomic in the stores that have ``settle_once``; others mark first, so a crash between the two loses the
    settlement rather than counting it twice."""
    once = getattr(store, "settle_once", None)
    if once is not None:
        return once(customer_id, settlement_id, demands, expires_at)  # type: ignore[no-any-return]
    if not store.mark_once(customer_id, f"settled:{settlement_id}", expires_at):
        return None
    return store.settle(customer_id, settlement_id, demands)


def _updated(event: UsageEvent, updates: dict[str, Any]) -> UsageEvent:
    """The event with quota fields set. Events are frozen; the meter builds them without validation, and
    so does this (the values are the engine's own, already of their types)."""
    values = {**event.__dict__, **updates}
    trusted = getattr(type(event), "_trusted", None)
    return trusted(values) if trusted is not None else type(event).model_construct(**values)
