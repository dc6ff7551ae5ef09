"""Quotas for what the product prices itself: actions (reserve their credits, settle at the end) and custom usage
(settled once per idempotency key). Both draw only on the customer's credit limits — a plan's credits, a
feature's credit sub-limit — through the same reserve/settle machinery as LLM calls; their calls' tokens,
requests and cost are drawn by the calls themselves.

``owner`` is anything with an ``id`` (the reservation id) and an ``attribution``: an action run, or a custom
usage record. Nothing here raises but the refusal the caller asked for (``QuotaExceeded`` /
``QuotaUnavailable`` from :func:`reserve_credits`).
"""

from __future__ import annotations

import time
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol

from ..context import Attribution
from .amounts import to_usage
from .engine import _Line, _Ticket, _updated
from .policy import Policy
from .refusals import refusal
from .reservations import Demand

if TYPE_CHECKING:
    from ..events import UsageEvent
    from .engine import QuotaEngine

__all__ = ["finish_priced", "reserve_credits", "settle_usage"]

USAGE_MARK_SECONDS = 400 * 86_400
"""How long an idempotency key of custom usage is remembered by the quota store (longer than any period)."""


class Owner(Protocol):
    @property
    def id(self) -> str: ...

    @property
    def attribution(self) -> Attribution: ...


def credit_lines(policy: Policy, feature: str | None, epoch: float, amount: int, *, enforce: bool) -> list[_Line]:
    """The demands of ``amount`` credits (store units) on every credit limit that applies to ``feature``."""
    lines = []
    for index, spec in enumerate(policy.limits):
        if spec.unit != "credits" or (spec.feature is not None and spec.feature != feature):
            continue
        start, end, buckets, overflow = policy.window(index, epoch)
        demand = Demand(amount, buckets, enforce and spec.mode in ("hard", "throttle"), overflow)
        lines.append(_Line(spec, demand, start, end))
    return lines


def reserve_credits(engine: QuotaEngine, owner: Owner, credits: Decimal, lease: float) -> None:
    """Hold ``credits`` for ``owner`` on the customer's credit limits, or raise QuotaExceeded / RateLimited when
    they do not fit (QuotaUnavailable when the store does not answer and the meter fails closed)."""
    customer_id = owner.attribution.customer_id
    if customer_id is None:
        return
    epoch = time.time()
    if not engine._breaker.allows():
        _unreserved(engine, owner, epoch, None, None, [], credits)
        return
    policy = None
    lines: list[_Line] = []
    amount = to_usage("credits", credits)
    try:
        policy = engine.policy(customer_id)
        if policy is None:
            return
        lines = credit_lines(policy, owner.attribution.feature, epoch, amount, enforce=True)
        if not lines:
            return
        outcome = engine.store.reserve(customer_id, owner.id, [ln.demand for ln in lines], lease)
    except Exception as exc:
        engine._breaker.failed()
        engine._fault("action reservation failed" + ("; the action is allowed and settled when the store answers"
                                                     if engine.config.quota_fail_open else "; the action is refused"))
        _unreserved(engine, owner, epoch, exc, policy, lines, credits)
        return
    engine._breaker.succeeded()
    if not outcome.ok:
        line = lines[outcome.failed]  # type: ignore[index]
        raise refusal(engine, policy, line.spec, amount, line.end, outcome.balances[outcome.failed], None)  # type: ignore[index]
    engine._tickets[owner.id] = _Ticket(policy, lines, owner.attribution.feature, epoch)


def finish_priced(engine: QuotaEngine, owner: Owner, event: UsageEvent, draws: bool) -> UsageEvent:
    """Settle ``owner``'s reservation at the event's credits (release it: ``draws`` False, or nothing charged);
    the event with its overage. Never raises."""
    ticket = engine._tickets.pop(owner.id, None)
    if ticket is None:
        return event
    try:
        if not draws or not event.credits:
            if ticket.reserved:
                engine._release(ticket, owner.id)
            return event
        updates: dict[str, Any] = {"credits": event.credits}
        engine._settle(owner, ticket, event, updates)  # type: ignore[arg-type]
        return _updated(event, updates) if len(updates) > 1 else event
    except Exception:
        engine._fault("action settlement failed; its reservation lapses with its lease")
        return event


def settle_usage(engine: QuotaEngine, owner: Owner, event: UsageEvent) -> UsageEvent:
    """Draw custom usage's credits from the customer's credit limits, once per event id (a key recorded twice,
    by any process sharing the store, counts once); never refused — the usage happened. Never raises."""
    customer_id = owner.attribution.customer_id
    if customer_id is None or not event.credits:
        return event
    try:
        policy = engine.policy(customer_id)
        if policy is None:
            return event
        epoch = event.timestamp.timestamp()
        lines = credit_lines(policy, event.feature, epoch, to_usage("credits", event.credits), enforce=False)
        if not lines:
            return event
        updates: dict[str, Any] = {"credits": event.credits}
        ticket = _Ticket(policy, lines, event.feature, epoch, reserved=False)
        engine._settle(owner, ticket, event, updates, once=time.time() + USAGE_MARK_SECONDS)  # type: ignore[arg-type]
        return _updated(event, updates) if len(updates) > 1 else event
    except Exception:
        engine._fault("could not count custom usage into its quotas")
        return event


def _unreserved(engine: QuotaEngine, owner: Owner, epoch: float, exc: Exception | None, policy: Policy | None,
                lines: list[_Line], credits: Decimal) -> None:
    """The store cannot reserve: refuse (fail closed), or allow unreserved — its credits settled once the store
    answers, on the limits cached here (else worked out then)."""
    if not engine.config.quota_fail_open:
        engine._unavailable(owner, epoch, exc)  # type: ignore[arg-type]  # raises QuotaUnavailable
    if policy is None:
        cached = engine._policies.get(owner.attribution.customer_id or "", _UNKNOWN)
        if cached is None:
            return  # known to have no limits
        if cached is not _UNKNOWN:
            policy = cached
            lines = credit_lines(policy, owner.attribution.feature, epoch, to_usage("credits", credits), enforce=False)
    engine._tickets[owner.id] = _Ticket(policy, lines, owner.attribution.feature, epoch, reserved=False)


_UNKNOWN: Any = object()
